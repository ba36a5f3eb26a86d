"""Ingestion of every supported layout, from tiny files written by the tests, bad ones included."""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from components.config import Config
from components.data import ingest, load_cache, manifest_sha256, read_manifest, write_phantoms
from components.errors import DataError


def _config(**data: Any) -> Config:
    return Config.model_validate({"data": data})


def _image(path: Path, size: tuple[int, int] = (40, 36), mode: str = "RGB", seed: int = 0) -> Path:
    """A small noisy image (so JPEG bytes differ per seed) in any PIL mode."""
    rng = np.random.default_rng(seed)
    pixels = rng.integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(pixels).convert(mode).save(path)
    return path


def _isic_json(path: Path, label: str | None, diagnosis: str = "nevus") -> None:
    """The archive JSON structure of the embedded samples."""
    clinical: dict[str, Any] = {"age_approx": 55, "sex": "female", "diagnosis": diagnosis}
    if label is not None:
        clinical["benign_malignant"] = label
    doc = {
        "_id": "5436e3abbae478396759f0cf",
        "name": path.stem,
        "meta": {
            "clinical": clinical,
            "acquisition": {"image_type": "dermoscopic", "pixelsX": 40, "pixelsY": 36},
        },
    }
    path.write_text(json.dumps(doc))


def _jpeg_bytes(seed: int = 0) -> bytes:
    buf = io.BytesIO()
    rng = np.random.default_rng(seed)
    Image.fromarray(rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)).save(buf, "JPEG")
    return buf.getvalue()


def _by_id(result: Any) -> dict[str, dict[str, Any]]:
    return {row["image_id"]: row for row in result.manifest.to_dict("records")}


def test_legacy_layout_records_every_bad_input(tmp_path: Path) -> None:
    src = tmp_path / "isic"
    for i, label in enumerate(["benign", "malignant", "Indeterminate"]):
        _image(src / f"ISIC_000000{i}.jpg", seed=i)
        _isic_json(src / f"ISIC_000000{i}.json", label)
    (src / "ISIC_0000003.jpg").write_bytes(b"this is not a jpeg at all")
    (src / "ISIC_0000004.jpg").write_bytes(_jpeg_bytes()[:300])
    (src / "ISIC_0000005.jpg").write_bytes(b"")
    _image(src / "ISIC_0000006.jpg", mode="L", seed=6)
    _image(src / "ISIC_0000007.jpg", seed=7)
    (src / "ISIC_0000007.json").write_text('{"meta": {"clinical": {"benign_malignant": "benign"')
    _image(src / "ISIC_0000008.jpg", seed=8)  # no JSON
    _isic_json(src / "ISIC_0000009.json", "benign")  # no image
    _image(src / "ISIC_0000010.jpg", mode="CMYK", seed=10)
    for i in (3, 4, 5, 6, 10):
        _isic_json(src / f"ISIC_{i:07d}.json", "benign")

    result = ingest(
        "lesions", _config(lesions={"source": str(src), "sizes": [16]}), tmp_path / "out"
    )
    rows = _by_id(result)

    assert result.format == "isic_legacy"
    assert len(rows) == 11
    good = rows["ISIC_0000000"]
    assert (good["label"], good["diagnosis"], good["age_approx"], good["sex"]) == (
        "benign", "nevus", 55, "female",
    )  # fmt: skip
    assert (good["height"], good["width"], good["mode"], good["error"]) == (36, 40, "RGB", "")
    assert good["source_path"] == f"{src}/ISIC_0000000.jpg"
    assert rows["ISIC_0000002"]["label"] == "indeterminate"
    for bad in ("ISIC_0000003", "ISIC_0000004", "ISIC_0000005"):
        assert not rows[bad]["decodable"]
        assert rows[bad]["error"].startswith("undecodable image:")
        assert pd_na(rows[bad]["height"])
    assert "truncated" in rows["ISIC_0000004"]["error"].lower()
    assert rows["ISIC_0000005"]["bytes"] == 0
    assert rows["ISIC_0000006"]["mode"] == "L" and rows["ISIC_0000006"]["decodable"]
    assert rows["ISIC_0000010"]["mode"] == "CMYK"
    assert rows["ISIC_0000007"]["error"].startswith("malformed JSON:")
    assert rows["ISIC_0000007"]["label"] == ""
    assert rows["ISIC_0000008"]["error"] == "image without metadata"
    assert rows["ISIC_0000009"]["error"] == "no image"
    assert rows["ISIC_0000009"]["source_path"] == ""
    assert all("\n" not in row["error"] for row in rows.values())

    cached = load_cache(tmp_path / "out", 16, ["ISIC_0000006", "ISIC_0000010"])
    assert cached.images.shape == (2, 16, 16, 3)
    decodable_ids = {k for k, r in rows.items() if r["decodable"]}
    assert {p.stem for p in (tmp_path / "out/images/16").iterdir()} == decodable_ids
    assert result.counts["rows"] == 11 and result.counts["decodable"] == len(decodable_ids)


