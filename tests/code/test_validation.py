"""Validation with real Great Expectations on tiny manifests built here.

Each test builds rows with the manifest columns of docs/ARCHITECTURE.md, breaks some of them in
one known way, and checks that exactly those rows are quarantined with a readable reason.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from components.config import ValidationConfig
from components.errors import SynthmedError, ValidationFailed
from components.validation import (
    MANIFEST_COLUMNS,
    ValidationResult,
    check_threshold,
    log_to_mlflow,
    validate_manifest,
    write_report,
)

CFG = ValidationConfig()
INTS = ("bytes", "height", "width", "age_approx", "mask_height", "mask_width")
FLOATS = ("mask_nonbinary_share", "mask_foreground_share")


def lesion(i: int, **changes: Any) -> dict[str, Any]:
    row = dict.fromkeys(MANIFEST_COLUMNS)
    row.update(
        image_id=f"ISIC_{i:07d}",
        dataset="lesions",
        source="local",
        source_path=f"images/ISIC_{i:07d}.jpg",
        sha256=f"{i:064x}",
        bytes=1000 + i,
        decodable=True,
        error=None,
        height=64,
        width=64,
        mode="RGB",
        label="malignant" if i % 3 == 0 else "benign",
        license="CC-0",
    )
    row.update(changes)
    return row


def polyp(i: int, **changes: Any) -> dict[str, Any]:
    good = {
        "dataset": "polyps",
        "label": "polyp",
        "image_id": f"polyp_{i:03d}",
        "mask_source_path": f"masks/polyp_{i:03d}.png",
        "mask_height": 64,
        "mask_width": 64,
        "mask_nonbinary_share": 0.0,
        "mask_foreground_share": 0.1 * (i % 5 + 1),
    }
    return lesion(i, **{**good, **changes})


def manifest(rows: list[dict[str, Any]]) -> pd.DataFrame:
    """Rows typed as ingestion's read_manifest returns them: nullable numbers, blank text."""
    df = pd.DataFrame(rows, columns=list(MANIFEST_COLUMNS))
    for col in df.columns:
        if col in INTS:
            df[col] = df[col].astype("Int64")
        elif col in FLOATS:
            df[col] = df[col].astype("Float64")
        elif col != "decodable":
            df[col] = df[col].fillna("").astype(str)
    return df


def reasons(result: ValidationResult) -> dict[str, str]:
    return dict(zip(result.quarantine["image_id"], result.quarantine["reason"], strict=True))


def lesion_rows() -> list[dict[str, Any]]:
    """Six good lesions plus one row broken in each lesion-specific way."""
    return [lesion(i) for i in range(6)] + [
        lesion(10, decodable=False, error="cannot identify image file", height=None, width=None,
               mode=None),
        lesion(11, mode="CMYK"),
        lesion(12, mode="L"),
        lesion(13, label="indeterminate"),
        lesion(14, label=None, error="metadata: invalid JSON"),
        lesion(15, height=20),
        lesion(0, sha256="f" * 64),  # second occurrence of ISIC_0000000
    ]  # fmt: skip


@pytest.fixture(scope="module")
def lesion_result() -> ValidationResult:
    return validate_manifest(manifest(lesion_rows()), CFG, "lesions")


@pytest.fixture(scope="module")
def polyp_result() -> ValidationResult:
    rows = [polyp(i) for i in range(4)] + [
        polyp(10, mask_source_path=None, mask_height=None, mask_width=None),
        polyp(11, mask_source_path=""),
        polyp(12, mask_height=60, mask_width=60),
        polyp(13, mask_nonbinary_share=0.31),
    ]
    return validate_manifest(manifest(rows), CFG, "polyps")


