"""Validation checks added for issue 8, on manifests built row by row (no images, real GX)."""

from __future__ import annotations

from pathlib import Path

import pytest

from components.config import ValidationConfig
from components.errors import ValidationFailed
from components.validation import check_threshold, validate_manifest
from tests.code.test_validation import lesion, manifest, polyp, reasons

CFG = ValidationConfig()


def test_both_datasets_over_threshold_are_named_in_one_line(tmp_path: Path) -> None:
    lesions = validate_manifest(
        manifest([lesion(1), lesion(2, mode="CMYK"), lesion(3, mode="L")]), CFG, "lesions"
    )
    polyps = validate_manifest(
        manifest([polyp(1), polyp(2, mask_foreground_share=0.0)]), CFG, "polyps"
    )
    reports = {"lesions": tmp_path / "l", "polyps": tmp_path / "p"}
    with pytest.raises(ValidationFailed) as info:
        check_threshold([lesions, polyps], CFG, report=reports)
    message = str(info.value)

    assert "\n" not in message
    assert message == (
        "lesions: 2 of 3 rows (66.7%) failed validation, more than max_failed_share 10.0%; "
        f"top reasons: mode not RGB (2); see {tmp_path / 'l/quarantine.csv'} | "
        "polyps: 1 of 2 rows (50.0%) failed validation, more than max_failed_share 10.0%; "
        f"top reasons: mask foreground share (1); see {tmp_path / 'p/quarantine.csv'}"
    )


def test_only_the_dataset_over_threshold_is_named() -> None:
    lesions = validate_manifest(manifest([lesion(i) for i in range(1, 4)]), CFG, "lesions")
    polyps = validate_manifest(manifest([polyp(1), polyp(2, mode="L")]), CFG, "polyps")
    with pytest.raises(ValidationFailed, match=r"^polyps: 1 of 2 rows") as info:
        check_threshold([lesions, polyps], CFG)
    assert "lesions" not in str(info.value)
    check_threshold([lesions], CFG)


def test_any_ingestion_error_quarantines_the_row() -> None:
    """An error ingestion recorded on an otherwise fine row (an id listed twice in the CSV, an
    undecodable mask) used to pass: ingestion records, validation must judge."""
    df = manifest([
        lesion(1),
        lesion(2, error="isic_id listed 2 times in metadata.csv"),
        lesion(3, decodable=False, error="no image", height=None, width=None, mode=None),
    ])  # fmt: skip
    assert reasons(validate_manifest(df, CFG, "lesions")) == {
        "ISIC_0000002": "isic_id listed 2 times in metadata.csv",
        "ISIC_0000003": "not decodable: no image",
    }
    masks = manifest(
        [
            polyp(1),
            polyp(
                2,
                error="undecodable mask: OSError: broken",
                mask_height=None,
                mask_width=None,
                mask_nonbinary_share=None,
                mask_foreground_share=None,
            ),
        ]
    )
    assert reasons(validate_manifest(masks, CFG, "polyps")) == {
        "polyp_002": "undecodable mask: OSError: broken"
    }


def test_mask_foreground_bounds() -> None:
    rows = [polyp(1), polyp(2, mask_foreground_share=0.0), polyp(3, mask_foreground_share=1.0),
            polyp(4, mask_foreground_share=0.0004)]  # fmt: skip
    assert reasons(validate_manifest(manifest(rows), CFG, "polyps")) == {
        "polyp_002": "mask empty (no foreground)",
        "polyp_003": "mask full (no background)",
        "polyp_004": "mask foreground 0.04%, below min_mask_foreground_share 0.10%",
    }


def test_aspect_ratio_is_bounded() -> None:
    rows = [lesion(1), lesion(2, width=640, height=64), lesion(3, width=64, height=150)]
    assert reasons(validate_manifest(manifest(rows), CFG, "lesions")) == {
        "ISIC_0000002": "image 640x64, aspect ratio 10.0 above max_aspect_ratio 3.0"
    }


def test_exact_duplicates_by_hash_without_pixels() -> None:
    """A manifest alone is enough: copies are found from the recorded hashes."""
    rows = [lesion(1, sha256="a" * 64), lesion(2, sha256="a" * 64),
            lesion(3, pixels_sha256="b" * 64), lesion(4, pixels_sha256="b" * 64)]  # fmt: skip
    assert reasons(validate_manifest(manifest(rows), CFG, "lesions")) == {
        "ISIC_0000002": "duplicate of ISIC_0000001 (same bytes)",
        "ISIC_0000004": "duplicate of ISIC_0000003 (same pixels)",
    }
