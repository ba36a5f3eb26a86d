"""Great Expectations checks on an ingested manifest: which rows may be trained on, and why not.

Ingestion records facts (``decodable``, ``mode``, sizes, the label as found); this module judges
them. :func:`validate_manifest` runs one GX 1.x suite over the manifest in an ephemeral context
(no files, nothing sent) with result format COMPLETE, so every row-level expectation returns the
positions of the rows it failed. Each expectation is paired with a human reason, and a failed row
goes to quarantine carrying all its reasons, e.g. ``"image 64x20, smaller than min_side 32; mode
CMYK, expected RGB"`` (sizes are width x height). A table-level failure (a missing column, a size column that is not
integer) leaves no row trustworthy, so it quarantines every row; the threshold check then stops
the stage with a one-line explanation.

Two checks look at derived columns the suite adds to the batch: ``aspect_ratio`` (long side /
short side) and ``duplicate``, the verdict of :func:`components.data.duplicates.find_duplicates`
(a copy of another row by bytes, pixels or thumbnail, naming the id it copies). Any error that
ingestion recorded quarantines its row too. Clean rows gain one column, ``duplicate_group``: the
first id of the near-duplicate group a row belongs to when near-duplicates are kept
(``quarantine_near_duplicates: false``), blank otherwise; the splits keep such a group together.

The manifest is expected as ``components.data.read_manifest`` returns it: nullable integer sizes,
boolean ``decodable``, blank text where a value is missing. Typical use by the validate stage::

    result = validate_manifest(read_manifest(path), cfg.validation, "lesions")
    write_report(result, out_dir, "lesions")
    check_threshold(result, cfg.validation, report=out_dir)

GX is imported inside the functions that need it: the import costs about 5 s.
"""

from __future__ import annotations

import json
import os
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
import pandas as pd

from components.config import ValidationConfig
from components.data.duplicates import find_duplicates
from components.data.manifest import COLUMNS
from components.errors import ValidationFailed
from components.io import atomic_dir, atomic_write_json, atomic_write_text

if TYPE_CHECKING:
    from components.tracking import Reporter

Dataset = Literal["lesions", "polyps"]

MANIFEST_COLUMNS = COLUMNS
"""The manifest contract (components.data.manifest.COLUMNS); extra columns are allowed."""

# GX compares a pandas column's dtype with these names; the *Dtype names are pandas' nullable
# integers, which a size column needs to stay integer when undecodable rows leave it empty. An
# object column is checked value by value, where "int" is Python's int.
_INTEGER_TYPES = [
    "int",
    *(f"{s}int{b}" for s in ("", "u") for b in (8, 16, 32, 64)),
    *(f"{s}Int{b}Dtype" for s in ("", "U") for b in (8, 16, 32, 64)),
]
_SITE = "synthmed"


@dataclass(frozen=True)
class ValidationResult:
    """The verdict on one manifest.

    Attributes:
        dataset: ``lesions`` or ``polyps``.
        clean: rows that passed every expectation, unchanged (fresh 0..n-1 index), plus
            ``duplicate_group`` (see the module docstring).
        quarantine: rows that failed, unchanged, plus ``reason`` (all reasons joined by "; ").
        gx_result: the GX suite validation result as a JSON-able dict.
        summary: counts, failed share, rows failed per check, and class balance (lesions) or
            mask foreground share statistics (polyps) of the clean rows.
    """

    dataset: Dataset
    clean: pd.DataFrame
    quarantine: pd.DataFrame
    gx_result: dict[str, Any]
    summary: dict[str, Any]


@dataclass(frozen=True)
class _Check:
    """One expectation and how to explain its failures.

    ``name`` keys the per-check failure counts (and is stored in the expectation's meta, which is
    how a GX result is matched back to its check). ``reason`` explains one failing row, or returns
    None when GX's verdict does not quarantine that row (only the first occurrence of a duplicate
    id is kept). ``table_reason``, when set, is the reason given to every row if the expectation
    fails as a whole, without row positions (schema and dtype checks of present columns).
    """

    name: str
    expectation: Any
    reason: Callable[[pd.Series], str | None]
    table_reason: str | None = None


