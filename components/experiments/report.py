"""The lesion study's report: mean +- std per arm, the generator table, a bar chart, sample grids.

Written twice from the same tables: ``report.md`` (for a terminal or a pull request) and a
self-contained ``report.html`` (every image embedded as a base64 PNG, so the one file can be
attached to an MLflow run or mailed). No pyplot: a bare matplotlib Figure keeps no global state.
"""

from __future__ import annotations

import base64
import html
import io
import math
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from components.io import atomic_write_bytes, atomic_write_text

if TYPE_CHECKING:
    from components.config import Config

ARM_METRICS = ("roc_auc", "balanced_accuracy", "sensitivity", "specificity", "f1", "accuracy")
"""Test metrics of each arm in the report, in column order."""
GAN_COLUMNS = (
    ("fid_inception", "FID (Inception)"),
    ("kid_inception", "KID (Inception)"),
    ("fid_domain", "FID (domain)"),
    ("kid_domain", "KID (domain)"),
    ("memorization_share", "memorized share"),
    ("quality_psnr_mean", "PSNR"),
    ("quality_ssim_mean", "SSIM"),
    ("quality_ms_gmsd_mean", "MS-GMSD"),
    ("quality_mdsi_mean", "MDSI"),
    ("quality_haarpsi_mean", "HaarPSI"),
)


def aggregate(results: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One row per arm (in first-seen order): mean and std over seeds of :data:`ARM_METRICS`.

    std is the sample standard deviation (ddof=1) over seeds, 0 for a single seed. A NaN
    (e.g. ROC AUC of a test split with one class) propagates: hiding it would flatter the arm.
    """
    by_arm: dict[str, list[dict[str, Any]]] = {}
    for r in results:
        by_arm.setdefault(r["arm"], []).append(r)
    rows = []
    for arm, runs in by_arm.items():
        row: dict[str, Any] = {
            "arm": arm,
            "seeds": len(runs),
            "flagged": any(r["flagged"] for r in runs),
            "train_images": runs[0]["train_images"],
        }
        for m in ARM_METRICS:
            values = np.array([r["metrics"][m] for r in runs], dtype=np.float64)
            row[f"{m}_mean"] = float(values.mean())
            row[f"{m}_std"] = float(values.std(ddof=1)) if len(values) > 1 else 0.0
        rows.append(row)
    return rows


def _fmt(value: Any, digits: int = 3) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "n/a"
    return f"{value:.{digits}f}" if isinstance(value, float) else str(value)


def arm_table(rows: list[dict[str, Any]]) -> tuple[list[str], list[list[str]]]:
    """Header and cells of the arm table ('mean ± std'; flagged arms marked with '*')."""
    header = ["arm", "seeds", "train images", *ARM_METRICS]
    cells = [
        [
            row["arm"] + (" *" if row["flagged"] else ""),
            str(row["seeds"]),
            str(row["train_images"]),
            *(f"{_fmt(row[f'{m}_mean'])} ± {_fmt(row[f'{m}_std'])}" for m in ARM_METRICS),
        ]
        for row in rows
    ]
    return header, cells


def gan_table(sets: dict[str, dict[str, Any]]) -> tuple[list[str], list[list[str]]]:
    """Header and cells of the generator table, one row per GAN kind."""
    header = ["GAN", "set", "published", *(label for _, label in GAN_COLUMNS), "train s"]
    cells = []
    for kind, rec in sets.items():
        m = rec["metrics"]
        cells.append(
            [
                kind,
                rec["name"],
                "yes" if rec["published"] else "NO (memorization)",
                *(_fmt(m.get(key), 4 if key.startswith("kid") else 3) for key, _ in GAN_COLUMNS),
                _fmt(float(rec["train_seconds"]), 0),
            ]
        )
    return header, cells


def markdown_table(header: list[str], cells: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(row) + " |" for row in cells]
    return "\n".join(lines)


def html_table(header: list[str], cells: list[list[str]]) -> str:
    head = "".join(f"<th>{html.escape(h)}</th>" for h in header)
    body = "".join(
        "<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in row) + "</tr>" for row in cells
    )
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def bar_chart_png(
    rows: list[dict[str, Any]], metrics: tuple[str, ...] = ("roc_auc", "balanced_accuracy")
) -> bytes:
    """Grouped bars of ``metrics`` per arm, error bars = std over seeds."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=(max(6.0, 0.9 * len(rows)), 4), layout="constrained")
    ax = fig.add_subplot()
    x = np.arange(len(rows))
    width = 0.8 / len(metrics)
    for i, m in enumerate(metrics):
        ax.bar(
            x + (i - (len(metrics) - 1) / 2) * width,
            [r[f"{m}_mean"] for r in rows],
            width,
            yerr=[r[f"{m}_std"] for r in rows],
            capsize=3,
            label=m,
        )
    ax.axhline(0.5, color="grey", linestyle="--", linewidth=1)
    ax.set_xticks(x, [r["arm"] for r in rows], rotation=30, ha="right")
    ax.set(ylim=(0, 1), ylabel="test value (mean ± std over seeds)", title="Lesion study arms")
    ax.legend(loc="lower right", fontsize="small")
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100)
    return buf.getvalue()