def pd_na(value: Any) -> bool:
    return bool(pd.isna(value))


def test_isic_csv_layout_with_duplicate_id_and_missing_image(tmp_path: Path) -> None:
    src = tmp_path / "download"
    for name in ("ISIC_0000001", "ISIC_0000002", "ISIC_0000003", "ISIC_0000005"):
        _image(src / f"{name}.jpg", seed=int(name[-1]))
    (src / "metadata.csv").write_text(
        "isic_id,attribution,copyright_license,diagnosis_1,diagnosis_2,diagnosis_3,patient_id,"
        "lesion_id,age_approx,sex\n"
        "ISIC_0000001,Hospital A,CC-BY,Benign,Benign melanocytic proliferations,Nevus,IP_1,IL_1,45,male\n"
        "ISIC_0000002,Hospital A,CC-0,Malignant,Malignant melanocytic proliferations,Melanoma,IP_1,IL_2,,\n"
        "ISIC_0000003,Hospital B,CC-BY-NC,Indeterminate,,,IP_2,IL_3,60,female\n"
        "ISIC_0000003,Hospital B,CC-BY-NC,Benign,,,IP_2,IL_3,60,female\n"
        "ISIC_0000004,Hospital B,CC-BY,Benign,,,IP_3,IL_4,30,male\n"
    )
    result = ingest("lesions", _config(lesions={"source": str(src), "sizes": [16]}), tmp_path / "o")
    rows = _by_id(result)

    assert result.format == "isic_csv"
    one = rows["ISIC_0000001"]
    assert (one["label"], one["diagnosis"], one["patient_id"], one["lesion_id"]) == (
        "benign", "Nevus", "IP_1", "IL_1",
    )  # fmt: skip
    assert (one["license"], one["attribution"], one["age_approx"]) == ("CC-BY", "Hospital A", 45)
    assert rows["ISIC_0000002"]["label"] == "malignant"
    assert pd_na(rows["ISIC_0000002"]["age_approx"])
    assert rows["ISIC_0000003"]["error"] == "isic_id listed 2 times in metadata.csv"
    assert rows["ISIC_0000004"]["error"] == "no image" and not rows["ISIC_0000004"]["decodable"]
    assert rows["ISIC_0000005"]["error"] == "image without metadata"


def test_challenge_csv_layout(tmp_path: Path) -> None:
    src = tmp_path / "challenge"
    for i in range(3):
        _image(src / "train" / f"ISIC_{i:07d}.jpg", seed=i)
    (src / "train.csv").write_text(
        "image_name,patient_id,target\nISIC_0000000,IP_7,0\nISIC_0000001,IP_7,1\nISIC_0000002,,2\n"
    )
    rows = _by_id(
        ingest("lesions", _config(lesions={"source": str(src), "sizes": [16]}), tmp_path / "o")
    )

    assert [rows[f"ISIC_{i:07d}"]["label"] for i in range(3)] == ["benign", "malignant", "2"]
    assert rows["ISIC_0000001"]["patient_id"] == "IP_7"
    assert rows["ISIC_0000000"]["source"] == "challenge_csv"


def test_duplicate_image_id_across_two_files_is_flagged_and_not_cached(tmp_path: Path) -> None:
    src = tmp_path / "dups"
    _image(src / "ISIC_0000001.jpg", seed=1)
    _image(src / "extra" / "ISIC_0000001.png", seed=2)
    _image(src / "ISIC_0000002.jpg", seed=3)
    (src / "metadata.csv").write_text(
        "isic_id,benign_malignant\nISIC_0000001,benign\nISIC_0000002,malignant\n"
    )
    result = ingest("lesions", _config(lesions={"source": str(src), "sizes": [16]}), tmp_path / "o")

    dup = result.manifest[result.manifest["image_id"] == "ISIC_0000001"]
    assert len(dup) == 2
    assert set(dup["error"]) == {"duplicate image_id: 2 files"}
    assert load_cache(tmp_path / "o", 16).ids == ["ISIC_0000002"]