def _blanks_to_na(df: pd.DataFrame) -> pd.DataFrame:
    """The manifest with blank text cells as missing values.

    Ingestion writes a missing label, mode or mask path as blank text; GX's null-aware
    expectations (not-null, and set checks that skip nulls) need them as nulls.
    """
    out = df.copy()
    for col in out.columns:
        if out[col].dtype == object or pd.api.types.is_string_dtype(out[col]):
            blank = out[col].map(lambda v: isinstance(v, str) and not v.strip())
            out[col] = out[col].mask(blank.astype(bool))
    return out


def _missing(value: Any) -> bool:
    return value is None or bool(pd.isna(value))


def _num(value: Any) -> str:
    """A size for a reason: ``64`` for 64 or 64.0, ``?`` when missing."""
    if _missing(value):
        return "?"
    return str(int(value)) if float(value).is_integer() else str(value)


def _size(row: pd.Series, prefix: str = "") -> str:
    return f"{_num(row.get(prefix + 'width'))}x{_num(row.get(prefix + 'height'))}"


def _with_error(text: str, row: pd.Series) -> str:
    error = row.get("error")
    return text if _missing(error) or not str(error).strip() else f"{text}: {error}"


def _true(value: Any) -> bool:
    return isinstance(value, bool | np.bool_) and bool(value)


def _error_reason(row: pd.Series, dataset: Dataset) -> str | None:
    """The ingestion error of a row, unless a check that quotes it already failed the row."""
    told = not _true(row.get("decodable")) or (dataset == "lesions" and _missing(row.get("label")))
    return None if told else str(row["error"])


def _foreground_reason(row: pd.Series, cfg: ValidationConfig) -> str:
    share = float(row["mask_foreground_share"])
    if share < cfg.min_mask_foreground_share:
        if share == 0:
            return "mask empty (no foreground)"
        return (
            f"mask foreground {share:.2%}, below min_mask_foreground_share "
            f"{cfg.min_mask_foreground_share:.2%}"
        )
    if share == 1:
        return "mask full (no background)"
    return (
        f"mask foreground {share:.2%}, above max_mask_foreground_share "
        f"{cfg.max_mask_foreground_share:.2%}"
    )


def _derived(df: pd.DataFrame, cfg: ValidationConfig) -> tuple[pd.DataFrame, dict[Any, str]]:
    """The batch GX validates: the manifest plus ``aspect_ratio`` and ``duplicate``; and the
    near-duplicate group of each row that has one."""
    out = df.copy()
    if {"width", "height"} <= set(df.columns):
        sides = df[["width", "height"]].apply(pd.to_numeric, errors="coerce").astype(float)
        short = sides.min(axis=1)
        out["aspect_ratio"] = (sides.max(axis=1) / short.where(short > 0)).astype(float)
    else:
        out["aspect_ratio"] = np.nan
    found = find_duplicates(df, cfg.near_duplicate_max_distance, cfg.quarantine_near_duplicates)
    out["duplicate"] = pd.Series(found.reasons, index=df.index, dtype=object)
    return out, found.groups


