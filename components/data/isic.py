"""Readers of the ISIC dermoscopy layouts, turning metadata into :class:`Entry` objects.

Three layouts are understood (``data.lesions.format``; ``auto`` detects them in this order):

- ``isic_legacy``: ``ISIC_nnnnnnn.jpg`` next to ``ISIC_nnnnnnn.json`` (the old archive API:
  ``meta.clinical.benign_malignant/diagnosis/age_approx/sex``). The embedded samples use it.
- ``isic_csv``: images plus the ``metadata.csv`` that ``isic image download`` writes today
  (``isic_id``, ``benign_malignant`` or ``diagnosis_1``, ``patient_id``, ``lesion_id``,
  ``copyright_license``, ``attribution``, ...).
- ``challenge_csv``: a challenge CSV of ``image_name`` and ``target`` (0 benign, 1 malignant).

Readers are lenient: a broken JSON, an id listed twice, an id that is not an ISIC id (``photo``,
``../../etc/passwd``), metadata without its image or an image without metadata each become an
entry with ``error`` set, so one bad file never stops an ingest; validation later quarantines
those rows. Only a source that cannot be read at all raises :class:`~components.errors.DataError`,
and so does a metadata CSV without the columns its format needs: every row would fail for the
same reason, and one line naming the missing column is clearer. The acquisition facts of the
legacy JSON (image_type, pixelsX/Y) are not kept: the manifest records the decoded size, which is
what training sees.
"""

from __future__ import annotations

import io
import json
import re
from collections import defaultdict
from collections.abc import Callable
from typing import Any

import pandas as pd

from components.config import LesionDataConfig
from components.data.sources import Entry, Source, id_error, is_image, stem, uri_of
from components.errors import DataError
from components.imageset import LABEL_NAMES

ISIC_ID = re.compile(r"ISIC_\d{7}(?:_downsampled)?")  # ISIC 2019 ships some "_downsampled" ones
ISIC_ID_RULE = "an ISIC id (ISIC_ and 7 digits)"
# Columns each CSV format needs: one of each tuple.
_REQUIRED = {
    "isic_csv": [("isic_id",), ("benign_malignant", "diagnosis_1")],
    "challenge_csv": [("image_name",), ("target",)],
}


def read_lesions(source: Source, keys: list[str], cfg: LesionDataConfig) -> tuple[str, list[Entry]]:
    """Entries for every image and every metadata record in ``keys``; returns (format, entries)."""
    images = _images_by_id(keys)
    if not images:
        raise DataError(f"{source.uri}: no images found")
    fmt = cfg.format if cfg.format != "auto" else _detect(source, keys, cfg.metadata_csv)
    if fmt == "isic_legacy":
        return fmt, _legacy(source, keys, images)
    csv_key = _metadata_key(source, keys, cfg.metadata_csv)
    table = _read_csv(source, csv_key)
    id_col, parse = ("isic_id", _isic_row) if fmt == "isic_csv" else ("image_name", _challenge_row)
    for options in _REQUIRED[fmt]:
        if not set(options) & set(table.columns):
            what = f"label column ({' or '.join(options)})"
            if len(options) == 1:
                what = f"'{options[0]}' column"
            raise DataError(
                f"{uri_of(source, csv_key)}: no {what} for format {fmt}{_delimiter_hint(table)}"
            )
    return fmt, _join(table, id_col, parse, images, csv_key)


def _delimiter_hint(table: pd.DataFrame) -> str:
    """A hint for a CSV clearly split on the wrong character, e.g. `` (one column 'a;b': wrong
    delimiter?)``, else ""."""
    if len(table.columns) == 1 and any(c in str(table.columns[0]) for c in ";\t|"):
        return f" (one column '{table.columns[0]}': wrong delimiter?)"
    return ""


def _images_by_id(keys: list[str]) -> dict[str, list[str]]:
    # Several files with one id (ISIC_1.jpg and sub/ISIC_1.png) are all kept: manifest.py flags
    # duplicated ids, whatever the layout.
    found: dict[str, list[str]] = defaultdict(list)
    for key in keys:
        if is_image(key):
            found[stem(key)].append(key)
    return dict(found)


def _detect(source: Source, keys: list[str], metadata_csv: str | None) -> str:
    image_ids = {stem(k) for k in keys if is_image(k)}
    if metadata_csv is None and any(
        k.lower().endswith(".json") and stem(k) in image_ids for k in keys
    ):
        return "isic_legacy"
    if metadata_csv is None and not any(k.lower().endswith(".csv") for k in keys):
        raise DataError(f"{source.uri}: no ISIC metadata (no .json per image, no metadata CSV)")
    csv_key = _metadata_key(source, keys, metadata_csv)
    table = _read_csv(source, csv_key)
    columns = set(table.columns)
    if "isic_id" in columns:
        return "isic_csv"
    if {"image_name", "target"} <= columns:
        return "challenge_csv"
    why = _delimiter_hint(table).strip() or "(needs isic_id, or image_name and target columns)"
    raise DataError(f"{uri_of(source, csv_key)}: not an ISIC metadata CSV {why}")


def _metadata_key(source: Source, keys: list[str], metadata_csv: str | None) -> str:
    """The metadata CSV: the configured name, else metadata.csv, else the only CSV."""
    if metadata_csv is not None:
        if metadata_csv not in keys:
            raise DataError(f"{uri_of(source, metadata_csv)}: data.lesions.metadata_csv not found")
        return metadata_csv
    csvs = [k for k in keys if k.lower().endswith(".csv")]
    named = sorted((k for k in csvs if k.rsplit("/", 1)[-1] == "metadata.csv"), key=len)
    if named:
        return named[0]
    if len(csvs) == 1:
        return csvs[0]
    if not csvs:
        raise DataError(f"{source.uri}: no metadata CSV found")
    raise DataError(
        f"{source.uri}: {len(csvs)} CSV files and none is metadata.csv; "
        "set data.lesions.metadata_csv"
    )


