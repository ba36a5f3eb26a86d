"""Ingestion: a source folder or S3 prefix in, a manifest and decoded caches out.

:func:`ingest` decodes every image exactly once and writes, into one dataset folder (e.g.
``build/demo/ingest/lesions``, swapped in whole by :func:`components.io.atomic_dir`):

- ``manifest.csv``: one row per source image (and per metadata record without an image), with
  the columns of :data:`COLUMNS` (see docs/ARCHITECTURE.md). ``source`` is the layout the rows
  were read as (``isic_legacy``, ``kvasir``...), ``source_path`` the file's full path or URI.
  Ingestion records facts and judges nothing: a row that is unusable has ``decodable=False``
  and/or a non-empty ``error``; validation turns those into quarantine reasons. The fingerprints
  ``sha256`` (file bytes), ``pixels_sha256`` (decoded pixels) and ``thumbnail`` (8x8 grey) are
  what validation finds copies with (duplicates.py).
- ``images/<size>/<image_id>.png`` and, for polyps, ``masks/<size>/<image_id>.png`` (0/255).
- ``cache_<size>.npz``: ``ids``, ``images`` (N,S,S,3 uint8) and for polyps ``masks`` (N,S,S
  {0,1}), which is what training reads.

Only rows whose image decodes, whose id is unique and valid for the layout (an ISIC id, a safe
file name: see :func:`copy_path`), and (polyps) whose mask decodes get resized copies and a
cache entry. Images are resized whole to S x S with PIL's BICUBIC filter, without cropping: ISIC
and Kvasir images are near-square and a crop could cut the lesion off; the small aspect change is
the lesser harm (validation rejects strips: ``max_aspect_ratio``). Non-RGB images (L, CMYK,
RGBA) are converted to RGB for the copies, so training is never blocked, while ``mode`` keeps the
fact for validation. In the ``rgba`` polyp layout the alpha channel is the mask, so it is split
off first and ``mode`` is that of the rest (RGBA gives RGB). Pixels are kept as stored: EXIF
orientation is not applied, so image and mask stay aligned; a polyp image whose EXIF orientation
differs from its mask's gets an error. Masks are thresholded at 128, resized with BILINEAR (an
area average when shrinking) and thresholded again.

Re-ingesting the same source gives a byte-identical manifest and caches: rows are sorted by
``image_id``, nothing records a time, the npz members carry a fixed zip date, and an error names
the file by its key in the source, never by an object's memory address.
"""

from __future__ import annotations

import io
import re
import zipfile
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pandas as pd
from PIL import Image

from components.config import Config
from components.data.duplicates import pixels_sha256, thumbnail
from components.data.isic import read_lesions
from components.data.licences import source_licence
from components.data.polyps import binarize, mask_stats, read_polyps
from components.data.sources import SAFE_ID, Entry, Source, open_source, uri_of
from components.data.splits import rebalance
from components.errors import DataError
from components.imageset import LABEL_CODES, ImageSet
from components.io import atomic_dir, sha256_bytes, sha256_file
from components.progress import track

COLUMNS = (
    "image_id", "dataset", "source", "source_path", "sha256", "pixels_sha256", "bytes",
    "decodable", "error", "height", "width", "mode", "label", "diagnosis", "age_approx", "sex",
    "patient_id", "lesion_id", "mask_source_path", "mask_height", "mask_width",
    "mask_nonbinary_share", "mask_foreground_share", "license", "attribution", "thumbnail",
)  # fmt: skip
_INTS = ("bytes", "height", "width", "age_approx", "mask_height", "mask_width")
_FLOATS = ("mask_nonbinary_share", "mask_foreground_share")
_ORIENTATION = 0x0112  # the EXIF tag
# The mode of what is left once the alpha channel has gone to the mask (rgba layout).
_WITHOUT_ALPHA = {"RGBA": "RGB", "RGBa": "RGB", "LA": "L", "La": "L", "PA": "RGB"}
# "<_io.BytesIO object at 0x7f...>": PIL names the stream it could not read; we name the file.
_OBJECT_REPR = re.compile(r"<[^<>]*\bat 0x[0-9A-Fa-f]+>")

Dataset = Literal["lesions", "polyps"]


@dataclass(frozen=True)
class IngestResult:
    """What :func:`ingest` wrote: the dataset folder, its manifest and headline counts."""

    dataset: Dataset
    path: Path
    format: str
    manifest: pd.DataFrame
    counts: dict[str, int]


@dataclass(frozen=True)
class _Decoded:
    """Resizable pixels of one row: RGB image and, for polyps, the 8-bit source mask."""

    image: Image.Image
    mask: np.ndarray | None