def _checks(df: pd.DataFrame, cfg: ValidationConfig, dataset: Dataset) -> list[_Check]:
    """The suite for one dataset; expectations are GX objects, reasons are plain functions."""
    import great_expectations.expectations as gxe

    missing_columns = [c for c in MANIFEST_COLUMNS if c not in df.columns]
    # GX flags every occurrence of a duplicated id; the first one is kept as the original.
    later_duplicates = (
        set(df.index[df["image_id"].duplicated(keep="first")]) if "image_id" in df else set()
    )
    labels = ", ".join(cfg.labels)
    checks = [
        _Check(
            "columns missing",
            gxe.ExpectTableColumnsToMatchSet(column_set=list(MANIFEST_COLUMNS), exact_match=False),
            lambda row: None,
            f"manifest lacks columns {', '.join(missing_columns)}",
        ),
        *(
            _Check(
                f"{col} not integer",
                gxe.ExpectColumnValuesToBeInTypeList(column=col, type_list=_INTEGER_TYPES),
                lambda row, col=col: f"{col} {row[col]!r} is not an integer",
                f"{col} column is {df[col].dtype}, expected integers" if col in df else None,
            )
            for col in ("height", "width")
        ),
        _Check(
            "missing image_id",
            gxe.ExpectColumnValuesToNotBeNull(column="image_id"),
            lambda row: "missing image_id",
        ),
        _Check(
            "duplicate image_id",
            gxe.ExpectColumnValuesToBeUnique(column="image_id"),
            lambda row: "duplicate image_id" if row.name in later_duplicates else None,
        ),
        _Check(
            "not decodable",
            gxe.ExpectColumnValuesToBeInSet(column="decodable", value_set=[True]),
            lambda row: _with_error("not decodable", row),
        ),
        # Ingestion records what is wrong with a file or its metadata (an id listed twice, an id
        # that is no file name, an undecodable mask); any such row is unusable.
        _Check(
            "ingestion error",
            gxe.ExpectColumnValuesToBeNull(column="error"),
            lambda row: _error_reason(row, dataset),
        ),
        _Check(
            "duplicate image",
            gxe.ExpectColumnValuesToBeNull(column="duplicate"),
            lambda row: str(row["duplicate"]),
        ),
        _Check(
            "mode not RGB",
            gxe.ExpectColumnValuesToBeInSet(column="mode", value_set=["RGB"]),
            lambda row: f"mode {row['mode']}, expected RGB",
        ),
        *(
            _Check(
                f"{col} below min_side",
                gxe.ExpectColumnValuesToBeBetween(column=col, min_value=cfg.min_side),
                lambda row: f"image {_size(row)}, smaller than min_side {cfg.min_side}",
            )
            for col in ("height", "width")
        ),
        _Check(
            "aspect ratio above max",
            gxe.ExpectColumnValuesToBeBetween(
                column="aspect_ratio", max_value=cfg.max_aspect_ratio
            ),
            lambda row: (
                f"image {_size(row)}, aspect ratio {row['aspect_ratio']:.1f} above "
                f"max_aspect_ratio {cfg.max_aspect_ratio}"
            ),
        ),
    ]
    if dataset == "lesions":
        checks += [
            # Ingestion leaves the label empty when the metadata is unreadable; GX skips nulls
            # in set checks, so an empty label needs its own expectation.
            _Check(
                "missing label",
                gxe.ExpectColumnValuesToNotBeNull(column="label"),
                lambda row: _with_error("missing label", row),
            ),
            _Check(
                "label not in vocabulary",
                gxe.ExpectColumnValuesToBeInSet(column="label", value_set=list(cfg.labels)),
                lambda row: f"label '{row['label']}' not in [{labels}]",
            ),
        ]
    else:
        checks += [
            _Check(
                "missing mask",
                gxe.ExpectColumnValuesToNotBeNull(column="mask_source_path"),
                lambda row: "missing mask",
            ),
            # A missing mask is reported once, above, not again as a size mismatch.
            *(
                _Check(
                    f"mask {dim} differs",
                    gxe.ExpectColumnPairValuesToBeEqual(
                        column_A=f"mask_{dim}",
                        column_B=dim,
                        ignore_row_if="either_value_is_missing",
                    ),
                    lambda row: f"mask {_size(row, 'mask_')}, image {_size(row)}",
                )
                for dim in ("height", "width")
            ),
            _Check(
                "mask not binary",
                gxe.ExpectColumnValuesToBeBetween(
                    column="mask_nonbinary_share", max_value=cfg.max_mask_nonbinary_share
                ),
                lambda row: f"mask not binary ({row['mask_nonbinary_share']:.0%} grey)",
            ),
            _Check(
                "mask foreground share",
                gxe.ExpectColumnValuesToBeBetween(
                    column="mask_foreground_share",
                    min_value=cfg.min_mask_foreground_share,
                    max_value=cfg.max_mask_foreground_share,
                ),
                lambda row: _foreground_reason(row, cfg),
            ),
        ]
    for check in checks:
        check.expectation.meta = {"synthmed_check": check.name}
    return checks


