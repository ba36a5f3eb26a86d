"""One unconditional generator per class, so every synthetic image carries a label.

The seed project trained its unconditional GANs (DCGAN, W-GAN, SN-GAN) separately on benign and
malignant lesions; a classifier can only learn from synthetic images whose label is known. This
wrapper does the same for any registered unconditional generator and presents the pair as one
conditional generator, so stages never special-case it.
"""

from __future__ import annotations

import io
import os
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch

from components.generators.base import Generator, ImageSet
from components.io import atomic_write_bytes

if TYPE_CHECKING:
    from components.config import Config
    from components.runtime import Runtime
    from components.tracking import Reporter

CLASS_NAMES = {0: "benign", 1: "malignant"}


class _Prefixed:
    """A reporter that prefixes every name, so the two models' curves stay apart in MLflow."""

    def __init__(self, inner: Reporter, prefix: str) -> None:
        self.inner, self.prefix = inner, prefix

    def metric(self, name: str, value: float, step: int | None = None) -> None:
        self.inner.metric(f"{self.prefix}/{name}", value, step)

    def image(self, name: str, image: np.ndarray, step: int | None = None) -> None:
        self.inner.image(f"{self.prefix}_{name}", image, step)

    def artifact(self, path: str | os.PathLike[str], subdir: str | None = None) -> None:
        self.inner.artifact(path, f"{self.prefix}/{subdir}" if subdir else self.prefix)


class PerClassGenerator(Generator):
    """``{label: unconditional generator}`` behind the conditional Generator interface."""

    conditional = True

    def __init__(self, models: dict[int, Generator]) -> None:
        self.models = models
        self.kind = next(iter(models.values())).kind

    @classmethod
    def wrap(cls, inner: type[Generator], cfg: Config, runtime: Runtime) -> PerClassGenerator:
        return cls({label: inner.from_config(cfg, runtime) for label in CLASS_NAMES})

    @classmethod
    def from_config(cls, cfg: Config, runtime: Runtime) -> Generator:
        raise TypeError("use PerClassGenerator.wrap(inner_class, cfg, runtime)")

    def fit(self, data: ImageSet, workdir: Path, reporter: Reporter) -> dict[str, float]:
        if data.labels is None:
            raise ValueError("per-class training needs labels")
        figures: dict[str, float] = {}
        for label, model in self.models.items():
            name = CLASS_NAMES[label]
            subset = data.subset(np.flatnonzero(data.labels == label))
            if len(subset) == 0:
                raise ValueError(f"no training images of class '{name}'")
            out = model.fit(subset, workdir / name, _Prefixed(reporter, name))
            figures.update({f"{name}/{k}": v for k, v in out.items()})
        return figures

    def sample(self, n: int, seed: int, labels: np.ndarray | None = None) -> ImageSet:
        if labels is None:
            labels = np.arange(n, dtype=np.int64) % len(self.models)
        labels = np.asarray(labels, dtype=np.int64)
        parts: list[np.ndarray] = []
        images: np.ndarray | None = None
        for label, model in self.models.items():
            where = np.flatnonzero(labels == label)
            if len(where) == 0:
                continue
            drawn = model.sample(len(where), seed=seed + label).images
            if images is None:
                images = np.empty((n, *drawn.shape[1:]), dtype=np.uint8)
            images[where] = drawn
            parts.append(where)
        if images is None or sum(len(p) for p in parts) != n:
            raise ValueError(f"labels must be in {sorted(self.models)}")
        return ImageSet(images=images, labels=labels, ids=[f"syn-{i:06d}" for i in range(n)])

    def save(self, path: Path) -> None:
        # One file holding each inner model's own checkpoint (state_dicts only).
        bundle = {"kind": self.kind, "per_class": {}}
        with tempfile.TemporaryDirectory() as tmp:
            for label, model in self.models.items():
                part = Path(tmp) / f"{label}.pt"
                model.save(part)
                bundle["per_class"][str(label)] = torch.load(part, weights_only=True)
        buf = io.BytesIO()
        torch.save(bundle, buf)
        atomic_write_bytes(path, buf.getvalue())

    @classmethod
    def load_with(cls, inner: type[Generator], path: Path, runtime: Runtime) -> PerClassGenerator:
        bundle = torch.load(path, weights_only=True, map_location="cpu")
        models: dict[int, Generator] = {}
        with tempfile.TemporaryDirectory() as tmp:
            for label, state in bundle["per_class"].items():
                part = Path(tmp) / f"{label}.pt"
                torch.save(state, part)
                models[int(label)] = inner.load(part, runtime)
        return cls(models)

    @classmethod
    def load(cls, path: Path, runtime: Runtime) -> Generator:
        raise TypeError("use PerClassGenerator.load_with(inner_class, path, runtime)")

    @staticmethod
    def is_bundle(path: Path) -> bool:
        state = torch.load(path, weights_only=True, map_location="cpu")
        return isinstance(state, dict) and "per_class" in state
