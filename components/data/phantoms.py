"""Polyp-like phantoms: a tiny, deterministic stand-in for Kvasir-SEG.

Real polyp data cannot ship with the project, yet the demo and the tests need images with masks.
A phantom is a pinkish-red mucosa texture (two octaves of smooth noise, a few darker folds, the
vignetting of an endoscope's light) with an elliptical dome on it: brighter or darker than the
wall, shaded from one side, a soft rim, and small specular highlights where the light reflects.
Its mask is the ellipse. Phantoms are written in the Kvasir-SEG layout (``images/*.jpg``,
``masks/*.jpg``), so they go through exactly the ingestion code real data goes through, JPEG
mask noise included.

Phantom ``i`` depends only on (seed, i, size): same arguments, same bytes; asking for more
phantoms keeps the first ones unchanged.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

from components.io import atomic_dir

_MUCOSA = np.array([196.0, 92.0, 82.0])
_POLYP = np.array([222.0, 118.0, 104.0])


def write_phantoms(out_dir: Path, n: int, seed: int, size: int = 128) -> Path:
    """Write ``n`` phantoms of ``size`` px into ``out_dir`` (replaced whole); return it."""
    with atomic_dir(out_dir) as tmp:
        (tmp / "images").mkdir()
        (tmp / "masks").mkdir()
        for i in range(n):
            image, mask = phantom(np.random.default_rng([seed, i]), size)
            name = f"phantom_{i:04d}.jpg"
            Image.fromarray(image).save(tmp / "images" / name, quality=92)
            # Near-lossless masks: JPEG like Kvasir's, but well under validation's noise limit.
            Image.fromarray(mask * 255).save(tmp / "masks" / name, quality=100, subsampling=0)
    return Path(out_dir)


def phantom(rng: np.random.Generator, size: int) -> tuple[np.ndarray, np.ndarray]:
    """One phantom: (size x size x 3 uint8 image, size x size uint8 {0, 1} mask)."""
    y, x = (np.mgrid[0:size, 0:size] + 0.5) / size
    texture = 0.6 * _noise(rng, size, 5) + 0.4 * _noise(rng, size, 17)
    folds = np.exp(-(((_noise(rng, size, 4) - 0.5) / 0.05) ** 2))
    wall = _MUCOSA * (0.75 + 0.4 * texture[..., None]) * (1 - 0.25 * folds[..., None])

    cx, cy = rng.uniform(0.3, 0.7, size=2)
    a, b = rng.uniform(0.12, 0.28, size=2)
    theta = rng.uniform(0, np.pi)
    u = (x - cx) * np.cos(theta) + (y - cy) * np.sin(theta)
    v = -(x - cx) * np.sin(theta) + (y - cy) * np.cos(theta)
    d = (u / a) ** 2 + (v / b) ** 2
    mask = (d <= 1).astype(np.uint8)
    dome = np.sqrt(np.clip(1 - d, 0, 1))
    # Light from the upper left: the side of the dome facing it is brighter.
    shade = 0.75 + 0.35 * dome - 0.2 * np.clip((x - cx) + (y - cy), -1, 1) / max(a, b)
    tone = rng.uniform(0.8, 1.2)
    polyp = _POLYP * tone * shade[..., None] * (0.9 + 0.2 * texture[..., None])
    rim = np.clip((1 - d) / 0.25, 0, 1)[..., None]
    image = wall * (1 - rim) + polyp * rim

    for _ in range(rng.integers(1, 4)):
        sx = cx - rng.uniform(0.1, 0.5) * a
        sy = cy - rng.uniform(0.1, 0.5) * b
        spot = np.exp(-((x - sx) ** 2 + (y - sy) ** 2) / (2 * rng.uniform(0.006, 0.015) ** 2))
        image += 255 * (spot * mask)[..., None]

    light = 1 - 0.45 * ((x - 0.5) ** 2 + (y - 0.5) ** 2) / 0.5
    return np.clip(image * light[..., None], 0, 255).astype(np.uint8), mask


def _noise(rng: np.random.Generator, size: int, cells: int) -> np.ndarray:
    """Smooth noise in about [0, 1]: a cells x cells random grid upsampled bicubically."""
    grid = Image.fromarray(rng.random((cells, cells)).astype(np.float32), mode="F")
    return np.asarray(grid.resize((size, size), Image.Resampling.BICUBIC), dtype=np.float64)