def _run_suite(df: pd.DataFrame, checks: list[_Check], dataset: Dataset) -> dict[str, Any]:
    """Validate ``df`` against the checks' expectations in an ephemeral GX context."""
    import great_expectations as gx
    from great_expectations.data_context.types.base import ProgressBarsConfig

    context = gx.get_context(mode="ephemeral")
    context.variables.progress_bars = ProgressBarsConfig(globally=False)
    batch = (
        context.data_sources.add_pandas(dataset)
        .add_dataframe_asset("manifest")
        .add_batch_definition_whole_dataframe("manifest")
    )
    suite = context.suites.add(
        gx.ExpectationSuite(
            name=f"{dataset}_manifest", expectations=[c.expectation for c in checks]
        )
    )
    definition = context.validation_definitions.add(
        gx.ValidationDefinition(name=f"{dataset}_manifest", data=batch, suite=suite)
    )
    result = definition.run(
        batch_parameters={"dataframe": df}, result_format={"result_format": "COMPLETE"}
    )
    # A JSON round trip turns numpy scalars left inside GX's dict into plain values.
    return json.loads(json.dumps(result.to_json_dict(), default=str))


def _failed_rows(df: pd.DataFrame, check: _Check, outcome: dict[str, Any]) -> dict[Any, str]:
    """Row index -> reason for the rows ``check`` quarantines, given its GX outcome."""
    if outcome["success"]:
        return {}
    positions = outcome["result"].get("unexpected_index_list")
    if positions is None:
        # No row positions: a table-level verdict, or a row-level expectation that could not
        # run because its column is missing (the schema check quarantines for that).
        return dict.fromkeys(df.index, check.table_reason) if check.table_reason else {}
    reasons = {i: check.reason(df.loc[i]) for i in positions}
    return {i: r for i, r in reasons.items() if r is not None}


def _summary(
    dataset: Dataset,
    total: int,
    clean: pd.DataFrame,
    failures: dict[str, int],
    cfg: ValidationConfig,
) -> dict[str, Any]:
    quarantined = total - len(clean)
    summary: dict[str, Any] = {
        "dataset": dataset,
        "total": total,
        "passed": len(clean),
        "quarantined": quarantined,
        "failed_share": quarantined / total if total else 0.0,
        "failures": failures,
    }
    if dataset == "lesions":
        found = clean["label"] if "label" in clean else pd.Series(dtype=object)
        counts = {label: int((found == label).sum()) for label in cfg.labels}
        summary["class_balance"] = {
            "counts": counts,
            "shares": {k: v / len(clean) if len(clean) else 0.0 for k, v in counts.items()},
        }
    else:
        share = pd.to_numeric(clean.get("mask_foreground_share", pd.Series()), errors="coerce")
        share = share.dropna()
        stats = share.agg(["min", "mean", "median", "max"])
        summary["mask_foreground_share"] = {
            "count": len(share),
            **{k: float(v) if len(share) else None for k, v in stats.items()},
        }
    return summary


def validate_manifest(
    df: pd.DataFrame, cfg: ValidationConfig, dataset: Dataset
) -> ValidationResult:
    """Run the GX suite on a manifest and split its rows into clean and quarantined.

    Args:
        df: the manifest (columns of docs/ARCHITECTURE.md), as ``components.data.read_manifest``
            returns it.
        cfg: the validation section (label vocabulary, minimum side, mask tolerance).
        dataset: which suite to run; lesions check labels, polyps check masks.

    Returns:
        The clean and quarantined rows, GX's full result and a summary.
    """
    data = df.reset_index(drop=True)
    batch, groups = _derived(data, cfg)
    checked = _blanks_to_na(batch)
    checks = _checks(checked, cfg, dataset)
    gx_result = _run_suite(checked, checks, dataset)
    by_name = {c.name: c for c in checks}
    reasons: dict[Any, list[str]] = {}
    failures: dict[str, int] = {}
    for outcome in gx_result["results"]:
        check = by_name[outcome["expectation_config"]["meta"]["synthmed_check"]]
        rows = _failed_rows(checked, check, outcome)
        failures[check.name] = len(rows)
        for i, reason in rows.items():
            # Two expectations can tell the same story (mask height and width, a missing mask
            # and the reader's "missing mask" error); say each part once.
            for part in reason.split("; "):
                if part not in reasons.setdefault(i, []):
                    reasons[i].append(part)
    failed = sorted(reasons)
    clean = data.drop(index=failed)
    clean = clean.assign(duplicate_group=[groups.get(i, "") for i in clean.index])
    clean = clean.reset_index(drop=True)
    quarantine = data.loc[failed].reset_index(drop=True)
    quarantine["reason"] = ["; ".join(reasons[i]) for i in failed]
    summary = _summary(dataset, len(data), clean, failures, cfg)
    return ValidationResult(dataset, clean, quarantine, gx_result, summary)


