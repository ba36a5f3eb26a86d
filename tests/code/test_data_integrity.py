"""Ingestion plus validation on tiny generated sources: what must never pass, never leak, never
change between two runs (issue: "nothing lost, nothing misleading")."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from components.config import Config, ValidationConfig
from components.data import IngestResult, assign_splits, ingest, kfold, load_cache
from components.data.manifest import Dataset, copy_path
from components.validation import ValidationResult, validate_manifest
from tests.data.corpus import ellipse_mask, encoded, picture, save


def _config(**data: Any) -> Config:
    return Config.model_validate({"data": data})


def _legacy(src: Path, image_id: str, image: bytes, label: str = "benign") -> None:
    src.mkdir(parents=True, exist_ok=True)
    (src / f"{image_id}.jpg").write_bytes(image)
    meta = {"meta": {"clinical": {"benign_malignant": label}}}
    (src / f"{image_id}.json").write_text(json.dumps(meta))


def _run(
    tmp_path: Path, dataset: Dataset, src: Path, cfg: ValidationConfig | None = None
) -> tuple[IngestResult, ValidationResult]:
    data = {dataset: {"source": str(src), "sizes": [16]}}
    result = ingest(dataset, _config(**data), tmp_path / f"out-{dataset}")
    return result, validate_manifest(result.manifest, cfg or ValidationConfig(), dataset)


def _reasons(result: ValidationResult) -> dict[str, str]:
    return dict(zip(result.quarantine["image_id"], result.quarantine["reason"], strict=True))


# --------------------------------------------------------------------------------------------
# stable, readable reasons


def test_undecodable_files_are_named_not_a_memory_address(tmp_path: Path) -> None:
    src = tmp_path / "isic"
    _legacy(src, "ISIC_0000001", encoded(picture(1)))
    _legacy(src, "ISIC_0000002", b"<html>not a jpeg</html>")
    _legacy(src, "ISIC_0000003", b"")
    first, _ = _run(tmp_path, "lesions", src)
    errors = dict(zip(first.manifest["image_id"], first.manifest["error"], strict=True))

    assert errors["ISIC_0000002"] == (
        "undecodable image: UnidentifiedImageError: cannot identify image file 'ISIC_0000002.jpg'"
    )
    assert errors["ISIC_0000003"].endswith("cannot identify image file 'ISIC_0000003.jpg'")
    ingest("lesions", _config(lesions={"source": str(src), "sizes": [16]}), tmp_path / "b")
    assert (tmp_path / "out-lesions/manifest.csv").read_bytes() == (
        tmp_path / "b/manifest.csv"
    ).read_bytes()


def test_undecodable_mask_is_named_by_its_key(tmp_path: Path) -> None:
    src = tmp_path / "kvasir"
    save(src / "images" / "a.jpg", picture(1, (40, 40)))
    (src / "masks").mkdir()
    (src / "masks" / "a.jpg").write_bytes(b"GIF89a broken")
    _, result = _run(tmp_path, "polyps", src)

    assert _reasons(result) == {
        "a": "undecodable mask: UnidentifiedImageError: cannot identify image file 'masks/a.jpg'"
    }


# --------------------------------------------------------------------------------------------
# duplicates


def _duplicates_source(src: Path) -> None:
    for i in range(1, 5):
        _legacy(src, f"ISIC_{i:07d}", encoded(picture(i)), "malignant" if i == 3 else "benign")
    _legacy(src, "ISIC_0000005", (src / "ISIC_0000001.jpg").read_bytes())
    _legacy(src, "ISIC_0000006", encoded(Image.open(src / "ISIC_0000002.jpg"), "PNG"))
    _legacy(src, "ISIC_0000007", encoded(Image.open(src / "ISIC_0000003.jpg"), quality=70))


def test_copies_are_quarantined_naming_the_image_they_copy(tmp_path: Path) -> None:
    _duplicates_source(tmp_path / "isic")
    _, result = _run(tmp_path, "lesions", tmp_path / "isic")
    reasons = _reasons(result)

    assert reasons["ISIC_0000005"] == "duplicate of ISIC_0000001 (same bytes)"
    assert reasons["ISIC_0000006"] == "duplicate of ISIC_0000002 (same pixels)"
    assert reasons["ISIC_0000007"].startswith("near-duplicate of ISIC_0000003 (thumbnail distance ")
    assert set(reasons) == {"ISIC_0000005", "ISIC_0000006", "ISIC_0000007"}
    assert result.clean["image_id"].tolist() == [f"ISIC_{i:07d}" for i in range(1, 5)]
    assert result.summary["failures"]["duplicate image"] == 3


def test_kept_near_duplicates_share_one_split(tmp_path: Path) -> None:
    _duplicates_source(tmp_path / "isic")
    cfg = ValidationConfig(quarantine_near_duplicates=False)
    _, result = _run(tmp_path, "lesions", tmp_path / "isic", cfg)
    groups = dict(zip(result.clean["image_id"], result.clean["duplicate_group"], strict=True))

    # Exact copies go whatever the switch says; the re-encoded one stays, grouped with its origin.
    assert set(_reasons(result)) == {"ISIC_0000005", "ISIC_0000006"}
    assert groups["ISIC_0000003"] == groups["ISIC_0000007"] == "ISIC_0000003"
    assert groups["ISIC_0000001"] == ""
    for seed in range(10):
        split = assign_splits(result.clean, 0.2, 0.2, seed=seed).set_index("image_id")["split"]
        assert split["ISIC_0000003"] == split["ISIC_0000007"]
        pair = set(np.flatnonzero(result.clean["duplicate_group"] == "ISIC_0000003").tolist())
        assert len(pair) == 2
        for train, val in kfold(result.clean, 2, seed=seed, stratify=None):
            assert pair <= set(train.tolist()) or pair <= set(val.tolist())


def test_near_duplicate_distance_is_configurable(tmp_path: Path) -> None:
    _duplicates_source(tmp_path / "isic")
    _, result = _run(
        tmp_path, "lesions", tmp_path / "isic", ValidationConfig(near_duplicate_max_distance=0)
    )
    assert set(_reasons(result)) == {"ISIC_0000005", "ISIC_0000006"}
    assert (result.clean["duplicate_group"] == "").all()


def test_a_keeper_is_never_a_row_ingestion_already_rejected(tmp_path: Path) -> None:
    """The copy of an image whose own metadata is broken is the one to keep."""
    src = tmp_path / "isic"
    _legacy(src, "ISIC_0000001", encoded(picture(1)))
    (src / "ISIC_0000001.json").write_text("{broken")
    _legacy(src, "ISIC_0000002", (src / "ISIC_0000001.jpg").read_bytes())
    _legacy(src, "ISIC_0000003", encoded(picture(3)))
    _, result = _run(tmp_path, "lesions", src)

    assert set(_reasons(result)) == {"ISIC_0000001"}
    assert "ISIC_0000002" in set(result.clean["image_id"])


# --------------------------------------------------------------------------------------------
# ids that are not safe file names


def test_unsafe_or_foreign_ids_are_quarantined_and_never_paths(tmp_path: Path) -> None:
    src = tmp_path / "download"
    for name in ("ISIC_0000001", "ISIC_0000002", "photo"):
        save(src / f"{name}.jpg", picture(len(name) + int(name[-1] == "2")))
    (src / "metadata.csv").write_text(
        "isic_id,benign_malignant\nISIC_0000001,benign\nISIC_0000002,malignant\n"
        "../../etc/passwd,benign\nphoto,benign\n"
    )
    ingested, result = _run(tmp_path, "lesions", src)
    reasons = _reasons(result)

    assert reasons["../../etc/passwd"].startswith(
        "not decodable: image_id '../../etc/passwd' is not an ISIC id (ISIC_ and 7 digits)"
    )
    assert reasons["photo"] == "image_id 'photo' is not an ISIC id (ISIC_ and 7 digits)"
    assert set(result.clean["image_id"]) == {"ISIC_0000001", "ISIC_0000002"}
    written = {p.relative_to(ingested.path).as_posix() for p in ingested.path.rglob("*.png")}
    assert written == {"images/16/ISIC_0000001.png", "images/16/ISIC_0000002.png"}


def test_polyp_stems_must_be_plain_file_names(tmp_path: Path) -> None:
    src = tmp_path / "kvasir"
    # "a\\..\\..\\evil" climbs two folders on Windows; "..\\x" would be a hidden dot-file here.
    for name in ("ok", "a\\..\\..\\evil", "-rf"):
        save(src / "images" / f"{name}.jpg", picture(len(name), (40, 40)))
        save(src / "masks" / f"{name}.png", ellipse_mask(len(name)))
    ingested, result = _run(tmp_path, "polyps", src)
    reasons = _reasons(result)

    assert reasons == {
        "a\\..\\..\\evil": "image_id 'a\\\\..\\\\..\\\\evil' is not a safe file name "
        "(a letter or digit, then letters, digits, '.', '_', '-')",
        "-rf": "image_id '-rf' is not a safe file name "
        "(a letter or digit, then letters, digits, '.', '_', '-')",
    }
    assert load_cache(ingested.path, 16).ids == ["ok"]


@pytest.mark.parametrize("image_id", ["../x", "..", "a/b", "a\\b", "", ".hidden", "x\n"])
def test_copy_paths_cannot_leave_the_output_folder(tmp_path: Path, image_id: str) -> None:
    with pytest.raises(ValueError, match="not a safe file name"):
        copy_path(tmp_path, "images", 16, image_id)
    assert copy_path(tmp_path, "masks", 16, "ISIC_0000001") == (
        tmp_path / "masks" / "16" / "ISIC_0000001.png"
    )


# --------------------------------------------------------------------------------------------
# masks


def _kvasir_with(src: Path, mask: np.ndarray) -> None:
    save(src / "images" / "good.jpg", picture(1, (40, 40)))
    save(src / "masks" / "good.png", ellipse_mask(1))
    save(src / "images" / "odd.jpg", picture(2, (40, 40)))
    save(src / "masks" / "odd.png", mask)


def test_an_empty_mask_is_quarantined_by_default(tmp_path: Path) -> None:
    _kvasir_with(tmp_path / "kvasir", np.zeros((40, 40), np.uint8))
    _, result = _run(tmp_path, "polyps", tmp_path / "kvasir")
    assert _reasons(result) == {"odd": "mask empty (no foreground)"}

    allowed = ValidationConfig(min_mask_foreground_share=0.0)
    _, result = _run(tmp_path, "polyps", tmp_path / "kvasir", allowed)
    assert _reasons(result) == {}


def test_a_tiny_mask_is_judged_against_the_configured_share(tmp_path: Path) -> None:
    mask = np.zeros((40, 40), np.uint8)
    mask[:2, :4] = 255  # 8 of 1600 pixels: 0.5%
    _kvasir_with(tmp_path / "kvasir", mask)
    cfg = ValidationConfig(min_mask_foreground_share=0.01)
    _, result = _run(tmp_path, "polyps", tmp_path / "kvasir", cfg)
    assert _reasons(result) == {
        "odd": "mask foreground 0.50%, below min_mask_foreground_share 1.00%"
    }


def test_rgba_images_reach_the_dataset_with_alpha_as_mask(tmp_path: Path) -> None:
    src = tmp_path / "rgba"
    for i in (1, 2):
        save(src / f"p{i}.png", np.dstack([picture(i, (40, 40)), ellipse_mask(i)]))
    save(src / "grey.png", Image.fromarray(np.dstack([picture(3, (40, 40))[..., 0],
                                                      ellipse_mask(3)]), "LA"))  # fmt: skip
    ingested, result = _run(tmp_path, "polyps", src)
    rows = ingested.manifest.set_index("image_id")

    assert ingested.format == "rgba"
    assert rows.loc["p1", "mode"] == "RGB"  # the alpha went to the mask
    assert _reasons(result) == {"grey": "mode L, expected RGB"}
    assert result.clean["image_id"].tolist() == ["p1", "p2"]
    cache = load_cache(ingested.path, 16, ["p1"])
    expected = np.asarray(Image.fromarray(ellipse_mask(1)).resize((16, 16), Image.BILINEAR)) >= 128
    assert (cache.masks[0] == expected).mean() > 0.95


def test_non_rgb_images_in_other_layouts_are_still_quarantined(tmp_path: Path) -> None:
    src = tmp_path / "kvasir"
    save(src / "images" / "good.jpg", picture(1, (40, 40)))
    save(src / "masks" / "good.png", ellipse_mask(1))
    save(src / "images" / "alpha.png", np.dstack([picture(2, (40, 40)), ellipse_mask(2)]))
    save(src / "masks" / "alpha.png", ellipse_mask(2))
    _, result = _run(tmp_path, "polyps", src)
    assert _reasons(result) == {"alpha": "mode RGBA, expected RGB"}


def test_duplicate_group_column_is_blank_without_duplicates(tmp_path: Path) -> None:
    src = tmp_path / "isic"
    for i in (1, 2):
        _legacy(src, f"ISIC_{i:07d}", encoded(picture(i)))
    _, result = _run(tmp_path, "lesions", src)
    assert result.clean["duplicate_group"].tolist() == ["", ""]
    assert isinstance(result.clean, pd.DataFrame)
