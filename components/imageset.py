"""Images as arrays, and the few operations every part of synthmed does on them.

An :class:`ImageSet` is what flows between data, generators, metrics and the task models:
N x H x W x 3 uint8 RGB images with optional labels (0 benign, 1 malignant), {0, 1} masks and
ids. The operations here are the only ones: resizing (one kernel for images, one for masks),
concatenation, mixing real with synthetic images, and image grids for reports. A classifier arm
in the pipeline and the same arm in a study therefore see the same pixels.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

LABEL_NAMES = ("benign", "malignant")
"""Lesion class names by label code: ``LABEL_NAMES[1] == "malignant"``."""
LABEL_CODES = {name: code for code, name in enumerate(LABEL_NAMES)}

RESIZE_KERNEL = "bicubic, antialiased (torch.nn.functional.interpolate); masks: nearest"
"""How :func:`resize` resamples; stated in reports so readers know what the models saw."""
_CHUNK = 256
"""Images resized at once: a float copy of a whole large set would need 4x its memory."""


@dataclass(frozen=True)
class ImageSet:
    """Images (and optionally labels and masks) as arrays.

    images: N x H x W x 3 uint8 RGB. labels: N int64 (0 benign, 1 malignant) or None.
    masks: N x H x W uint8 in {0, 1} or None. ids: one string per image or None.
    """

    images: np.ndarray
    labels: np.ndarray | None = None
    masks: np.ndarray | None = None
    ids: list[str] | None = None

    def __post_init__(self) -> None:
        n = len(self.images)
        if self.images.dtype != np.uint8 or self.images.ndim != 4 or self.images.shape[-1] != 3:
            raise ValueError(f"images must be N x H x W x 3 uint8, got {self.images.shape}")
        for name in ("labels", "masks", "ids"):
            value = getattr(self, name)
            if value is not None and len(value) != n:
                raise ValueError(f"{name} has {len(value)} entries for {n} images")

    def __len__(self) -> int:
        return len(self.images)

    @property
    def size(self) -> tuple[int, int]:
        """(height, width) of the images."""
        return int(self.images.shape[1]), int(self.images.shape[2])

    def subset(self, index: np.ndarray | Sequence[int]) -> ImageSet:
        idx = np.asarray(index, dtype=np.int64)
        return ImageSet(
            images=self.images[idx],
            labels=None if self.labels is None else self.labels[idx],
            masks=None if self.masks is None else self.masks[idx],
            ids=None if self.ids is None else [self.ids[i] for i in idx],
        )

    def with_ids(self, prefix: str) -> ImageSet:
        """The same set with ids (``<prefix>-000000``...) when it has none."""
        if self.ids is not None:
            return self
        ids = [f"{prefix}-{i:06d}" for i in range(len(self))]
        return ImageSet(self.images, self.labels, self.masks, ids)


# --------------------------------------------------------------------------------------------
# resizing


def resize_images(images: np.ndarray, size: int | tuple[int, int]) -> np.ndarray:
    """N x H x W x 3 uint8 -> N x h x w x 3 uint8 with :data:`RESIZE_KERNEL` (no-op at size)."""
    import torch
    import torch.nn.functional as F

    hw = (size, size) if isinstance(size, int) else tuple(size)
    if tuple(images.shape[1:3]) == hw:
        return images
    x = torch.from_numpy(np.ascontiguousarray(images)).permute(0, 3, 1, 2)
    out = [
        F.interpolate(c.float(), size=hw, mode="bicubic", antialias=True, align_corners=False)
        .round()
        .clamp(0, 255)
        .to(torch.uint8)
        for c in x.split(_CHUNK)
    ]
    return np.ascontiguousarray(torch.cat(out).permute(0, 2, 3, 1).numpy())


def resize_masks(masks: np.ndarray, size: int | tuple[int, int]) -> np.ndarray:
    """N x H x W {0, 1} -> N x h x w {0, 1}, nearest neighbour (a mask stays binary)."""
    import torch
    import torch.nn.functional as F

    hw = (size, size) if isinstance(size, int) else tuple(size)
    if tuple(masks.shape[1:3]) == hw:
        return masks
    y = torch.from_numpy(np.ascontiguousarray(masks))[:, None].float()
    return F.interpolate(y, size=hw, mode="nearest")[:, 0].to(torch.uint8).numpy()


def resize(data: ImageSet, size: int | tuple[int, int]) -> ImageSet:
    """``data`` at ``size`` px: images with :data:`RESIZE_KERNEL`, masks nearest. Unchanged when
    already at that size."""
    hw = (size, size) if isinstance(size, int) else tuple(size)
    if data.size == hw:
        return data
    masks = None if data.masks is None else resize_masks(data.masks, hw)
    return ImageSet(resize_images(data.images, hw), data.labels, masks, data.ids)


# --------------------------------------------------------------------------------------------
# combining


def concat(*sets: ImageSet) -> ImageSet:
    """One set of ``sets`` in order. Labels and masks are kept when every non-empty set has them;
    missing ids are made up (``set<k>-<j>``). All images must share one size."""
    parts = [s for s in sets if len(s)] or list(sets[:1])
    if not parts:
        raise ValueError("concat of no sets")
    sizes = {s.size for s in parts}
    if len(sizes) > 1:
        raise ValueError(f"concat: images of different sizes {sorted(sizes)}; resize first")

    def joined(name: str) -> np.ndarray | None:
        arrays = [getattr(s, name) for s in parts]
        return None if any(a is None for a in arrays) else np.concatenate(arrays)

    ids = [
        i for k, s in enumerate(parts) for i in (s.ids or [f"set{k}-{j}" for j in range(len(s))])
    ]
    return ImageSet(
        images=np.concatenate([s.images for s in parts]),
        labels=joined("labels"),
        masks=joined("masks"),
        ids=ids,
    )


def draw(data: ImageSet, n: int, seed: int) -> ImageSet:
    """``min(n, len(data))`` images drawn without replacement (seeded), kept in set order."""
    n = min(len(data), int(n))
    pick = np.random.default_rng(seed).choice(len(data), size=n, replace=False)
    return data.subset(np.sort(pick))


def mix(real: ImageSet, synthetic: ImageSet, per_real: float, seed: int) -> ImageSet:
    """Real plus ``per_real`` synthetic images per real one (drawn without replacement), the
    synthetic images resized to the real ones' size first."""
    drawn = draw(synthetic, round(per_real * len(real)), seed)
    return concat(real, resize(drawn, real.size))