def test_lesion_rows_get_their_reasons(lesion_result: ValidationResult) -> None:
    assert reasons(lesion_result) == {
        "ISIC_0000010": "not decodable: cannot identify image file",
        "ISIC_0000011": "mode CMYK, expected RGB",
        "ISIC_0000012": "mode L, expected RGB",
        "ISIC_0000013": "label 'indeterminate' not in [benign, malignant]",
        "ISIC_0000014": "missing label: metadata: invalid JSON",
        "ISIC_0000015": "image 64x20, smaller than min_side 32; "
        "image 64x20, aspect ratio 3.2 above max_aspect_ratio 3.0",
        "ISIC_0000000": "duplicate image_id",
    }
    # The first occurrence of the duplicated id is the one kept.
    dup = lesion_result.quarantine.query("image_id == 'ISIC_0000000'")
    assert dup["sha256"].tolist() == ["f" * 64]


def test_clean_rows_pass_untouched(lesion_result: ValidationResult) -> None:
    expected = manifest(lesion_rows()).iloc[:6]
    pd.testing.assert_frame_equal(lesion_result.clean.drop(columns="duplicate_group"), expected)
    assert lesion_result.clean["duplicate_group"].tolist() == [""] * 6


def test_lesion_summary(lesion_result: ValidationResult) -> None:
    s = lesion_result.summary
    assert (s["total"], s["passed"], s["quarantined"]) == (13, 6, 7)
    assert s["failed_share"] == pytest.approx(7 / 13)
    assert s["failures"]["mode not RGB"] == 2
    assert s["failures"]["duplicate image_id"] == 1
    assert s["failures"]["height below min_side"] == 1
    assert s["failures"]["width below min_side"] == 0
    # Class balance of the clean rows: ids 0 and 3 are malignant.
    assert s["class_balance"]["counts"] == {"benign": 4, "malignant": 2}
    assert s["class_balance"]["shares"]["malignant"] == pytest.approx(1 / 3)
    json.dumps(s)


def test_polyp_mask_checks(polyp_result: ValidationResult) -> None:
    assert reasons(polyp_result) == {
        "polyp_010": "missing mask",
        "polyp_011": "missing mask",
        "polyp_012": "mask 60x60, image 64x64",
        "polyp_013": "mask not binary (31% grey)",
    }
    fg = polyp_result.summary["mask_foreground_share"]
    assert fg["count"] == 4
    assert fg["min"] == pytest.approx(0.1)
    assert fg["max"] == pytest.approx(0.4)
    assert "class_balance" not in polyp_result.summary


def test_gx_result_names_failed_rows(polyp_result: ValidationResult) -> None:
    gx = json.loads(json.dumps(polyp_result.gx_result))
    pair = [
        r for r in gx["results"]
        if r["expectation_config"]["type"] == "expect_column_pair_values_to_be_equal"
    ]  # fmt: skip
    assert len(pair) == 2 and all(not r["success"] for r in pair)
    assert all(r["result"]["unexpected_index_list"] == [6] for r in pair)


def test_unknown_vocabulary_and_min_side_follow_config() -> None:
    cfg = ValidationConfig(labels=["benign", "malignant", "indeterminate"], min_side=100)
    result = validate_manifest(
        manifest([lesion(1), lesion(2, label="indeterminate")]), cfg, "lesions"
    )
    assert result.clean.empty
    assert set(result.quarantine["reason"]) == {"image 64x64, smaller than min_side 100"}


def test_table_level_failures_quarantine_every_row() -> None:
    df = manifest([lesion(1), lesion(2)]).drop(columns=["mode", "width"])
    df = df.astype({"height": "float64"})
    result = validate_manifest(df, CFG, "lesions")
    assert result.clean.empty
    assert (
        result.quarantine["reason"].tolist()
        == ["manifest lacks columns width, mode; height column is float64, expected integers"] * 2
    )


def test_non_integer_height_values_are_flagged_per_row() -> None:
    df = manifest([lesion(1), lesion(2)]).astype({"height": object})
    df.loc[1, "height"] = "tall"
    result = validate_manifest(df, CFG, "lesions")
    assert reasons(result) == {"ISIC_0000002": "height 'tall' is not an integer"}


