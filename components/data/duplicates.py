"""Duplicate images: exact copies by hash, near-duplicates by a perceptual thumbnail.

A copy of an image under another id leaks across a train/test split and counts twice. Ingestion
records three fingerprints of every decodable image (manifest.py): ``sha256`` of the file's bytes,
``pixels_sha256`` of the decoded pixels (a PNG re-save of a JPEG: other bytes, same picture) and
``thumbnail``, the image as 8x8 grey levels (box-averaged, 64 bytes as hex). Two images are
near-duplicates when their thumbnails differ by at most ``max_distance`` grey levels on average
(mean absolute difference, 0-255): a JPEG re-encode at quality 50 or a halving moves an image by
under 2, while distinct images sit 3 or more apart, even among the embedded samples.

Why not a dHash or pHash compared by Hamming distance: the embedded ISIC samples have no vertical
structure (each is one row of pixels repeated), and there a 64-bit dHash gives 148 pairs of
distinct images at distance 0; no sign-per-cell variant tried (pHash 64/256 bits, dHash 256-2048
bits, with or without a dead zone) separated re-encodes from distinct images. A sign per cell
throws away the contrast that tells such images apart; the thumbnail keeps it, in 64 bytes.

Comparing every pair would be quadratic. The mean absolute difference of two thumbnails is at
least the difference of their mean grey levels, so only images whose means are within
``max_distance`` are compared: sorted by mean, each image meets a window of neighbours. It is also
at least the average difference of their four quadrant means, which rules out most of the window
at a sixteenth of the cost before the full thumbnails are compared.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from PIL import Image

THUMBNAIL_SIDE = 8


def thumbnail(image: Image.Image) -> str:
    """The perceptual fingerprint of an image: 8x8 grey levels, box-averaged, as 128 hex chars."""
    grey = image.convert("L").resize((THUMBNAIL_SIDE, THUMBNAIL_SIDE), Image.Resampling.BOX)
    return grey.tobytes().hex()


def pixels_sha256(image: Image.Image) -> str:
    """sha256 of the decoded pixels with their mode and size: equal for the same picture in any
    lossless encoding."""
    digest = hashlib.sha256(f"{image.mode} {image.width}x{image.height}\n".encode())
    digest.update(image.tobytes())
    return digest.hexdigest()


@dataclass(frozen=True)
class Duplicates:
    """What :func:`find_duplicates` found, by frame index label.

    ``reasons``: the copies to quarantine, each with the id it copies, e.g. ``"duplicate of
    ISIC_0000001 (same bytes)"``. ``groups``: the near-duplicates that stay (when they are not
    quarantined), each with the first id of its group, so splits can keep a group together.
    """

    reasons: dict[object, str] = field(default_factory=dict)
    groups: dict[object, str] = field(default_factory=dict)


def find_duplicates(frame: pd.DataFrame, max_distance: float, quarantine_near: bool) -> Duplicates:
    """Copies among the decodable rows of a manifest that ingestion found nothing wrong with.

    Rows are visited in ``image_id`` order; a row that repeats the bytes or the pixels of a kept
    row, or (``quarantine_near``) is within ``max_distance`` of a kept row's thumbnail, is a copy
    of it (the nearest one, first id on ties). So the first id of a group stays, and a keeper is
    never a row that fails for its own reasons at ingestion (its copy is kept instead). Missing
    columns or fingerprints mean no duplicates for those rows.
    """
    rows = _candidates(frame)
    if rows.empty:
        return Duplicates()
    near = _near_pairs(rows, max_distance)
    kept: dict[str, dict[str, str]] = {"sha256": {}, "pixels_sha256": {}}
    kept_rows: set[object] = set()
    reasons: dict[object, str] = {}
    for label, row in rows.iterrows():
        copied = next(
            (
                f"duplicate of {kept[col][row[col]]} ({what})"
                for col, what in (("sha256", "same bytes"), ("pixels_sha256", "same pixels"))
                if row[col] in kept[col]
            ),
            None,
        )
        if copied is None and quarantine_near:
            close = [(d, rows.at[o, "image_id"]) for d, o in near.get(label, []) if o in kept_rows]
            if close:
                distance, of = min(close)
                copied = (
                    f"near-duplicate of {of} "
                    f"(thumbnail distance {distance:.2f} <= {max_distance:g})"
                )
        if copied is not None:
            reasons[label] = copied
            continue
        kept_rows.add(label)
        for col, first in kept.items():
            if row[col]:
                first.setdefault(row[col], row["image_id"])
    groups = {} if quarantine_near else _groups(rows, near, kept_rows)
    return Duplicates(reasons, groups)


def _text(frame: pd.DataFrame, col: str) -> pd.Series:
    if col not in frame:
        return pd.Series("", index=frame.index)
    return frame[col].map(lambda v: v.strip() if isinstance(v, str) else "")


def _candidates(frame: pd.DataFrame) -> pd.DataFrame:
    """Decodable rows without an ingestion error, with their fingerprints, sorted by id."""
    if "image_id" not in frame or "decodable" not in frame:
        return pd.DataFrame(columns=["image_id", "sha256", "pixels_sha256", "thumbnail"])
    rows = pd.DataFrame(
        {col: _text(frame, col) for col in ("image_id", "sha256", "pixels_sha256", "thumbnail")}
    )
    ok = frame["decodable"].map(lambda v: isinstance(v, bool | np.bool_) and bool(v))
    ok &= _text(frame, "error").eq("") & rows["image_id"].ne("")
    rows = rows[ok.astype(bool)]
    return rows.sort_values("image_id", kind="stable")


def _decode(value: str) -> np.ndarray | None:
    try:
        raw = bytes.fromhex(value)
    except ValueError:
        return None
    return np.frombuffer(raw, np.uint8) if len(raw) == THUMBNAIL_SIDE**2 else None


def _near_pairs(
    rows: pd.DataFrame, max_distance: float
) -> dict[object, list[tuple[float, object]]]:
    """Label -> [(distance, other label)] for every pair of thumbnails within ``max_distance``."""
    decoded = {label: _decode(value) for label, value in rows["thumbnail"].items()}
    labels = [label for label, thumb in decoded.items() if thumb is not None]
    if len(labels) < 2:
        return {}
    thumbs = np.stack([decoded[label] for label in labels]).astype(np.float64)
    means = thumbs.mean(axis=1)
    half = THUMBNAIL_SIDE // 2
    grid = thumbs.reshape(-1, 2, half, 2, half)
    quadrants = grid.mean(axis=(2, 4)).reshape(-1, 4)
    order = np.argsort(means, kind="stable")
    ends = np.searchsorted(means[order], means[order] + max_distance, side="right")
    near: dict[object, list[tuple[float, object]]] = {}
    for a, i in enumerate(order):
        others = order[a + 1 : ends[a]]
        bound = np.abs(quadrants[others] - quadrants[i]).mean(axis=1)
        others = others[bound <= max_distance]
        if not len(others):
            continue
        distance = np.abs(thumbs[others] - thumbs[i]).mean(axis=1)
        for j, d in zip(others[distance <= max_distance], distance[distance <= max_distance]):
            near.setdefault(labels[i], []).append((float(d), labels[j]))
            near.setdefault(labels[j], []).append((float(d), labels[i]))
    return near


def _groups(
    rows: pd.DataFrame, near: dict[object, list[tuple[float, object]]], kept: set[object]
) -> dict[object, str]:
    """Kept rows joined (transitively) by near pairs -> the first id of their group."""
    parent = {label: label for label in kept}

    def find(label: object) -> object:
        while parent[label] != label:
            parent[label] = parent[parent[label]]
            label = parent[label]
        return label

    for label, pairs in near.items():
        for _, other in pairs:
            if label in kept and other in kept:
                parent[find(label)] = find(other)
    members: dict[object, list[object]] = {}
    for label in kept:
        members.setdefault(find(label), []).append(label)
    groups: dict[object, str] = {}
    for group in members.values():
        if len(group) > 1:
            first = min(rows.at[label, "image_id"] for label in group)
            groups |= dict.fromkeys(group, first)
    return groups
