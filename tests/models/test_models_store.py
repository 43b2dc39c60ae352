"""Model manifest, checksums and every way a model gets onto a device (import, fetch, ensure), plus the CLI."""

from __future__ import annotations

import shutil
import zipfile

import numpy as np
import pytest

from kuzet.models import build, convert_person, store
from kuzet.shared.cli import main as kuzet

DEFAULT = "yolox_nano_int8"
SSD = "coco_ssd_mobilenet_v1_quant"


@pytest.fixture
def home(tmp_path, monkeypatch):
    monkeypatch.setenv("KUZET_HOME", str(tmp_path / "home"))
    return tmp_path / "home"


@pytest.fixture
def shared_model(shared_dir):
    return shared_dir / "models/coco_ssd_mobilenet_v1_quant"


@pytest.fixture
def shared_yolox(shared_dir):
    return shared_dir / "models/yolox_nano"


@pytest.fixture
def no_shared_copy(monkeypatch, tmp_path):
    """As on a machine without the team's shared folder."""
    monkeypatch.setattr(store, "shared_candidates", lambda: [tmp_path / "no-shared-here"])


def test_manifest_describes_the_default_detector():
    default, entries = store.load_manifest()
    assert default == DEFAULT
    e = entries[DEFAULT]
    assert e.sha256 == "35360b56bfdc509b19413369782fa6f5eecc7843bba3ee5d7d9ee5c84c3af0d4"
    assert (e.input_size, e.outputs, e.licence) == ((416, 416), "yolox", "Apache-2.0")
    assert e.quantization == "int8 internals, float32 I/O" and e.labels_file == "labels.txt"
    assert e.local_copy == "models/yolox_nano"
    assert e.extra["onnx_source"].startswith("https://github.com/Megvii-BaseDetection/YOLOX/releases/")
    ssd = entries[SSD]
    assert ssd.sha256 == "e4b118e5e4531945de2e659742c7c590f7536f8d0ed26d135abcfe83b4779d13"
    assert (ssd.input_size, ssd.quantization, ssd.outputs) == ((300, 300), "uint8", "ssd_postprocess")
    assert ssd.source.startswith("https://storage.googleapis.com/")
    assert entries["person_ssdlite_int8"].quantization == "int8"


def test_import_verifies_and_labels_line_up(home, shared_model, shared_yolox):
    path = store.import_model(shared_model / "detect.tflite", SSD)
    assert path == home / "models" / SSD / "detect.tflite"
    assert store.resolve(SSD) == path
    labels = store.labels(SSD)
    assert labels[0] == "person" and labels[2] == "car" and labels[5] == "bus"
    path = store.import_model(shared_yolox)
    assert path == home / "models" / DEFAULT / "yolox_nano_int8.tflite" and store.resolve() == path
    labels = store.labels()
    assert len(labels) == 80 and labels[0] == "person" and labels[2] == "car" and labels[5] == "bus"


def test_a_wrong_file_is_refused_with_a_clear_message(home, shared_model, tmp_path):
    tampered = tmp_path / "detect.tflite"
    data = bytearray((shared_model / "detect.tflite").read_bytes())
    data[1000] ^= 0xFF
    tampered.write_bytes(bytes(data))
    shutil.copy(shared_model / "labelmap.txt", tmp_path / "labelmap.txt")
    with pytest.raises(store.ModelError, match="does not match the manifest"):
        store.import_model(tampered, SSD)
    assert not (home / "models" / SSD / "detect.tflite").exists()


def test_corruption_after_install_is_detected(home, shared_model, capsys):
    path = store.import_model(shared_model, SSD)
    with open(path, "r+b") as f:
        f.seek(500)
        f.write(b"\0\0\0\0")
    with pytest.raises(store.ModelError, match="fails its checksum"):
        store.resolve(SSD)
    assert kuzet(["models", "verify"]) == 1
    assert "FAILED" in capsys.readouterr().err


def test_missing_model_says_how_to_get_it(home):
    with pytest.raises(store.ModelError, match="kuzet models fetch coco_ssd_mobilenet_v1_quant"):
        store.resolve(SSD)
    with pytest.raises(store.ModelError, match="kuzet models build-yolox"):
        store.resolve(DEFAULT)
    with pytest.raises(store.ModelError, match="unknown model 'nope'"):
        store.resolve("nope")


def test_fetch_downloads_the_release_archive_and_verifies(home, shared_model, tmp_path):
    archive = tmp_path / "release.zip"
    with zipfile.ZipFile(archive, "w") as z:
        z.write(shared_model / "detect.tflite", "detect.tflite")
        z.write(shared_model / "labelmap.txt", "labelmap.txt")
    path = store.fetch(SSD, url=archive.as_uri(), progress=False)
    assert store.sha256_of(path) == store.entry(SSD).sha256
    assert store.labels(SSD)[0] == "person"

    bad = tmp_path / "bad.zip"
    with zipfile.ZipFile(bad, "w") as z:
        z.writestr("detect.tflite", b"not the model")
        z.write(shared_model / "labelmap.txt", "labelmap.txt")
    shutil.rmtree(home)
    with pytest.raises(store.ModelError, match="does not match"):
        store.fetch(SSD, url=bad.as_uri(), progress=False)