def check_threshold(
    results: ValidationResult | Sequence[ValidationResult],
    cfg: ValidationConfig,
    report: str | os.PathLike[str] | Mapping[str, str | os.PathLike[str]] | None = None,
) -> None:
    """Stop the stage when, in any dataset, more rows failed than ``cfg.max_failed_share`` allows.

    All results are judged before raising, so when lesions and polyps both fail the one line
    names both (joined by " | ").

    Args:
        results: the verdicts of :func:`validate_manifest` (one, or one per dataset).
        cfg: the validation section (``max_failed_share``).
        report: the folder :func:`write_report` wrote (or, for several results, a mapping from
            dataset to folder), named in the message so the user knows where the quarantined
            rows are.

    Raises:
        ValidationFailed: one line with the counts, the top reasons and where to look.
    """
    results = [results] if isinstance(results, ValidationResult) else list(results)
    parts = []
    for result in results:
        s = result.summary
        if s["failed_share"] <= cfg.max_failed_share:
            continue
        folder = report.get(result.dataset) if isinstance(report, Mapping) else report
        top = Counter({k: v for k, v in s["failures"].items() if v}).most_common(3)
        reasons = ", ".join(f"{name} ({n})" for name, n in top)
        where = f"; see {Path(folder) / 'quarantine.csv'}" if folder is not None else ""
        parts.append(
            f"{result.dataset}: {s['quarantined']} of {s['total']} rows ({s['failed_share']:.1%}) "
            f"failed validation, more than max_failed_share {cfg.max_failed_share:.1%}; "
            f"top reasons: {reasons}{where}"
        )
    if parts:
        raise ValidationFailed(" | ".join(parts))


def _build_data_docs(gx_result: dict[str, Any], site_dir: Path) -> None:
    """Render GX data docs for a stored result into ``site_dir`` (index.html and pages).

    The result is loaded into a fresh ephemeral context, so docs can be built from any result
    dict, not only from the context that produced it. Only our site is built: the ephemeral
    context's default site would write to a temp folder nobody reads.
    """
    import great_expectations as gx
    from great_expectations.core.expectation_validation_result import (
        ExpectationSuiteValidationResultSchema,
    )
    from great_expectations.core.run_identifier import RunIdentifier
    from great_expectations.data_context.types.resource_identifiers import (
        ExpectationSuiteIdentifier,
        ValidationResultIdentifier,
    )

    context = gx.get_context(mode="ephemeral")
    result = ExpectationSuiteValidationResultSchema().load(gx_result)
    context.suites.add(
        gx.ExpectationSuite(
            name=result.suite_name, expectations=[r.expectation_config for r in result.results]
        )
    )
    run = result.meta["run_id"]
    batch = result.meta.get("active_batch_definition") or {}
    key = ValidationResultIdentifier(
        expectation_suite_identifier=ExpectationSuiteIdentifier(name=result.suite_name),
        run_id=RunIdentifier(run_name=run.get("run_name"), run_time=run.get("run_time")),
        batch_identifier=batch.get("data_asset_name", "manifest"),
    )
    context.validation_results_store.set(key, result)
    context.add_data_docs_site(
        _SITE,
        {
            "class_name": "SiteBuilder",
            "store_backend": {
                "class_name": "TupleFilesystemStoreBackend",
                "base_directory": str(site_dir),
            },
            "site_index_builder": {"class_name": "DefaultSiteIndexBuilder"},
        },
    )
    context.build_data_docs(site_names=[_SITE])