@dataclass(frozen=True)
class _Opened:
    """A decoded source image: the image without any alpha mask, that mask, its EXIF orientation."""

    image: Image.Image
    alpha: np.ndarray | None
    orientation: int
    mode: str  # as stored, before the alpha was split off


def ingest(dataset: Dataset, cfg: Config, out_dir: Path) -> IngestResult:
    """Read ``cfg.data.<dataset>.source`` and write the dataset folder ``out_dir``.

    ``out_dir`` is the dataset's own folder (``build/<profile>/ingest/<dataset>``): it is
    replaced whole. For lesions, ``max_images`` keeps a label-stratified subset before decoding,
    so a 30k-image archive costs only the subset's decoding time.

    Raises:
        DataError: the source is missing or empty, or holds no images or metadata.
    """
    section = cfg.data.lesions if dataset == "lesions" else cfg.data.polyps
    source = open_source(section.source, cfg.data.s3)
    keys = source.keys()
    if dataset == "lesions":
        fmt, entries = read_lesions(source, keys, cfg.data.lesions)
        if cfg.data.lesions.max_images is not None:
            entries = _subset(entries, cfg.data.lesions.max_images, cfg.seed)
    else:
        fmt, entries = read_polyps(source, keys, cfg.data.polyps)
    entries.sort(key=lambda e: (e.image_id, e.image_key or ""))
    copies = Counter(e.image_id for e in entries)
    sizes = sorted(set(section.sizes))
    rows: list[dict[str, Any]] = []
    cache: dict[int, dict[str, list[np.ndarray]]] = {s: {"images": [], "masks": []} for s in sizes}
    ids: list[str] = []
    with atomic_dir(out_dir) as tmp:
        for entry in track(entries, f"ingest {dataset}"):
            row, decoded = _decode(source, entry, dataset, fmt, copies[entry.image_id])
            rows.append(row)
            if decoded is None:
                continue
            ids.append(entry.image_id)
            for size in sizes:
                image, mask = _write_copies(tmp, size, entry.image_id, decoded)
                cache[size]["images"].append(image)
                if mask is not None:
                    cache[size]["masks"].append(mask)
        licence, attribution = source_licence(source, keys)
        for row in rows:
            row["license"] = row["license"] or licence
            row["attribution"] = row["attribution"] or attribution
        manifest = _frame(rows)
        manifest.to_csv(tmp / "manifest.csv", index=False, lineterminator="\n")
        for size in sizes:
            arrays = {"ids": np.asarray(ids, dtype=str)}
            arrays |= {k: _stack(v, size, k) for k, v in cache[size].items() if v or k == "images"}
            _write_npz(tmp / f"cache_{size}.npz", arrays)
    return IngestResult(dataset, Path(out_dir), fmt, manifest, _counts(manifest, len(ids)))


def _subset(entries: list[Entry], max_images: int, seed: int) -> list[Entry]:
    frame = pd.DataFrame({"label": [e.fields.get("label", "") for e in entries]})
    return [entries[i] for i in rebalance(frame, max_images, seed).index]


def _decode(
    source: Source, entry: Entry, dataset: Dataset, fmt: str, copies: int
) -> tuple[dict[str, Any], _Decoded | None]:
    """The manifest row of ``entry`` and, when it can be cached, its pixels."""
    row: dict[str, Any] = dict.fromkeys(COLUMNS, "")
    row |= {"image_id": entry.image_id, "dataset": dataset, "source": fmt, "decodable": False}
    row |= entry.fields
    errors = [entry.id_error, entry.error]
    if copies > 1:
        errors.append(f"duplicate image_id: {copies} files")
    opened = rgb = None
    if entry.image_key is not None:
        data = source.read(entry.image_key)
        row |= {"source_path": uri_of(source, entry.image_key), "sha256": sha256_bytes(data)}
        row["bytes"] = len(data)
        try:
            opened = _open_image(data, entry)
            rgb = opened.image.convert("RGB")
            row |= {"decodable": True, "width": rgb.width, "height": rgb.height}
            row |= {"mode": opened.image.mode, "pixels_sha256": pixels_sha256(rgb)}
            row["thumbnail"] = thumbnail(rgb)
        # PIL raises many types (OSError, SyntaxError, struct.error...) on hostile files; any of
        # them is a fact about the file, not a reason to stop the ingest.
        except Exception as exc:  # noqa: BLE001
            opened = rgb = None
            errors.append(f"undecodable image: {_reason(exc, entry.image_key)}")
    mask = None
    if dataset == "polyps":
        mask, mask_error = _mask(source, entry, opened, row)
        errors.append(mask_error)
    row["error"] = "; ".join(e for e in errors if e)
    usable = rgb is not None and copies == 1 and not entry.id_error
    usable &= dataset == "lesions" or mask is not None
    return row, _Decoded(rgb, mask) if usable else None


