"""Readers of polyp segmentation layouts, and the mask facts the manifest records.

Layouts (``data.polyps.format``; ``auto`` picks the first whose image folder is present):

- ``kvasir`` (Kvasir-SEG): ``images/<id>.jpg`` and ``masks/<id>.jpg``, paired by file stem. The
  masks are JPEGs, so their edges are not exactly 0/255.
- ``cvc`` (CVC-ClinicDB): ``Original/<name>`` and ``Ground Truth/<name>`` (TIFF or PNG).
- ``rgba``: every image is RGBA and its alpha channel is the mask; ingestion splits it into the
  RGB image and the mask, so validation sees an RGB image like any other.

The layouts may sit under any sub-folder (``Kvasir-SEG/images/...``); an image is paired with the
mask of the same stem in the sibling mask folder. Masks are thresholded at 128 into {0, 1} for
training, but the manifest records how binary the *source* mask was, so validation can reject a
mask that is really a soft map or a photo.

Ids are the file stems. They name the ingested copies, so a stem that is not a plain file name
(``..\\..\\x``, ``-rf``) gives an entry with ``error`` set, which validation quarantines.
"""

from __future__ import annotations

from pathlib import PurePosixPath

import numpy as np

from components.config import PolypDataConfig
from components.data.sources import Entry, Source, id_error, is_image, stem
from components.errors import DataError

_FOLDERS = {"kvasir": ("images", "masks"), "cvc": ("original", "ground truth")}
POLYP_FIELDS = {"label": "polyp"}


def read_polyps(source: Source, keys: list[str], cfg: PolypDataConfig) -> tuple[str, list[Entry]]:
    """Entries for every polyp image in ``keys``, with its mask key; returns (format, entries)."""
    images = [k for k in keys if is_image(k)]
    if not images:
        raise DataError(f"{source.uri}: no images found")
    fmt = cfg.format if cfg.format != "auto" else _detect(images)
    if fmt == "rgba":
        return fmt, [
            Entry(stem(k), k, POLYP_FIELDS, mask_in_alpha=True, id_error=id_error(stem(k)))
            for k in images
        ]
    image_dir, mask_dir = _FOLDERS[fmt]
    masks = {(_root(k), stem(k)): k for k in images if _folder(k) == mask_dir}
    entries = []
    for key in images:
        if _folder(key) != image_dir:
            continue
        mask_key = masks.get((_root(key), stem(key)))
        error = "" if mask_key else "missing mask"
        entries.append(
            Entry(stem(key), key, POLYP_FIELDS, error, mask_key, id_error=id_error(stem(key)))
        )
    if not entries:
        raise DataError(f"{source.uri}: no images in a '{image_dir}' folder ({fmt} layout)")
    return fmt, entries


def _folder(key: str) -> str:
    """Lower-cased name of the folder holding ``key`` ("images" for "a/images/x.jpg")."""
    return PurePosixPath(key).parent.name.lower()


def _root(key: str) -> str:
    """The path above that folder ("a" for "a/images/x.jpg"): images pair with masks within it."""
    return PurePosixPath(key).parent.parent.as_posix()


def _detect(images: list[str]) -> str:
    folders = {_folder(k) for k in images}
    for fmt, (image_dir, _) in _FOLDERS.items():
        if image_dir in folders:
            return fmt
    return "rgba"


def mask_stats(mask: np.ndarray) -> tuple[float, float]:
    """(non-binary share, foreground share) of an 8-bit source mask.

    Non-binary pixels are those in 32..223: clearly neither background nor foreground. JPEG noise
    near 0 and 255 does not count, so a clean Kvasir mask scores about 0.
    """
    nonbinary = float(((mask >= 32) & (mask <= 223)).mean())
    return nonbinary, float(binarize(mask).mean())


def binarize(mask: np.ndarray) -> np.ndarray:
    """Threshold an 8-bit mask at 128 into uint8 {0, 1}."""
    return (mask >= 128).astype(np.uint8)


def count_components(mask: np.ndarray) -> int:
    """Connected foreground regions of a 2-D {0, 1} mask (4-connectivity)."""
    try:
        from scipy import ndimage
    except ImportError:
        return _bfs_components(mask)
    return int(ndimage.label(mask > 0)[1])


def _bfs_components(mask: np.ndarray) -> int:
    seen = np.zeros(mask.shape, dtype=bool)
    h, w = mask.shape
    count = 0
    for start in zip(*np.nonzero(mask), strict=True):
        if seen[start]:
            continue
        count += 1
        seen[start] = True
        stack = [start]
        while stack:
            y, x = stack.pop()
            for ny, nx in ((y - 1, x), (y + 1, x), (y, x - 1), (y, x + 1)):
                if 0 <= ny < h and 0 <= nx < w and mask[ny, nx] and not seen[ny, nx]:
                    seen[ny, nx] = True
                    stack.append((ny, nx))
    return count


def mask_statistics(masks: np.ndarray) -> dict[str, float]:
    """Area share and connected components of N x H x W {0, 1} masks, summarized.

    A SinGAN-Seg sample whose mask is empty or splintered into many islands is a bad training
    pair even if its RGB looks right; these numbers say how far the set drifts from real masks.
    """
    area = masks.reshape(len(masks), -1).mean(axis=1)
    comps = np.array([count_components(m) for m in masks], dtype=np.float64)
    return {
        "n": float(len(masks)),
        "area_share_mean": float(area.mean()),
        "area_share_std": float(area.std()),
        "components_mean": float(comps.mean()),
        "components_max": float(comps.max()),
        "empty_share": float((comps == 0).mean()),
        "single_component_share": float((comps == 1).mean()),
    }
