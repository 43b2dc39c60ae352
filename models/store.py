"""Where detector models live on a device and how one is obtained and trusted.

A model is used only from ``$KUZET_HOME/models/<name>/`` and only when its sha256 matches: the manifest's, or for
a model built on this machine, the checksum written beside it when it was built. Every way in (fetch, import,
ensure) verifies before installing, so a truncated download or a swapped file never reaches a camera.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
import tomllib
import urllib.request
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

MANIFEST = Path(__file__).with_name("manifest.toml")
REPO = Path(__file__).resolve().parent.parent
BUILT_CHECKSUM = "sha256"  # file beside a model built here, holding its checksum


class ModelError(RuntimeError):
    """A model is missing, unknown or fails its checksum; the message says what to do."""


@dataclass(frozen=True)
class ModelEntry:
    name: str
    file: str
    sha256: str  # "" for models built on this machine (see BUILT_CHECKSUM)
    input_size: tuple[int, int]
    quantization: str
    licence: str
    source: str
    description: str = ""
    labels: tuple[str, ...] = ()
    labels_file: str = ""
    label_offset: int = 0
    outputs: str = "ssd_postprocess"
    archive_member: str = ""
    archive_labels: str = ""
    local_copy: str = ""
    extra: dict = field(default_factory=dict)


def kuzet_home() -> Path:
    return Path(os.environ.get("KUZET_HOME") or Path.home() / ".local/share/kuzet").expanduser()


def models_dir() -> Path:
    return kuzet_home() / "models"


def load_manifest(path: Path = MANIFEST) -> tuple[str, dict[str, ModelEntry]]:
    """(default model name, entries by name)."""
    data = tomllib.loads(path.read_text(encoding="utf-8"))
    entries = {}
    for name, raw in data.get("models", {}).items():
        raw = dict(raw)
        known = {k: raw.pop(k) for k in list(raw) if k in ModelEntry.__dataclass_fields__}
        known["input_size"] = tuple(known["input_size"])
        known["labels"] = tuple(known.get("labels", ()))
        entries[name] = ModelEntry(name=name, extra=raw, **known)
    return data["default"], entries


def entry(name: str | None = None) -> ModelEntry:
    default, entries = load_manifest()
    name = name or default
    if name not in entries:
        raise ModelError(
            f"unknown model {name!r}: the manifest ({MANIFEST}) has {', '.join(sorted(entries))}"
        )
    return entries[name]


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def is_built(e: ModelEntry) -> bool:
    """A model with no public download of its exact bytes: it is built here (or imported from a copy)."""
    return e.source.startswith("build:")


def how_to_get(e: ModelEntry) -> str:
    if is_built(e):
        route = e.source.removeprefix("build:").split("(")[0].strip()
        return (
            f"run '{route}' to build it (it converts {e.extra.get('onnx_source', 'the public ONNX')}) or, with a "
            f"copy of {e.file} and {e.labels_file}, 'kuzet models import PATH --name {e.name}'"
        )
    if e.archive_member:
        return (
            f"run 'kuzet models fetch {e.name}' (downloads {e.source}) or, on a machine without internet, "
            f"'kuzet models import PATH --name {e.name}' with a copy of {e.file} (or the archive)"
        )
    return f"run 'kuzet models build-person' to build it ({e.source})"


def expected_sha256(e: ModelEntry, directory: Path) -> str:
    if e.sha256:
        return e.sha256
    recorded = directory / BUILT_CHECKSUM
    return recorded.read_text().split()[0] if recorded.is_file() else ""


def verify(name: str | None = None) -> Path:
    """The installed model file, checked; ModelError saying what is wrong and how to fix it otherwise."""
    e = entry(name)
    directory = models_dir() / e.name
    path = directory / e.file
    if not path.is_file():
        raise ModelError(f"model {e.name!r} is not installed (looked for {path}): {how_to_get(e)}")
    want = expected_sha256(e, directory)
    if not want:
        raise ModelError(f"model {e.name!r} at {path} has no recorded checksum: rebuild it ({how_to_get(e)})")
    got = sha256_of(path)
    if got != want:
        raise ModelError(
            f"model {e.name!r} at {path} fails its checksum (sha256 {got}, expected {want}): "
            f"it is corrupt or not the right file; delete it and {how_to_get(e)}"
        )
    return path


def resolve(name: str | None = None) -> Path:
    """A verified model file for ``name`` (the default when None)."""
    return verify(name)


def labels(name: str | None = None) -> list[str]:
    """Class index -> label for an installed model."""
    e = entry(name)
    if e.labels:
        return list(e.labels)
    lines = (models_dir() / e.name / "labels.txt").read_text(encoding="utf-8").splitlines()
    return [line.strip() for line in lines][e.label_offset :]


def install(e: ModelEntry, model_bytes_path: Path, labels_text: str | None) -> Path:
    """Verify a candidate file and move it into place (atomically: a half-written model is never used)."""
    got = sha256_of(model_bytes_path)
    if e.sha256 and got != e.sha256:
        raise ModelError(
            f"refusing {model_bytes_path}: sha256 {got} does not match the manifest's {e.sha256} for {e.name!r} "
            f"(a different or damaged file)"
        )
    directory = models_dir() / e.name
    directory.mkdir(parents=True, exist_ok=True)
    if labels_text is not None:
        (directory / "labels.txt").write_text(labels_text, encoding="utf-8")
    elif e.labels_file and not (directory / "labels.txt").is_file():
        raise ModelError(f"model {e.name!r} needs its labels file {e.labels_file} beside the model")
    staging = directory / (e.file + ".partial")
    shutil.copyfile(model_bytes_path, staging)
    os.replace(staging, directory / e.file)
    if not e.sha256:
        (directory / BUILT_CHECKSUM).write_text(f"{got}  {e.file}\n")
    return directory / e.file


def import_model(source: Path, name: str | None = None) -> Path:
    """Install from a local copy: the model file (labels beside it), its folder, or the release archive."""
    e = entry(name)
    source = Path(source).expanduser()
    if not source.exists():
        raise ModelError(f"{source}: no such file or folder")
    if source.is_dir():
        candidate = source / e.file
        if not candidate.is_file():
            raise ModelError(f"{source} has no {e.file}")
        source = candidate
    if zipfile.is_zipfile(source):
        with tempfile.TemporaryDirectory() as tmp:
            return _install_from_archive(e, source, Path(tmp))
    labels_text = None
    if e.labels_file:
        labels_path = source.parent / e.labels_file
        if labels_path.is_file():
            labels_text = labels_path.read_text(encoding="utf-8")
    return install(e, source, labels_text)


def _install_from_archive(e: ModelEntry, archive: Path, tmp: Path) -> Path:
    with zipfile.ZipFile(archive) as z:
        names = {Path(n).name: n for n in z.namelist()}
        member = names.get(e.archive_member or e.file)
        if member is None:
            raise ModelError(f"{archive} does not contain {e.archive_member or e.file}")
        model_path = Path(z.extract(member, tmp))
        labels_text = None
        if e.archive_labels and e.archive_labels in names:
            labels_text = z.read(names[e.archive_labels]).decode("utf-8")
    return install(e, model_path, labels_text)


def fetch(name: str | None = None, url: str | None = None, progress: bool = True) -> Path:
    """Download the model's release (tqdm progress bar), verify and install it."""
    e = entry(name)
    if url is None and is_built(e):
        raise ModelError(
            f"model {e.name!r} cannot be downloaded: no public address serves this exact file ({e.file}, sha256 "
            f"{e.sha256}). {how_to_get(e)}; or 'kuzet models fetch {e.name} --url MIRROR' from a mirror of it"
        )
    url = url or e.source
    if not url.startswith(("http://", "https://", "file://")):
        raise ModelError(f"model {e.name!r} cannot be downloaded ({e.source}): {how_to_get(e)}")
    with tempfile.TemporaryDirectory() as tmp:
        target = Path(tmp) / "download"
        try:
            _download(url, target, progress)
        except OSError as exc:
            raise ModelError(
                f"cannot download {e.name!r} from {url}: {exc}. Without internet, copy {e.file} (or the archive) "
                f"here and run 'kuzet models import PATH --name {e.name}'"
            ) from None
        if zipfile.is_zipfile(target):
            return _install_from_archive(e, target, Path(tmp))
        labels_text = None
        if e.labels_file:  # a plain model file: its labels sit beside it at the mirror
            labels_url = url.rsplit("/", 1)[0] + "/" + e.labels_file
            try:
                _download(labels_url, Path(tmp) / e.labels_file, False)
                labels_text = (Path(tmp) / e.labels_file).read_text(encoding="utf-8")
            except OSError:
                pass  # install says the labels are missing, unless an earlier install left them
        return install(e, target, labels_text)


