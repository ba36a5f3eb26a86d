"""One unconditional generator per class, so every synthetic image carries a label.

The seed project trained its unconditional GANs (DCGAN, W-GAN, SN-GAN) separately on benign and
malignant lesions; a classifier can only learn from synthetic images whose label is known. This
wrapper does the same for any registered unconditional generator and presents the pair as one
conditional generator, so stages never special-case it.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from components.generators.base import Generator, get_generator
from components.imageset import LABEL_NAMES, ImageSet

if TYPE_CHECKING:
    from pydantic import BaseModel

    from components.runtime import Runtime
    from components.tracking import Reporter


class _Prefixed:
    """A reporter that prefixes every name, so the per-class models' curves stay apart."""

    def __init__(self, inner: Reporter, prefix: str) -> None:
        self.inner, self.prefix = inner, prefix

    @property
    def run_id(self) -> str | None:
        return self.inner.run_id

    def metric(self, name: str, value: float, step: int | None = None) -> None:
        self.inner.metric(f"{self.prefix}/{name}", value, step)

    def metrics(self, values: Mapping[str, float], step: int | None = None) -> None:
        self.inner.metrics({f"{self.prefix}/{k}": v for k, v in values.items()}, step)

    def image(self, name: str, image: np.ndarray, step: int | None = None) -> None:
        self.inner.image(f"{self.prefix}_{name}", image, step)

    def figure(self, fig: Any, artifact_file: str) -> None:
        self.inner.figure(fig, f"{self.prefix}/{artifact_file}")

    def artifact(self, path: Any, subdir: str | None = None) -> None:
        self.inner.artifact(path, f"{self.prefix}/{subdir}" if subdir else self.prefix)

    def text(self, text: str, artifact_file: str) -> None:
        self.inner.text(text, f"{self.prefix}/{artifact_file}")

    def dict(self, obj: Mapping[str, Any], artifact_file: str) -> None:
        self.inner.dict(obj, f"{self.prefix}/{artifact_file}")

    def tag(self, key: str, value: Any) -> None:
        self.inner.tag(key, value)

    def tags(self, values: Mapping[str, Any]) -> None:
        self.inner.tags(values)

    def params(self, values: Mapping[str, Any]) -> None:
        self.inner.params({f"{self.prefix}.{k}": v for k, v in values.items()})

    def input(self, dataset: Any, context: str) -> None:
        self.inner.input(dataset, context)

    @contextlib.contextmanager
    def child(self, name: str, tags: Mapping[str, Any] | None = None) -> Iterator[Reporter]:
        with self.inner.child(f"{self.prefix}-{name}", tags) as kid:
            yield kid


class PerClassGenerator(Generator):
    """``{label: unconditional generator}`` behind the conditional Generator interface."""

    conditional = True
    output = "image+label"

    def __init__(self, models: dict[int, Generator]) -> None:
        self.models = models
        inner = next(iter(models.values()))
        self.kind = inner.kind  # type: ignore[misc]
        self.config_section = inner.config_section  # type: ignore[misc]
        self.family, self.modality = inner.family, inner.modality  # type: ignore[misc]

    @classmethod
    def wrap(
        cls, inner: type[Generator], section: BaseModel, seed: int, runtime: Runtime
    ) -> PerClassGenerator:
        return cls({label: inner.build(section, seed, runtime) for label in range(len(LABEL_NAMES))})

    @classmethod
    def build(cls, section: BaseModel, seed: int, runtime: Runtime) -> Generator:
        raise TypeError("use PerClassGenerator.wrap(inner_class, section, seed, runtime)")

    def fit(self, data: ImageSet, workdir: Path, reporter: Reporter) -> dict[str, float]:
        if data.labels is None:
            raise ValueError("per-class training needs labels")
        figures: dict[str, float] = {}
        for label, model in self.models.items():
            name = LABEL_NAMES[label]
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

    def state_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "per_class": {str(label): m.state_dict() for label, m in self.models.items()},
        }

    @classmethod
    def from_state_dict(cls, state: dict[str, Any], runtime: Runtime) -> PerClassGenerator:
        inner = get_generator(state["kind"])
        return cls(
            {int(label): inner.from_state_dict(s, runtime) for label, s in state["per_class"].items()}
        )

    @staticmethod
    def is_bundle(state: dict[str, Any]) -> bool:
        return "per_class" in state