def test_threshold_raises_one_line(lesion_result: ValidationResult, tmp_path: Path) -> None:
    with pytest.raises(ValidationFailed) as info:
        check_threshold(lesion_result, CFG, report=tmp_path)
    message = str(info.value)
    assert "\n" not in message
    assert message.startswith(
        "lesions: 7 of 13 rows (53.8%) failed validation, more than max_failed_share 10.0%; "
        "top reasons: mode not RGB (2), "
    )
    assert message.endswith(f"; see {tmp_path / 'quarantine.csv'}")
    assert isinstance(info.value, SynthmedError)


def test_threshold_passes_under_limit(lesion_result: ValidationResult) -> None:
    check_threshold(lesion_result, ValidationConfig(max_failed_share=0.6))
    check_threshold(lesion_result, ValidationConfig(max_failed_share=7 / 13))


def test_missing_text_may_be_null_or_blank() -> None:
    df = pd.DataFrame([lesion(1), lesion(2, label=None), lesion(3, label=" ")])
    df = df.astype({c: "Int64" for c in ("height", "width")})
    result = validate_manifest(df, CFG, "lesions")
    assert reasons(result) == {"ISIC_0000002": "missing label", "ISIC_0000003": "missing label"}
    # Quarantined rows keep their cells as they came; only GX sees blanks as missing.
    assert pd.isna(result.quarantine.loc[0, "label"])
    assert result.quarantine.loc[1, "label"] == " "


def test_write_report(lesion_result: ValidationResult, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="result is for lesions, not polyps"):
        write_report(lesion_result, tmp_path, "polyps")
    paths = write_report(lesion_result, tmp_path, "lesions")
    quarantine = pd.read_csv(paths["quarantine"])
    assert len(quarantine) == 7 and "reason" in quarantine
    gx = json.loads(paths["gx_result"].read_text())
    assert gx["success"] is False
    summary = json.loads(paths["summary"].read_text())
    assert summary["quarantined"] == 7
    assert paths["data_docs"] == tmp_path / "data_docs" / "index.html"
    assert "lesions_manifest" in paths["data_docs"].read_text()
    pages = list((tmp_path / "data_docs" / "validations").rglob("*.html"))
    assert len(pages) == 1
    page = pages[0].read_text()
    # The failing mode expectation and its unexpected value are on the validation page.
    assert "values must belong to this set" in page and "CMYK" in page
    assert not list(tmp_path.glob(".*.tmp"))


def test_log_to_mlflow(polyp_result: ValidationResult, tmp_path: Path, mlflow_sqlite: str) -> None:
    import mlflow
    from mlflow.tracking import MlflowClient

    from components.tracking import MlflowReporter

    write_report(polyp_result, tmp_path)
    with mlflow.start_run() as run:
        log_to_mlflow(polyp_result, tmp_path, MlflowReporter(run.info.run_id))
    client = MlflowClient()
    metrics = client.get_run(run.info.run_id).data.metrics
    assert metrics["validation.polyps.total"] == 8
    assert metrics["validation.polyps.quarantined"] == 4
    assert metrics["validation.polyps.failed_share"] == pytest.approx(0.5)
    assert metrics["validation.polyps.mask_foreground_share.max"] == pytest.approx(0.4)
    logged = {f.path for f in client.list_artifacts(run.info.run_id, "validation/polyps")}
    assert {
        "validation/polyps/quarantine.csv",
        "validation/polyps/summary.json",
        "validation/polyps/gx_result.json",
        "validation/polyps/data_docs",
    } <= logged
    docs = {f.path for f in client.list_artifacts(run.info.run_id, "validation/polyps/data_docs")}
    assert "validation/polyps/data_docs/index.html" in docs


def test_log_to_mlflow_lesion_class_counts(lesion_result: ValidationResult, tmp_path: Path) -> None:
    from components.tracking import NullReporter

    write_report(lesion_result, tmp_path)
    reporter = NullReporter()
    log_to_mlflow(lesion_result, tmp_path, reporter)
    assert reporter.last["validation.lesions.class_count.benign"] == 4
    assert reporter.last["validation.lesions.class_share.malignant"] == pytest.approx(1 / 3)