def _img(png: bytes, alt: str) -> str:
    data = base64.b64encode(png).decode("ascii")
    return f'<img alt="{html.escape(alt)}" src="data:image/png;base64,{data}">'


def write_report(
    out_dir: Path, rows: list[dict[str, Any]], sets: dict[str, dict[str, Any]], cfg: Config
) -> dict[str, Path]:
    """Write ``report.md``, ``report.html`` and ``arms.png`` into ``out_dir``.

    ``sets``: per GAN kind, the record of its set (``name``, ``published``, ``metrics``,
    ``train_seconds`` and ``grid``, the path of its sample grid PNG, which may be absent).

    Returns:
        ``{file name: path}`` of what was written.
    """
    from components.metrics.piqa_metrics import PAIRING

    out_dir = Path(out_dir)
    chart = bar_chart_png(rows)
    arms_h, arms_c = arm_table(rows)
    gans_h, gans_c = gan_table(sets)
    mc = cfg.metrics
    n_fid = cfg.lesion_study.metric_samples or mc.fid_samples
    weights = cfg.evaluate.weights_path
    notes = [
        (
            f"Classifier: {cfg.evaluate.model} at {cfg.evaluate.image_size} px, "
            f"{cfg.evaluate.epochs} epochs, weights {'from ' + weights if weights else 'random init'}; "
            f"seeds {cfg.lesion_study.seeds}; every arm is tested on the same held-out real test split."
        ),
        "* = trained on a set that failed the memorization check (not published).",
        f"PIQA pairing: {PAIRING}.",
        (
            f"FID/KID: up to {n_fid} images per side, reference = the real training split; "
            "Inception = FID Inception-v3 pool features, domain = pooled features of the real "
            "arm's first-seed classifier. Compare values only at equal counts."
        ),
        (
            "Memorization: a synthetic image is memorized when closer to a training image than the "
            f"{mc.memorization_quantile:g} quantile of real test images (Inception features); a set "
            f"passes at a share <= {mc.max_memorized_share:g}."
        ),
    ]
    md = [
        f"# Lesion GAN study ({cfg.profile})",
        "",
        "## Classifier arms (test split, mean ± std over seeds)",
        "",
        markdown_table(arms_h, arms_c),
        "",
        "![arms](arms.png)",
        "",
        "## Generators",
        "",
        markdown_table(gans_h, gans_c),
        "",
        *(f"- {n}" for n in notes),
        "",
    ]
    grids = "".join(
        f"<figure>{_img(Path(rec['grid']).read_bytes(), kind)}<figcaption>{html.escape(kind)}"
        "</figcaption></figure>"
        for kind, rec in sets.items()
        if rec.get("grid") and Path(rec["grid"]).is_file()
    )
    page = (
        "<!doctype html><html><head><meta charset='utf-8'>"
        f"<title>Lesion GAN study ({html.escape(cfg.profile)})</title><style>"
        "body{font-family:sans-serif;margin:2em}table{border-collapse:collapse}"
        "td,th{border:1px solid #ccc;padding:4px 8px;text-align:right}"
        "figure{display:inline-block;margin:0 1em 1em 0}img{image-rendering:pixelated}"
        "</style></head><body>"
        f"<h1>Lesion GAN study ({html.escape(cfg.profile)})</h1>"
        "<h2>Classifier arms (test split, mean ± std over seeds)</h2>"
        f"{html_table(arms_h, arms_c)}{_img(chart, 'arms bar chart')}"
        f"<h2>Generators</h2>{html_table(gans_h, gans_c)}"
        f"<h2>Samples</h2>{grids}"
        "<ul>" + "".join(f"<li>{html.escape(n)}</li>" for n in notes) + "</ul></body></html>"
    )
    return {
        "arms.png": atomic_write_bytes(out_dir / "arms.png", chart),
        "report.md": atomic_write_text(out_dir / "report.md", "\n".join(md)),
        "report.html": atomic_write_text(out_dir / "report.html", page),
    }