def _download(url: str, target: Path, progress: bool) -> None:
    from tqdm import tqdm

    with urllib.request.urlopen(url, timeout=30) as response, open(target, "wb") as out:
        total = int(response.headers.get("Content-Length") or 0) or None
        with tqdm(total=total, unit="B", unit_scale=True, desc=target.name, disable=not progress) as bar:
            for chunk in iter(lambda: response.read(1 << 16), b""):
                out.write(chunk)
                bar.update(len(chunk))


def shared_candidates() -> list[Path]:
    """Folders that may hold a copy of the team's shared material, most specific first."""
    places = []
    if os.environ.get("KUZET_SHARED"):
        places.append(Path(os.environ["KUZET_SHARED"]))
    places += [REPO.parent / "shared", Path.cwd().parent / "shared", Path.cwd() / "shared"]
    return places


def ensure(name: str | None = None, allow_download: bool = True, progress: bool = True) -> tuple[Path, str]:
    """Make the model present and verified; (path, how: "present" | "imported from ..." | "downloaded")."""
    e = entry(name)
    try:
        return verify(e.name), "present"
    except ModelError as missing:
        problem = str(missing)
    if e.local_copy:
        for base in shared_candidates():
            copy = base / e.local_copy / e.file
            if copy.is_file():
                return import_model(copy, e.name), f"imported from {copy}"
    if allow_download and e.archive_member:
        try:
            return fetch(e.name, progress=progress), f"downloaded from {e.source}"
        except ModelError as exc:
            problem = str(exc)
    looked = (
        ", ".join(str(base / e.local_copy) for base in shared_candidates()) if e.local_copy else "nowhere"
    )
    raise ModelError(
        f"model {e.name!r} ({e.file}, sha256 {e.sha256 or 'recorded at build'}) is missing: {problem}. "
        f"No local copy in {looked} (set KUZET_SHARED to the folder holding models/). To get it: {how_to_get(e)}"
    )