def test_reingest_is_byte_identical(tmp_path: Path) -> None:
    src = tmp_path / "isic"
    for i in range(4):
        _image(src / f"ISIC_{i:07d}.jpg", seed=i)
        _isic_json(src / f"ISIC_{i:07d}.json", "benign" if i % 2 else "malignant")
    cfg = _config(lesions={"source": str(src), "sizes": [16, 24]})
    out = tmp_path / "ingest" / "lesions"

    ingest("lesions", cfg, out)
    first = {p.relative_to(out): p.read_bytes() for p in out.rglob("*") if p.is_file()}
    digest = manifest_sha256(out)
    ingest("lesions", cfg, out)
    second = {p.relative_to(out): p.read_bytes() for p in out.rglob("*") if p.is_file()}

    assert first == second
    assert len(first) == 1 + 2 + 4 * 2  # manifest, two caches, two sizes of four copies
    assert manifest_sha256(out / "manifest.csv") == digest
    assert sorted(p.name for p in out.parent.iterdir()) == ["lesions"]


def test_max_images_keeps_the_malignant_share(tmp_path: Path) -> None:
    src = tmp_path / "isic"
    for i in range(20):
        _image(src / f"ISIC_{i:07d}.jpg", size=(8, 8), seed=i)
        _isic_json(src / f"ISIC_{i:07d}.json", "malignant" if i < 5 else "benign")
    cfg = _config(lesions={"source": str(src), "sizes": [8], "max_images": 8})
    result = ingest("lesions", cfg, tmp_path / "o")

    assert result.counts["rows"] == 8
    assert result.counts["label_malignant"] == 2


def test_load_cache_reports_unusable_requests(tmp_path: Path) -> None:
    src = tmp_path / "isic"
    for i, label in enumerate(["benign", "malignant", "indeterminate"]):
        _image(src / f"ISIC_{i:07d}.jpg", seed=i)
        _isic_json(src / f"ISIC_{i:07d}.json", label)
    ingest("lesions", _config(lesions={"source": str(src), "sizes": [16]}), tmp_path / "o")

    data = load_cache(tmp_path / "o", 16, ["ISIC_0000001", "ISIC_0000000"])
    assert data.labels.tolist() == [1, 0]
    assert data.masks is None
    with pytest.raises(DataError, match="no cache at size 32"):
        load_cache(tmp_path / "o", 32)
    with pytest.raises(DataError, match="not cached .first: ISIC_9"):
        load_cache(tmp_path / "o", 16, ["ISIC_9"])
    with pytest.raises(DataError, match="ISIC_0000002 has label 'indeterminate'"):
        load_cache(tmp_path / "o", 16)