def _read_csv(source: Source, key: str) -> pd.DataFrame:
    try:
        # Everything as text: ids like 0001 and empty cells must survive as written.
        return pd.read_csv(io.BytesIO(source.read(key)), dtype=str, keep_default_na=False)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise DataError(f"{uri_of(source, key)}: unreadable CSV ({reason})") from None


def _legacy(source: Source, keys: list[str], images: dict[str, list[str]]) -> list[Entry]:
    jsons = {stem(k): k for k in keys if k.lower().endswith(".json")}
    entries: list[Entry] = []
    for image_id in sorted(images.keys() | jsons.keys()):
        json_key = jsons.get(image_id)
        if json_key is None:
            fields, error = {}, "image without metadata"
        else:
            fields, error = _legacy_fields(source.read(json_key))
        bad_id = id_error(image_id, ISIC_ID, ISIC_ID_RULE)
        if image_id not in images:
            missing = _join_errors(error, "no image")
            entries.append(Entry(image_id, None, fields, missing, id_error=bad_id))
        for image_key in images.get(image_id, []):
            entries.append(Entry(image_id, image_key, fields, error, id_error=bad_id))
    return entries


def _legacy_fields(raw: bytes) -> tuple[dict[str, Any], str]:
    """Manifest fields of one archive JSON, and an error ("" when it parsed)."""
    try:
        doc = json.loads(raw)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        return {}, f"malformed JSON: {exc}"
    if not isinstance(doc, dict):
        return {}, "malformed JSON: top level is not an object"
    # The old API nests under "meta", the current one under "metadata".
    meta = doc.get("meta") or doc.get("metadata") or {}
    clinical = meta.get("clinical") or {} if isinstance(meta, dict) else None
    if not isinstance(clinical, dict):
        return {}, "malformed JSON: meta.clinical is not an object"
    return {
        "label": _text(clinical.get("benign_malignant")).lower(),
        "diagnosis": _text(clinical.get("diagnosis")),
        "age_approx": _age(clinical.get("age_approx")),
        "sex": _text(clinical.get("sex")),
        "patient_id": _text(clinical.get("patient_id")),
        "lesion_id": _text(clinical.get("lesion_id")),
        "license": _text(doc.get("copyright_license")),
        "attribution": _text(doc.get("attribution")),
    }, ""


def _isic_row(row: dict[str, str]) -> dict[str, Any]:
    # Newer downloads drop benign_malignant for the diagnosis_1..5 hierarchy, whose first level
    # is Benign/Malignant/Indeterminate and whose deepest filled level is the diagnosis.
    label = row.get("benign_malignant") or row.get("diagnosis_1", "")
    levels = [row.get(f"diagnosis_{i}", "") for i in range(2, 6)]
    diagnosis = row.get("diagnosis") or next((d for d in reversed(levels) if d), "")
    return {
        "label": label.strip().lower(),
        "diagnosis": diagnosis.strip(),
        "age_approx": _age(row.get("age_approx")),
        "sex": row.get("sex", "").strip(),
        "patient_id": row.get("patient_id", "").strip(),
        "lesion_id": row.get("lesion_id", "").strip(),
        "license": row.get("copyright_license", "").strip(),
        "attribution": row.get("attribution", "").strip(),
    }


def _challenge_row(row: dict[str, str]) -> dict[str, Any]:
    target = row.get("target", "").strip()
    # The challenge CSV's target is the label code (0/1, sometimes written 0.0/1.0).
    codes = {str(c): n for c, n in enumerate(LABEL_NAMES)}
    label = codes.get(target.removesuffix(".0"))
    return {
        "label": label or target.lower(),
        "diagnosis": row.get("diagnosis", "").strip(),
        "age_approx": _age(row.get("age_approx")),
        "sex": row.get("sex", "").strip(),
        "patient_id": row.get("patient_id", "").strip(),
        "lesion_id": row.get("lesion_id", "").strip(),
        "license": "",
        "attribution": "",
    }


def _join(
    table: pd.DataFrame,
    id_col: str,
    parse: Callable[[dict[str, str]], dict[str, Any]],
    images: dict[str, list[str]],
    csv_key: str,
) -> list[Entry]:
    """One entry per image file and per metadata id, metadata matched to images by file stem."""
    rows: dict[str, list[dict[str, str]]] = defaultdict(list)
    for row in table.to_dict("records"):
        rows[str(row[id_col]).strip()].append(row)
    rows.pop("", None)
    entries: list[Entry] = []
    for image_id in sorted(rows.keys() | images.keys()):
        listed = rows.get(image_id, [])
        fields = parse(listed[0]) if listed else {}
        error = "image without metadata" if not listed else ""
        if len(listed) > 1:
            error = f"{id_col} listed {len(listed)} times in {csv_key}"
        bad_id = id_error(image_id, ISIC_ID, ISIC_ID_RULE)
        if image_id not in images:
            missing = _join_errors(error, "no image")
            entries.append(Entry(image_id, None, fields, missing, id_error=bad_id))
        for image_key in images.get(image_id, []):
            entries.append(Entry(image_id, image_key, fields, error, id_error=bad_id))
    return entries


def _join_errors(*errors: str) -> str:
    return "; ".join(e for e in errors if e)


def _text(value: Any) -> str:
    return "" if value is None else str(value).strip()


def _age(value: Any) -> int | None:
    """Approximate age as an int; anything unparseable (blank, "unknown") is missing."""
    try:
        return int(float(value))
    except (TypeError, ValueError, OverflowError):
        return None
