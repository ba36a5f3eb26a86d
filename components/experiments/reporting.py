"""The reporting kit of every study: aggregation with one std convention, tables, and a report
written twice from the same blocks.

A :class:`Report` is a list of blocks (headings, paragraphs, tables, images, bullet lists,
JSON facts). :meth:`Report.write` renders it as ``report.md`` (images as PNG files beside it, for
a terminal or a pull request) and as a self-contained ``report.html`` (every image embedded as a
base64 PNG, no external URL: it opens offline, attached to an MLflow run or mailed).

Spread is always the sample standard deviation (ddof=1) over the repeats (seeds or folds), 0
for a single repeat; :data:`STD_NOTE` says so in every report.
"""

from __future__ import annotations

import base64
import html
import io
import json
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from components.io import atomic_dir

if TYPE_CHECKING:
    from matplotlib.figure import Figure

STD_NOTE = "± is the sample standard deviation (ddof=1) over {over}; 0 when there is one."


def mean_std(values: Iterable[float]) -> tuple[float, float]:
    """Mean and sample standard deviation (ddof=1; 0 for one value). A NaN propagates: hiding
    it (e.g. ROC AUC of a one-class split) would flatter the arm."""
    arr = np.asarray(list(values), dtype=np.float64)
    return float(arr.mean()), float(arr.std(ddof=1)) if len(arr) > 1 else 0.0


def aggregate(
    results: Sequence[Mapping[str, Any]],
    metrics: Sequence[str],
    by: str = "arm",
    keep: Sequence[str] = (),
    repeats: str = "repeats",
) -> list[dict[str, Any]]:
    """One row per ``by`` value, in first-seen order: ``<metric>_mean``/``_std`` over its
    results' ``metrics`` (see :func:`mean_std`), ``repeats`` (how many), and the ``keep`` fields
    of its first result; a ``flagged`` field is true when any result is."""
    groups: dict[Any, list[Mapping[str, Any]]] = {}
    for r in results:
        groups.setdefault(r[by], []).append(r)
    rows = []
    for key, runs in groups.items():
        row: dict[str, Any] = {by: key, repeats: len(runs), **{k: runs[0][k] for k in keep}}
        if any("flagged" in r for r in runs):
            row["flagged"] = any(r.get("flagged") for r in runs)
        for m in metrics:
            row[f"{m}_mean"], row[f"{m}_std"] = mean_std(r["metrics"][m] for r in runs)
        rows.append(row)
    return rows


def fmt(value: Any, digits: int = 3) -> str:
    """A number for a table: fixed digits, ``n/a`` for None and NaN."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "n/a"
    return f"{value:.{digits}f}" if isinstance(value, float) else str(value)


def mean_pm_std(row: Mapping[str, Any], metric: str, digits: int = 3) -> str:
    return f"{fmt(row[f'{metric}_mean'], digits)} ± {fmt(row[f'{metric}_std'], digits)}"


def fig_png(fig: Figure, dpi: int = 100) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi)
    return buf.getvalue()


def markdown_table(header: Sequence[str], cells: Sequence[Sequence[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(row) + " |" for row in cells]
    return "\n".join(lines)


def html_table(header: Sequence[str], cells: Sequence[Sequence[str]]) -> str:
    head = "".join(f"<th>{html.escape(h)}</th>" for h in header)
    body = "".join(
        "<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in row) + "</tr>" for row in cells
    )
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def img_tag(png: bytes, alt: str) -> str:
    data = base64.b64encode(png).decode("ascii")
    return f'<img alt="{html.escape(alt)}" src="data:image/png;base64,{data}">'


_STYLE = (
    "body{font-family:sans-serif;max-width:1200px;margin:2em auto;padding:0 1em}"
    "table{border-collapse:collapse;margin:1em 0}td,th{border:1px solid #ccc;padding:3px 8px;"
    "text-align:right}td:first-child,th:first-child{text-align:left}"
    "figure{display:inline-block;margin:0 1em 1em 0}img{image-rendering:pixelated;max-width:100%}"
    "pre{background:#f6f6f6;padding:1em;overflow:auto}"
)


@dataclass
class Report:
    """Blocks of a report, rendered to markdown and to one self-contained HTML page."""

    title: str
    blocks: list[tuple[str, Any]] = field(default_factory=list)

    def heading(self, text: str, level: int = 2) -> Report:
        self.blocks.append(("heading", (level, text)))
        return self

    def paragraph(self, text: str) -> Report:
        self.blocks.append(("paragraph", text))
        return self

    def bullets(self, items: Iterable[str]) -> Report:
        self.blocks.append(("bullets", list(items)))
        return self

    def table(self, header: Sequence[str], cells: Sequence[Sequence[str]]) -> Report:
        self.blocks.append(("table", (list(header), [list(r) for r in cells])))
        return self

    def image(self, name: str, png: bytes, caption: str) -> Report:
        """A PNG, written as ``name`` beside report.md and embedded in report.html."""
        self.blocks.append(("image", (name, png, caption)))
        return self

    def facts(self, obj: Any) -> Report:
        """JSON-like facts shown as given (sets, timings, lineage)."""
        self.blocks.append(("facts", json.dumps(obj, indent=2, sort_keys=True, default=str)))
        return self

    def markdown(self) -> str:
        out = [f"# {self.title}", ""]
        for kind, value in self.blocks:
            if kind == "heading":
                out += ["#" * value[0] + " " + value[1], ""]
            elif kind == "paragraph":
                out += [value, ""]
            elif kind == "bullets":
                out += [f"- {item}" for item in value] + [""]
            elif kind == "table":
                out += [markdown_table(*value), ""]
            elif kind == "image":
                out += [f"![{value[2]}]({value[0]})", ""]
            elif kind == "facts":
                out += ["```json", value, "```", ""]
        return "\n".join(out)

    def html(self) -> str:
        parts = [
            f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(self.title)}"
            f"</title><style>{_STYLE}</style></head><body><h1>{html.escape(self.title)}</h1>"
        ]
        for kind, value in self.blocks:
            if kind == "heading":
                parts.append(f"<h{value[0]}>{html.escape(value[1])}</h{value[0]}>")
            elif kind == "paragraph":
                parts.append(f"<p>{html.escape(value)}</p>")
            elif kind == "bullets":
                parts.append("<ul>" + "".join(f"<li>{html.escape(i)}</li>" for i in value) + "</ul>")
            elif kind == "table":
                parts.append(html_table(*value))
            elif kind == "image":
                name, png, caption = value
                parts.append(
                    f"<figure>{img_tag(png, caption)}<figcaption>{html.escape(caption)}"
                    "</figcaption></figure>"
                )
            elif kind == "facts":
                parts.append(f"<pre>{html.escape(value)}</pre>")
        parts.append("</body></html>")
        return "".join(parts)

    def write(self, out_dir: Path, extra: Mapping[str, str] | None = None) -> dict[str, Path]:
        """Write report.md, report.html, the images and ``extra`` text files (e.g. results.json)
        into ``out_dir``, replacing it whole; returns ``{file name: path}``."""
        out_dir = Path(out_dir)
        files: dict[str, bytes] = {
            "report.md": self.markdown().encode(),
            "report.html": self.html().encode(),
        }
        files.update({v[0]: v[1] for k, v in self.blocks if k == "image"})
        files.update({name: text.encode() for name, text in (extra or {}).items()})
        with atomic_dir(out_dir) as tmp:
            for name, data in files.items():
                (tmp / name).write_bytes(data)
        return {name: out_dir / name for name in files}
