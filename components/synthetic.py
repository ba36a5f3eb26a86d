"""Synthetic sets on disk: the folder a generator's samples become, and how it is read back.

A set is one folder, written whole (``components.io.atomic_dir``) so a reader never sees half of
it::

    <set>/images/<image_id>.png     RGB
    <set>/masks/<image_id>.png      0/255, only when the samples have masks
    <set>/manifest.csv              image_id, file, label (benign/malignant or empty), mask_file
    <set>/set.json                  provenance: generator kind and model version, seed, n,
                                    source manifest sha256, config hash, content digest...

DVC hashes every byte of the folder, so the same samples must give the same bytes: no
timestamps, sorted JSON keys, a fixed PNG compression level and ``\\n`` line endings. The set's
name ends with a digest of its content (:func:`content_digest`), so regenerating the same set
gives the same name and the same DVC md5.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import re
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from PIL import Image, UnidentifiedImageError

from components.errors import DataError
from components.imageset import LABEL_NAMES, ImageSet, png_bytes
from components.io import atomic_dir, atomic_write_json, atomic_write_text

if TYPE_CHECKING:
    from components.tracking import DatasetRef

MANIFEST_COLUMNS = ("image_id", "file", "label", "mask_file")
_SAFE_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")


def content_digest(samples: ImageSet) -> str:
    """sha256 of the arrays (and ids) of ``samples``: equal sets, equal digest.

    Shapes are hashed with the bytes so that, e.g., 2 images of 8x4 and 1 of 8x8 differ.
    """
    h = hashlib.sha256()
    for name in ("images", "labels", "masks"):
        arr = getattr(samples, name)
        h.update(name.encode())
        if arr is not None:
            arr = np.ascontiguousarray(arr)
            h.update(repr((arr.shape, arr.dtype.str)).encode())
            h.update(arr.tobytes())
    h.update(json.dumps(_ids(samples)).encode())
    return h.hexdigest()


def set_name(kind: str, image_size: int, profile: str, digest: str) -> str:
    """Name of a set, e.g. ``dcgan-64-demo-1a2b3c4d`` (``digest``: :func:`content_digest`)."""
    return f"{kind}-{image_size}-{profile}-{digest[:8]}"


def write_set(samples: ImageSet, out_dir: Path, meta: dict[str, Any]) -> Path:
    """Write ``samples`` as a set folder at ``out_dir``, replacing it whole; returns ``out_dir``.

    ``meta`` (generator kind, model version, seed, source manifest sha256, config hash...) goes
    to ``set.json`` with ``n``, ``image_size``, ``has_labels``, ``has_masks`` and
    ``content_sha256`` added. It must be JSON-serialisable and free of timestamps: DVC hashes it.
    """
    ids = _ids(samples)
    rows: list[dict[str, str]] = []
    with atomic_dir(out_dir) as tmp:
        (tmp / "images").mkdir()
        if samples.masks is not None:
            (tmp / "masks").mkdir()
        for i, image_id in enumerate(ids):
            image_file = f"images/{image_id}.png"
            (tmp / image_file).write_bytes(png_bytes(samples.images[i]))
            mask_file = ""
            if samples.masks is not None:
                mask_file = f"masks/{image_id}.png"
                mask = np.where(samples.masks[i] > 0, 255, 0).astype(np.uint8)
                (tmp / mask_file).write_bytes(png_bytes(mask))
            label = "" if samples.labels is None else _label_name(samples.labels[i], image_id)
            rows.append(
                {"image_id": image_id, "file": image_file, "label": label, "mask_file": mask_file}
            )
        atomic_write_text(tmp / "manifest.csv", _csv(rows))
        atomic_write_json(
            tmp / "set.json",
            {
                **meta,
                "n": len(samples),
                "image_size": int(samples.images.shape[1]),
                "has_labels": samples.labels is not None,
                "has_masks": samples.masks is not None,
                "content_sha256": content_digest(samples),
            },
        )
    return Path(out_dir)


def read_meta(path: Path) -> dict[str, Any]:
    """The ``set.json`` of the set at ``path``; DataError if it is missing or not JSON."""
    meta_file = Path(path) / "set.json"
    try:
        meta = json.loads(meta_file.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise DataError(f"{meta_file}: not a synthetic set (set.json missing)") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise DataError(f"{meta_file}: corrupt set.json ({exc})") from None
    if not isinstance(meta, dict):
        raise DataError(f"{meta_file}: corrupt set.json (expected a JSON object)")
    return meta


def read_set(path: Path) -> ImageSet:
    """Read a set written by :func:`write_set`: labels 0/1 (or None), masks {0, 1} (or None).

    A missing folder, manifest, image or a file that does not decode raises DataError naming it:
    a synthetic set is produced whole, so any damage means the set is unusable.
    """
    path = Path(path)
    if not path.is_dir():
        raise DataError(f"{path}: synthetic set not found")
    read_meta(path)
    rows = _read_manifest(path / "manifest.csv")
    images = _stack([_load(path / r["file"], "RGB") for r in rows], path)
    labels = _labels(rows, path / "manifest.csv")
    masks = None
    if any(r["mask_file"] for r in rows):
        if not all(r["mask_file"] for r in rows):
            raise DataError(f"{path / 'manifest.csv'}: mask_file is empty on some rows only")
        masks = _stack([_load(path / r["mask_file"], "L") for r in rows], path)
        masks = (masks > 127).astype(np.uint8)
    try:
        return ImageSet(
            images=images, labels=labels, masks=masks, ids=[r["image_id"] for r in rows]
        )
    except ValueError as exc:
        raise DataError(f"{path}: inconsistent set ({exc})") from None


def _ids(samples: ImageSet) -> list[str]:
    """The ids to write: the samples' own, else ``syn-000000``... in order.

    Ids become file names, so they are checked here rather than trusted.
    """
    if samples.ids is None:
        return [f"syn-{i:06d}" for i in range(len(samples))]
    bad = [i for i in samples.ids if not _SAFE_ID.match(str(i))]
    if bad:
        raise ValueError(f"image ids are not safe file names: {bad[:3]}")
    if len(set(samples.ids)) != len(samples.ids):
        raise ValueError("image ids are not unique")
    return [str(i) for i in samples.ids]


def _label_name(label: np.integer, image_id: str) -> str:
    if label not in (0, 1):
        raise ValueError(f"image {image_id}: label {label} is not 0 (benign) or 1 (malignant)")
    return LABEL_NAMES[int(label)]


def _csv(rows: list[dict[str, str]]) -> str:
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=MANIFEST_COLUMNS, lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return buf.getvalue()


def _read_manifest(manifest: Path) -> list[dict[str, str]]:
    try:
        with manifest.open(newline="", encoding="utf-8") as fh:
            reader = csv.DictReader(fh)
            missing = set(MANIFEST_COLUMNS) - set(reader.fieldnames or [])
            rows = list(reader)
    except FileNotFoundError:
        raise DataError(f"{manifest}: manifest missing") from None
    except (UnicodeDecodeError, csv.Error) as exc:
        raise DataError(f"{manifest}: corrupt manifest ({exc})") from None
    if missing:
        raise DataError(f"{manifest}: columns missing: {', '.join(sorted(missing))}")
    if not rows:
        raise DataError(f"{manifest}: no rows")
    return rows


def _load(file: Path, mode: str) -> np.ndarray:
    try:
        with Image.open(file) as img:
            return np.asarray(img.convert(mode))
    except FileNotFoundError:
        raise DataError(f"{file}: listed in manifest.csv but missing") from None
    except (UnidentifiedImageError, OSError) as exc:
        raise DataError(f"{file}: cannot decode ({exc})") from None


def _stack(arrays: list[np.ndarray], path: Path) -> np.ndarray:
    try:
        return np.stack(arrays)
    except ValueError:
        shapes = sorted({a.shape for a in arrays})
        raise DataError(f"{path}: images of different sizes {shapes[:3]}") from None


def _labels(rows: list[dict[str, str]], manifest: Path) -> np.ndarray | None:
    found = [r["label"] for r in rows]
    if not any(found):
        return None
    unknown = sorted({lab for lab in found if lab not in LABEL_NAMES})
    if unknown:
        raise DataError(f"{manifest}: labels {unknown} not in {list(LABEL_NAMES)}")
    return np.array([LABEL_NAMES.index(lab) for lab in found], dtype=np.int64)


def set_ref(path: Path, md5: str | None = None) -> DatasetRef:
    """The set at ``path`` as a run input: its name, folder, content sha256 and size, with the
    generator version and DVC md5 (when versioned) as tags; no image is read."""
    from components.tracking import DatasetRef

    meta = read_meta(path)
    generator = f"{meta.get('generator_registered_model')}/{meta.get('generator_model_version')}"
    tags = {"synthmed.generator_kind": meta.get("generator_kind"), "synthmed.dvc_md5": md5}
    if meta.get("generator_registered_model"):
        tags["synthmed.generator_model_version"] = generator
    return DatasetRef(
        name=str(meta.get("name") or Path(path).name),
        source=str(Path(path).resolve()),
        digest=str(meta.get("content_sha256", "")),
        columns=list(MANIFEST_COLUMNS),
        rows=int(meta.get("n", 0)),
        tags={k: str(v) for k, v in tags.items() if v is not None},
    )