def test_ensure_imports_from_the_shared_copy_then_is_a_no_op(home, shared_dir, monkeypatch, capsys):
    monkeypatch.setenv("KUZET_SHARED", str(shared_dir))
    assert kuzet(["models", "ensure", "--offline"]) == 0
    out = capsys.readouterr().out
    assert "imported from" in out and "yolox_nano/yolox_nano_int8.tflite" in out
    assert kuzet(["models", "ensure", "--offline"]) == 0
    assert "present" in capsys.readouterr().out
    assert kuzet(["models", "list"]) == 0
    assert f"{DEFAULT} (default): installed, verified" in capsys.readouterr().out


def test_ensure_without_any_copy_fails_with_instructions(home, no_shared_copy, capsys):
    assert kuzet(["models", "ensure", "--offline"]) == 1
    err = capsys.readouterr().err
    assert "is not installed" in err
    assert "kuzet models build-yolox" in err and "kuzet models import PATH --name yolox_nano_int8" in err


def test_cli_import_of_a_bad_path(home, tmp_path, capsys):
    assert kuzet(["models", "import", str(tmp_path / "missing.tflite")]) == 1
    assert "no such file" in capsys.readouterr().err


def test_built_model_is_verified_against_its_recorded_checksum(home, shared_model):
    person = store.entry("person_ssdlite_int8")
    path = store.install(person, shared_model / "detect.tflite", None)  # any bytes stand in for a build
    assert store.verify("person_ssdlite_int8") == path
    assert store.labels("person_ssdlite_int8") == ["person"]
    path.write_bytes(b"swapped")
    with pytest.raises(store.ModelError, match="fails its checksum"):
        store.verify("person_ssdlite_int8")


def test_converter_checks_its_arguments(tmp_path, capsys):
    graph = tmp_path / "g.pb"
    graph.write_bytes(b"x")
    with pytest.raises(SystemExit):
        convert_person.parse_args(
            ["--graph", str(tmp_path / "none.pb"), "--calibration", "c.npy", "--output", "o"]
        )
    assert "no such file" in capsys.readouterr().err
    cal = tmp_path / "c.npy"
    np.save(cal, np.zeros((2, 300, 300, 3), np.uint8))
    with pytest.raises(SystemExit):
        convert_person.parse_args(
            ["--graph", str(graph), "--calibration", str(cal), "--output", "o", "--score-threshold", "2"]
        )
    args = convert_person.parse_args(
        ["--graph", str(graph), "--calibration", str(cal), "--output", "o", "--samples", "1"]
    )
    assert len(convert_person.load_calibration(args.calibration, args.samples)) == 1
    np.save(cal, np.zeros((2, 224, 224, 3), np.uint8))
    with pytest.raises(SystemExit, match="expected uint8 N x 300 x 300 x 3"):
        convert_person.load_calibration(cal, 10)


def test_calibration_frames_come_from_real_footage(footage):
    frames = build.calibration_frames(
        [footage / "street/labelme_street", footage / "motion/tree.avi"], count=20
    )
    assert frames.shape == (20, 300, 300, 3) and frames.dtype == np.uint8
    assert frames.std() > 20  # real pictures, not blank
    with pytest.raises(store.ModelError, match="no calibration frames"):
        build.calibration_frames([footage / "street/bus.jpg.missing"])


def test_fetch_of_the_yolox_model_names_the_build_route(home, no_shared_copy, shared_yolox, tmp_path, capsys):
    assert kuzet(["models", "fetch"]) == 1
    err = capsys.readouterr().err
    assert "no public address serves this exact file" in err and "kuzet models build-yolox" in err
    # A mirror the operator names is fine: the manifest's checksum still decides.
    mirror = tmp_path / "mirror"
    mirror.mkdir()
    shutil.copy(shared_yolox / "yolox_nano_int8.tflite", mirror)
    shutil.copy(shared_yolox / "labels.txt", mirror)
    path = store.fetch(url=(mirror / "yolox_nano_int8.tflite").as_uri(), progress=False)
    assert store.verify() == path and store.labels()[0] == "person"


def test_build_yolox_plan_and_arguments(home, footage, tmp_path, capsys, monkeypatch):
    plan = build.yolox_plan(onnx=None, frames=str(footage / "street/bikes.mp4"))
    assert plan.onnx == store.entry(DEFAULT).extra["onnx_source"]
    assert any("onnx2tf" in p for p in plan.packages) and any(
        p.startswith("tensorflow") for p in plan.packages
    )
    frames = build.calibration_frames(plan.sources, count=8, size=416, letterbox=True, rgb=False)
    assert frames.shape == (8, 416, 416, 3)
    assert (frames[:, -20:, :, :] == 114).all()  # bikes.mp4 is 640x272: the letterbox fills the bottom
    local = tmp_path / "yolox_nano.onnx"
    local.write_bytes(b"not really onnx")
    assert build.yolox_plan(onnx=str(local), frames=None).onnx == str(local)
    # Missing files are refused before any venv is made.
    assert kuzet(["models", "build-yolox", "--onnx", str(tmp_path / "missing.onnx")]) == 1
    assert "no such ONNX file" in capsys.readouterr().err
    assert kuzet(["models", "build-yolox", "--frames", str(tmp_path / "none.mp4")]) == 1
    assert "no calibration frames" in capsys.readouterr().err