def _open(data: bytes) -> Image.Image:
    image = Image.open(io.BytesIO(data))
    # open() only reads the header; load() decodes, which is where truncation shows up.
    image.load()
    return image


def _open_image(data: bytes, entry: Entry) -> _Opened:
    """Decode a source image; in the rgba layout, split its alpha channel off as the mask."""
    image = _open(data)
    orientation = _orientation(image)
    mode = image.mode
    if not entry.mask_in_alpha:
        return _Opened(image, None, orientation, mode)
    if image.mode == "P" and image.has_transparency_data:
        image = image.convert("RGBA")  # palette transparency is an alpha channel too
    if "A" not in image.getbands():
        return _Opened(image, None, orientation, mode)
    alpha = np.asarray(image.getchannel("A"))
    return _Opened(image.convert(_WITHOUT_ALPHA.get(image.mode, "RGB")), alpha, orientation, mode)


def _orientation(image: Image.Image) -> int:
    try:
        return int(image.getexif().get(_ORIENTATION, 1))
    except Exception:  # noqa: BLE001  (a broken EXIF block says nothing about orientation)
        return 1


def _mask(
    source: Source, entry: Entry, opened: _Opened | None, row: dict[str, Any]
) -> tuple[np.ndarray | None, str]:
    """The 8-bit source mask of a polyp row (or None) and an error; fills the mask columns."""
    error = ""
    if entry.mask_in_alpha:
        if opened is None:
            return None, ""
        if opened.alpha is None:
            return None, f"no alpha channel for the mask (mode {opened.mode})"
        mask = opened.alpha
        row["mask_source_path"] = row["source_path"]
    elif entry.mask_key is None:
        return None, ""  # the reader already said "missing mask"
    else:
        row["mask_source_path"] = uri_of(source, entry.mask_key)
        try:
            image = _open(source.read(entry.mask_key))
            mask = np.asarray(image.convert("L"))
        except Exception as exc:  # noqa: BLE001  (as for images: recorded, not raised)
            return None, f"undecodable mask: {_reason(exc, entry.mask_key)}"
        # Pixels are used as stored; if a viewer would turn one and not the other, the mask was
        # probably drawn on the turned image and no longer covers the polyp.
        if opened is not None and _orientation(image) != opened.orientation:
            error = (
                f"EXIF orientation {opened.orientation} on the image, {_orientation(image)} on "
                "the mask: they may not line up"
            )
    nonbinary, foreground = mask_stats(mask)
    row |= {"mask_height": mask.shape[0], "mask_width": mask.shape[1]}
    row |= {
        "mask_nonbinary_share": round(nonbinary, 6),
        "mask_foreground_share": round(foreground, 6),
    }
    return mask, error


def _reason(exc: Exception, key: str) -> str:
    """One stable line for a decoding failure: the exception's first line, naming the file by its
    ``key`` where the exception named a stream object (whose address changes every run)."""
    text = str(exc).strip().splitlines()
    first = _OBJECT_REPR.sub(repr(key), text[0]) if text else ""
    return f"{type(exc).__name__}: {first}" if first else type(exc).__name__


def copy_path(folder: Path, kind: str, size: int, image_id: str) -> Path:
    """Where the resized copy of ``image_id`` goes: ``folder/<kind>/<size>/<image_id>.png``.

    Ids come from file names and metadata, so this is where one could become a path outside the
    output folder (``../../etc/passwd``). Readers flag any id that is not a safe file name and
    such rows are never cached; refusing here too makes the escape impossible by construction.

    Raises:
        ValueError: ``image_id`` is not a safe file name (a bug: the readers let it through).
    """
    if not SAFE_ID.fullmatch(image_id):
        raise ValueError(f"image_id {image_id!r} is not a safe file name")
    return folder / kind / str(size) / f"{image_id}.png"


def _write_copies(
    folder: Path, size: int, image_id: str, decoded: _Decoded
) -> tuple[np.ndarray, np.ndarray | None]:
    """Write the PNG copies of one row at ``size``; return the arrays for the cache."""
    image = decoded.image.resize((size, size), Image.Resampling.BICUBIC)
    path = copy_path(folder, "images", size, image_id)
    path.parent.mkdir(parents=True, exist_ok=True)
    image.save(path)
    if decoded.mask is None:
        return np.asarray(image), None
    binary = Image.fromarray(binarize(decoded.mask) * 255)
    mask = binarize(np.asarray(binary.resize((size, size), Image.Resampling.BILINEAR)))
    path = copy_path(folder, "masks", size, image_id)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(mask * 255).save(path)
    return np.asarray(image), mask


def _stack(arrays: list[np.ndarray], size: int, kind: str) -> np.ndarray:
    if arrays:
        return np.stack(arrays)
    return np.zeros((0, size, size, 3) if kind == "images" else (0, size, size), np.uint8)