# --------------------------------------------------------------------------------------------
# pictures


def grid(images: np.ndarray, cols: int = 8) -> np.ndarray:
    """N x H x W x 3 -> one (rows*H) x (cols*W) x 3 image, row by row."""
    n, h, w, c = images.shape
    cols = max(1, min(cols, n))
    rows = -(-n // cols)
    canvas = np.zeros((rows * h, cols * w, c), dtype=np.uint8)
    for i, image in enumerate(images):
        r, q = divmod(i, cols)
        canvas[r * h : (r + 1) * h, q * w : (q + 1) * w] = image
    return canvas


def mask_outline(mask: np.ndarray) -> np.ndarray:
    """H x W bool: the foreground pixels of a {0, 1} mask that touch the background."""
    m = mask.astype(bool)
    inner = m.copy()
    inner[1:, :] &= m[:-1, :]
    inner[:-1, :] &= m[1:, :]
    inner[:, 1:] &= m[:, :-1]
    inner[:, :-1] &= m[:, 1:]
    return m & ~inner


def preview(data: ImageSet, n: int = 16, cols: int = 8) -> np.ndarray:
    """A grid of up to ``n`` images for people: masks drawn as green outlines; with labels,
    benign first then malignant so both classes show."""
    idx = np.arange(min(n, len(data)))
    if data.labels is not None:
        half = n // 2
        idx = np.sort(
            np.r_[np.flatnonzero(data.labels == 0)[:half], np.flatnonzero(data.labels == 1)[:half]]
        )
    images = data.images[idx].copy()
    if data.masks is not None:
        for k, i in enumerate(idx):
            images[k][mask_outline(data.masks[i])] = (0, 255, 0)
    return grid(images, cols)


def png_bytes(array: np.ndarray) -> bytes:
    """An H x W x 3 (or H x W) uint8 array as PNG bytes, a function of the pixels alone.

    Pillow writes no time chunk, so a fixed compression level makes equal pixels give equal
    bytes: what keeps a regenerated synthetic set's DVC md5 stable.
    """
    import io

    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(array)).save(buf, format="PNG", compress_level=6)
    return buf.getvalue()
