"""The face models on real photos: BlazeFace finds the faces, dlib's embedding tells people apart, and the
bench's identity and watchlist arithmetic."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
from support.bench import load

from kuzet.edge.faces.config import FacesSection
from kuzet.models.faces.matching import best_match, false_matches_per_10000

pytest.importorskip("dlib", reason="the 'faces' extra is not installed")


@pytest.fixture(scope="module")
def models():
    from kuzet.models.faces.detector import FaceDetector
    from kuzet.models.faces.embedder import FaceEmbedder

    return FaceDetector(), FaceEmbedder()


def rgb(path) -> np.ndarray:
    return cv2.cvtColor(cv2.imread(str(path)), cv2.COLOR_BGR2RGB)


def test_blazeface_finds_each_face_of_a_group_photo(models, footage):
    detector, _ = models
    couple = detector.detect(rgb(footage / "faces" / "pairs" / "couple.jpg"))
    assert len(couple) == 2
    left, right = sorted(couple, key=lambda f: f.box[0])
    assert left.box[0] + left.box[2] < right.box[0]  # two separate faces, not one box twice


def test_blazeface_tells_small_faces_from_non_faces(models, footage):
    """scikit-image's LFW subset: 100 real 25x25 faces, then 100 non-faces (as a person's head region gives at
    a distance); a margin of edge pixels around each, as the upper part of a person's box has."""
    detector, _ = models
    crops = np.load(footage / "faces" / "lfw_subset.npy")

    def found(crop) -> bool:
        grey = (crop * 255).astype(np.uint8)
        return bool(
            detector.detect(np.pad(np.stack([grey] * 3, -1), ((12, 12), (12, 12), (0, 0)), mode="edge"))
        )

    assert sum(found(c) for c in crops[:100]) >= 90
    assert sum(found(c) for c in crops[100:]) <= 2


def test_same_person_within_threshold_and_others_beyond(models, footage):
    detector, embedder = models
    pairs = footage / "faces" / "pairs"

    def embedding(name):
        image = rgb(pairs / name)
        return embedder.embed(image, max(detector.detect(image), key=lambda f: f.width))

    same_a, same_b, other = embedding("img1.jpg"), embedding("img2.jpg"), embedding("img3.jpg")
    threshold = FacesSection().match_threshold
    listed = np.stack([same_a, other])
    match = best_match(same_b, ["entry-a", "entry-other"], listed, threshold)
    assert match is not None and match.entry_id == "entry-a"
    assert best_match(other, ["entry-a"], same_a[np.newaxis], threshold) is None


def test_identities_are_the_components_of_the_yes_pairs():
    bench = load("faces")
    who = bench.identities([("a", "b", "Yes"), ("b", "c", "Yes"), ("c", "d", "No"), ("e", "a", "No")])
    assert who["a"] == who["b"] == who["c"]
    assert len({who["a"], who["d"], who["e"]}) == 3


def test_false_possible_matches_grow_with_the_watchlist():
    assert false_matches_per_10000(0.0, 1000) == 0.0
    assert false_matches_per_10000(0.001, 1) == pytest.approx(10.0)
    assert false_matches_per_10000(0.001, 1000) == pytest.approx(6323.0, abs=0.1)