def _write_npz(path: Path, arrays: dict[str, np.ndarray]) -> None:
    """np.savez_compressed, but with a fixed member date so equal arrays give equal bytes."""
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=1) as zf:
        for name, array in arrays.items():
            info = zipfile.ZipInfo(f"{name}.npy", date_time=(1980, 1, 1, 0, 0, 0))
            info.compress_type = zipfile.ZIP_DEFLATED
            with zf.open(info, "w", force_zip64=True) as fh:
                np.lib.format.write_array(fh, np.ascontiguousarray(array), allow_pickle=False)


def _frame(rows: list[dict[str, Any]]) -> pd.DataFrame:
    frame = pd.DataFrame(rows, columns=list(COLUMNS))
    return _typed(frame)


def _typed(frame: pd.DataFrame) -> pd.DataFrame:
    """Nullable ints and floats (blank in the CSV when missing), booleans, text elsewhere."""
    frame = frame.copy()
    for col in COLUMNS:
        if col in _INTS:
            frame[col] = pd.to_numeric(frame[col], errors="coerce").astype("Int64")
        elif col in _FLOATS:
            frame[col] = pd.to_numeric(frame[col], errors="coerce").astype("Float64")
        elif col == "decodable":
            frame[col] = frame[col].astype(str).eq("True")
        else:
            frame[col] = frame[col].fillna("").astype(str)
    return frame


def _counts(manifest: pd.DataFrame, cached: int) -> dict[str, int]:
    counts = {
        "rows": len(manifest),
        "decodable": int(manifest["decodable"].sum()),
        "with_error": int(manifest["error"].ne("").sum()),
        "cached": cached,
    }
    for label, n in sorted(manifest["label"].value_counts().items()):
        counts[f"label_{label or 'missing'}"] = int(n)
    return counts


def read_manifest(path: Path) -> pd.DataFrame:
    """Read a manifest.csv back with the types :func:`ingest` wrote."""
    if not Path(path).is_file():
        raise DataError(f"{path}: manifest not found (run the ingest stage first)")
    frame = pd.read_csv(path, dtype=str, keep_default_na=False)
    missing = [c for c in COLUMNS if c not in frame.columns]
    if missing:
        raise DataError(f"{path}: not a synthmed manifest (missing columns: {', '.join(missing)})")
    return _typed(frame[list(COLUMNS)])


def manifest_sha256(path: Path) -> str:
    """sha256 of a manifest.csv (``path`` may also be its dataset folder): the data lineage tag."""
    path = Path(path)
    return sha256_file(path / "manifest.csv" if path.is_dir() else path)


def load_cache(ingest_dir: Path, size: int, ids: Sequence[str] | None = None) -> ImageSet:
    """The decoded images of an ingested dataset at ``size``, in the order of ``ids``.

    ``ids=None`` loads every cached image. Lesions get labels from the manifest (benign 0,
    malignant 1), so pass validated ids: a requested image with another label is an error.
    Polyps get their {0, 1} masks and no labels.

    Raises:
        DataError: no cache at that size, an id not in the cache, or a label outside benign/malignant.
    """
    ingest_dir = Path(ingest_dir)
    path = ingest_dir / f"cache_{size}.npz"
    if not path.is_file():
        have = sorted(p.name for p in ingest_dir.glob("cache_*.npz")) or ["none"]
        raise DataError(f"{path}: no cache at size {size} (found: {', '.join(have)})")
    with np.load(path) as npz:
        cached = [str(i) for i in npz["ids"]]
        images = npz["images"]
        masks = npz["masks"] if "masks" in npz.files else None
    position = {image_id: i for i, image_id in enumerate(cached)}
    wanted = cached if ids is None else [str(i) for i in ids]
    absent = [i for i in wanted if i not in position]
    if absent:
        raise DataError(f"{path}: {len(absent)} requested ids are not cached (first: {absent[0]})")
    index = np.asarray([position[i] for i in wanted], dtype=np.int64)
    labels = None
    if masks is None:
        manifest = read_manifest(ingest_dir / "manifest.csv")
        label_of = dict(zip(manifest["image_id"], manifest["label"], strict=True))
        bad = [i for i in wanted if label_of.get(i) not in LABEL_CODES]
        if bad:
            raise DataError(
                f"{ingest_dir / 'manifest.csv'}: {bad[0]} has label {label_of.get(bad[0])!r}, "
                "not benign/malignant (load validated ids)"
            )
        labels = np.asarray([LABEL_CODES[label_of[i]] for i in wanted], dtype=np.int64)
    return ImageSet(
        images=images[index],
        labels=labels,
        masks=None if masks is None else masks[index],
        ids=wanted,
    )