def _mask(path: Path, size: tuple[int, int], values: np.ndarray | None = None) -> None:
    """A binary 0/255 mask with a centred square, or the given values."""
    if values is None:
        values = np.zeros((size[1], size[0]), dtype=np.uint8)
        values[size[1] // 4 : 3 * size[1] // 4, size[0] // 4 : 3 * size[0] // 4] = 255
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(values).save(path)


def test_kvasir_layout_mask_facts(tmp_path: Path) -> None:
    src = tmp_path / "Kvasir-SEG"
    for name in ("a", "b", "c", "d"):
        _image(src / "images" / f"{name}.jpg", size=(40, 40), seed=ord(name))
    _mask(src / "masks" / "a.jpg", (40, 40))
    _mask(src / "masks" / "b.jpg", (40, 40), np.tile(np.arange(40, dtype=np.uint8) * 6, (40, 1)))
    _mask(src / "masks" / "c.jpg", (20, 30))
    result = ingest("polyps", _config(polyps={"source": str(src), "sizes": [16]}), tmp_path / "o")
    rows = _by_id(result)

    assert result.format == "kvasir"
    assert rows["a"]["label"] == "polyp"
    assert rows["a"]["mask_source_path"] == f"{src}/masks/a.jpg"
    assert rows["a"]["mask_nonbinary_share"] < 0.05
    assert rows["a"]["mask_foreground_share"] == pytest.approx(0.25, abs=0.03)
    # 0, 6, ..., 234: the values 36..222 (32 of 40 columns) are neither black nor white.
    assert rows["b"]["mask_nonbinary_share"] == pytest.approx(32 / 40, abs=0.05)
    assert (rows["c"]["mask_height"], rows["c"]["mask_width"]) == (30, 20)
    assert (rows["c"]["height"], rows["c"]["width"]) == (40, 40)
    assert rows["d"]["error"] == "missing mask" and rows["d"]["mask_source_path"] == ""

    data = load_cache(tmp_path / "o", 16)
    assert data.ids == ["a", "b", "c"]  # no mask, no cache entry
    assert data.masks.shape == (3, 16, 16) and set(np.unique(data.masks)) == {0, 1}
    assert data.masks[0, 4:12, 4:12].all() and data.masks[0, :3].sum() == 0
    assert data.labels is None
    assert sorted(p.name for p in (tmp_path / "o/masks/16").iterdir()) == [
        "a.png",
        "b.png",
        "c.png",
    ]


def test_cvc_layout_with_tiff(tmp_path: Path) -> None:
    src = tmp_path / "CVC-ClinicDB"
    for i in (1, 2):
        _image(src / "Original" / f"{i}.tif", size=(30, 24), seed=i)
        _mask(src / "Ground Truth" / f"{i}.tif", (30, 24))
    result = ingest("polyps", _config(polyps={"source": str(src), "sizes": [16]}), tmp_path / "o")

    assert result.format == "cvc"
    assert result.manifest["error"].tolist() == ["", ""]
    assert result.manifest["mask_nonbinary_share"].tolist() == [0.0, 0.0]
    assert load_cache(tmp_path / "o", 16).masks.shape == (2, 16, 16)


def test_rgba_layout_takes_the_mask_from_alpha(tmp_path: Path) -> None:
    src = tmp_path / "rgba"
    rgba = np.zeros((20, 20, 4), dtype=np.uint8)
    rgba[..., 0] = 200
    rgba[4:14, 4:14, 3] = 255  # aligned with the 2x downscale: exactly 5 x 5 at 10 px
    src.mkdir()
    Image.fromarray(rgba, "RGBA").save(src / "p1.png")
    _image(src / "p2.png", size=(20, 20))
    result = ingest("polyps", _config(polyps={"source": str(src), "sizes": [10]}), tmp_path / "o")
    rows = _by_id(result)

    assert result.format == "rgba"
    assert rows["p1"]["mode"] == "RGB" and rows["p1"]["error"] == ""  # alpha split off
    assert rows["p1"]["mask_foreground_share"] == pytest.approx(0.25)
    assert rows["p2"]["error"] == "no alpha channel for the mask (mode RGB)"
    data = load_cache(tmp_path / "o", 10)
    assert data.ids == ["p1"]
    assert data.images[0, ..., 0].min() > 150  # alpha dropped, colour kept
    assert data.masks[0].sum() == 25


def test_phantoms_are_deterministic_and_ingest_as_kvasir(tmp_path: Path) -> None:
    first = write_phantoms(tmp_path / "a", n=3, seed=7, size=48)
    second = write_phantoms(tmp_path / "b", n=4, seed=7, size=48)
    other = write_phantoms(tmp_path / "c", n=3, seed=8, size=48)
    files = sorted(p.relative_to(first) for p in first.rglob("*.jpg"))

    assert len(files) == 6
    assert all((first / f).read_bytes() == (second / f).read_bytes() for f in files)
    assert (first / files[0]).read_bytes() != (other / files[0]).read_bytes()

    result = ingest("polyps", _config(polyps={"source": str(first), "sizes": [32]}), tmp_path / "o")
    assert result.format == "kvasir" and result.counts["cached"] == 3
    shares = result.manifest["mask_foreground_share"]
    assert ((shares > 0.02) & (shares < 0.5)).all()
    assert (result.manifest["mask_nonbinary_share"] < 0.02).all()
    image = np.asarray(Image.open(first / "images/phantom_0000.jpg"), dtype=float)
    assert image[..., 0].mean() > image[..., 1].mean() + 30  # reddish mucosa


def test_embedded_isic_samples(tmp_path: Path, isic_samples: Path) -> None:
    result = ingest(
        "lesions", _config(lesions={"source": str(isic_samples), "sizes": [64]}), tmp_path / "o"
    )

    assert result.counts["rows"] == 275
    assert result.counts["decodable"] == 275
    assert (result.counts["label_benign"], result.counts["label_malignant"]) == (192, 83)
    assert result.counts["with_error"] == 0
    assert read_manifest(tmp_path / "o/manifest.csv").equals(result.manifest)
    data = load_cache(tmp_path / "o", 64)
    assert data.images.shape == (275, 64, 64, 3) and int(data.labels.sum()) == 83
