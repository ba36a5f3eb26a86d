"""Synthetic sets on disk: roundtrip, byte-stable output, naming, atomicity, damaged sets."""

from __future__ import annotations

import csv
import json
import re
from pathlib import Path

import numpy as np
import pytest

from components.errors import DataError
from components.imageset import ImageSet
from components.synthetic import content_digest, read_set, set_name, write_set

META = {"generator_kind": "dcgan", "generator_model_version": "3", "seed": 7}


def _samples(n: int = 4, size: int = 12, seed: int = 0, masks: bool = True) -> ImageSet:
    rng = np.random.default_rng(seed)
    return ImageSet(
        images=rng.integers(0, 256, (n, size, size, 3), dtype=np.uint8),
        labels=np.arange(n, dtype=np.int64) % 2,
        masks=rng.integers(0, 2, (n, size, size), dtype=np.uint8) if masks else None,
    )


def _files(folder: Path) -> dict[str, bytes]:
    return {
        p.relative_to(folder).as_posix(): p.read_bytes()
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


def test_roundtrip_keeps_pixels_labels_masks_and_ids(tmp_path: Path) -> None:
    samples = _samples()
    out = write_set(samples, tmp_path / "set", META)

    back = read_set(out)

    np.testing.assert_array_equal(back.images, samples.images)
    np.testing.assert_array_equal(back.labels, samples.labels)
    np.testing.assert_array_equal(back.masks, samples.masks)
    assert back.labels.dtype == np.int64 and back.masks.dtype == np.uint8
    assert back.ids == [f"syn-{i:06d}" for i in range(4)]


def test_layout_manifest_and_meta(tmp_path: Path) -> None:
    out = write_set(_samples(n=2), tmp_path / "set", META)

    with (out / "manifest.csv").open(newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert rows == [
        {
            "image_id": "syn-000000",
            "file": "images/syn-000000.png",
            "label": "benign",
            "mask_file": "masks/syn-000000.png",
        },
        {
            "image_id": "syn-000001",
            "file": "images/syn-000001.png",
            "label": "malignant",
            "mask_file": "masks/syn-000001.png",
        },
    ]
    meta = json.loads((out / "set.json").read_text())
    assert meta["generator_model_version"] == "3" and meta["n"] == 2 and meta["image_size"] == 12
    assert meta["has_masks"] is True and meta["content_sha256"] == content_digest(_samples(n=2))
    # Masks are stored 0/255 so they are viewable and survive tools that rescale.
    from PIL import Image

    assert set(np.unique(np.asarray(Image.open(out / "masks/syn-000000.png")))) <= {0, 255}


def test_unlabelled_set_without_masks_reads_back_none(tmp_path: Path) -> None:
    samples = ImageSet(images=_samples(masks=False).images)
    back = read_set(write_set(samples, tmp_path / "set", {}))

    assert back.labels is None and back.masks is None
    np.testing.assert_array_equal(back.images, samples.images)


def test_same_samples_give_same_bytes_and_name(tmp_path: Path) -> None:
    a = write_set(_samples(), tmp_path / "a", META)
    b = write_set(_samples(), tmp_path / "b", META)

    assert _files(a) == _files(b)
    name = set_name("dcgan", 64, "demo", content_digest(_samples()))
    assert name == set_name("dcgan", 64, "demo", content_digest(_samples()))
    assert name.startswith("dcgan-64-demo-") and len(name.rsplit("-", 1)[1]) == 8
    assert name != set_name("dcgan", 64, "demo", content_digest(_samples(seed=1)))


def test_failed_write_leaves_no_partial_folder_and_keeps_old_set(tmp_path: Path) -> None:
    bad = ImageSet(images=_samples().images, labels=np.array([0, 1, 2, 0]))
    with pytest.raises(ValueError, match="label 2"):
        write_set(bad, tmp_path / "new", META)
    assert list(tmp_path.iterdir()) == []

    old = write_set(_samples(), tmp_path / "old", META)
    before = _files(old)
    with pytest.raises(ValueError):
        write_set(bad, old, META)
    assert _files(old) == before
    assert [p.name for p in tmp_path.iterdir()] == ["old"]


@pytest.mark.parametrize("damage", ["no_folder", "no_meta", "no_manifest", "no_image", "corrupt"])
def test_damaged_set_raises_data_error_naming_the_path(tmp_path: Path, damage: str) -> None:
    out = write_set(_samples(n=2), tmp_path / "set", META)
    culprit = {
        "no_folder": tmp_path / "missing",
        "no_meta": out / "set.json",
        "no_manifest": out / "manifest.csv",
        "no_image": out / "images/syn-000001.png",
        "corrupt": out / "masks/syn-000000.png",
    }[damage]
    if damage == "corrupt":
        culprit.write_bytes(b"not a png")
    elif damage != "no_folder":
        culprit.unlink()
    target = tmp_path / "missing" if damage == "no_folder" else out

    with pytest.raises(DataError, match=re.escape(str(culprit))):
        read_set(target)


def test_unsafe_ids_are_refused(tmp_path: Path) -> None:
    samples = ImageSet(images=_samples(n=2).images, ids=["ok", "../escape"])
    with pytest.raises(ValueError, match="safe file names"):
        write_set(samples, tmp_path / "set", {})
    assert not (tmp_path / "set").exists()