def write_report(
    result: ValidationResult, out_dir: str | os.PathLike[str], dataset: Dataset | None = None
) -> dict[str, Path]:
    """Write quarantine.csv, gx_result.json, summary.json, report.html and data_docs/ under
    ``out_dir``.

    ``report.html`` is the report to open: self-contained (no CDN, no external URL), it shows
    every expectation and every quarantined row offline. GX's data docs stay as an extra: they
    load their styles and scripts from CDNs and render empty without a network.

    Clean rows are not written here: the stage writes dataset.csv once it has split them.
    Every file is written atomically and the data docs folder is swapped in whole. ``dataset``,
    when given, must be the result's: it guards against one dataset's report in another's folder.

    Returns:
        The written paths by name (``quarantine``, ``gx_result``, ``summary``, ``report``,
        ``data_docs``).
    """
    if dataset is not None and dataset != result.dataset:
        raise ValueError(f"write_report: result is for {result.dataset}, not {dataset}")
    out = Path(out_dir).resolve()  # GX data docs need an absolute base_directory
    paths = {
        "quarantine": atomic_write_text(
            out / "quarantine.csv", result.quarantine.to_csv(index=False)
        ),
        "gx_result": atomic_write_json(out / "gx_result.json", result.gx_result),
        "summary": atomic_write_json(out / "summary.json", result.summary),
        "report": atomic_write_text(out / "report.html", offline_report(result)),
    }
    with atomic_dir(out / "data_docs") as tmp:
        _build_data_docs(result.gx_result, tmp)
    paths["data_docs"] = out / "data_docs" / "index.html"
    return paths


def offline_report(result: ValidationResult) -> str:
    """One self-contained HTML page: the summary, each expectation's outcome, the quarantine."""
    from components.experiments.reporting import Report

    s = result.summary
    report = Report(f"Validation of the {result.dataset} manifest")
    report.paragraph(
        f"{s['total']} rows: {s['passed']} passed, {s['quarantined']} quarantined "
        f"(failed share {s['failed_share']:.3f}). Expectations run by Great Expectations; "
        "its own data docs (data_docs/index.html) need a network for their styles."
    )
    report.heading("Expectations")
    cells = []
    for outcome in result.gx_result.get("results", []):
        conf = outcome.get("expectation_config", {})
        kwargs = {k: v for k, v in conf.get("kwargs", {}).items() if k != "batch_id"}
        found = outcome.get("result", {}) or {}
        cells.append([
            str(conf.get("type", "?")),
            ", ".join(f"{k}={v}" for k, v in sorted(kwargs.items()))[:160],
            "passed" if outcome.get("success") else "FAILED",
            str(found.get("unexpected_count", "")),
        ])  # fmt: skip
    report.table(["expectation", "arguments", "outcome", "unexpected rows"], cells)
    report.heading("Rows failed per check")
    report.table(["check", "rows"], [[k, str(v)] for k, v in sorted(s.get("failures", {}).items())])
    report.heading(f"Quarantine ({len(result.quarantine)} rows)")
    q = result.quarantine
    cols = [c for c in ("image_id", "source_path", "reason") if c in q.columns]
    report.table(cols, [[str(v) for v in row] for row in q[cols].itertuples(index=False)])
    report.facts({k: v for k, v in s.items() if k != "failures"})
    return report.html()


def log_to_mlflow(
    result: ValidationResult, out_dir: str | os.PathLike[str], reporter: Reporter
) -> None:
    """Report the summary as metrics and the files of :func:`write_report` as artifacts.

    Metric names carry the dataset (``validation.lesions.failed_share``) because one stage run
    validates both datasets. Artifacts go to ``validation/<dataset>/``.
    """
    s = result.summary
    prefix = f"validation.{result.dataset}"
    for key in ("total", "passed", "quarantined", "failed_share"):
        reporter.metric(f"{prefix}.{key}", s[key])
    for label, n in s.get("class_balance", {}).get("counts", {}).items():
        reporter.metric(f"{prefix}.class_count.{label}", n)
        reporter.metric(f"{prefix}.class_share.{label}", s["class_balance"]["shares"][label])
    for stat, value in s.get("mask_foreground_share", {}).items():
        if value is not None:
            reporter.metric(f"{prefix}.mask_foreground_share.{stat}", value)
    out = Path(out_dir)
    subdir = f"validation/{result.dataset}"
    for name in ("report.html", "quarantine.csv", "gx_result.json", "summary.json"):
        reporter.artifact(out / name, subdir=subdir)
    # Pages only: the site's static/ folder is 4 MB of fonts and images per dataset, and the
    # complete site stays in the stage output.
    docs = out / "data_docs"
    for path in sorted(docs.rglob("*.html")):
        rel = path.parent.relative_to(docs).as_posix()
        reporter.artifact(path, subdir=f"{subdir}/data_docs" + ("" if rel == "." else f"/{rel}"))
