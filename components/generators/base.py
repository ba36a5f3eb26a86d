"""The generator interface and registry.

A generator learns from an :class:`ImageSet` of real images and samples a synthetic
:class:`ImageSet`. The lesion GAN zoo (DCGAN, WGAN-GP, AC-GAN, SN-GAN) and SinGAN-Seg implement
the same interface and register under a name; stages and flows look generators up by that name
(``cfg.gan.kind``), so a new generator is one new module, not an edit across the tree.
"""

from __future__ import annotations

import abc
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, ClassVar, TypeVar

import numpy as np

from components.errors import ConfigError

if TYPE_CHECKING:
    from components.config import Config
    from components.runtime import Runtime
    from components.tracking import Reporter


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

    def subset(self, index: np.ndarray | list[int]) -> ImageSet:
        idx = np.asarray(index, dtype=np.int64)
        return ImageSet(
            images=self.images[idx],
            labels=None if self.labels is None else self.labels[idx],
            masks=None if self.masks is None else self.masks[idx],
            ids=None if self.ids is None else [self.ids[i] for i in idx],
        )


class Generator(abc.ABC):
    """A trainable source of synthetic images."""

    kind: ClassVar[str]
    conditional: ClassVar[bool] = False
    """True when ``sample`` honours requested labels (e.g. AC-GAN)."""

    @classmethod
    @abc.abstractmethod
    def from_config(cls, cfg: Config, runtime: Runtime) -> Generator:
        """Build an untrained generator from the resolved config."""

    @abc.abstractmethod
    def fit(self, data: ImageSet, workdir: Path, reporter: Reporter) -> dict[str, float]:
        """Train on ``data``; checkpoint into ``workdir`` and resume from it if present.

        Returns final figures (losses, throughput) for the run's summary.
        """

    @abc.abstractmethod
    def sample(self, n: int, seed: int, labels: np.ndarray | None = None) -> ImageSet:
        """Draw ``n`` synthetic images; deterministic for a given seed."""

    @abc.abstractmethod
    def save(self, path: Path) -> None:
        """Write the trained weights (state_dicts only) to one file, atomically."""

    @classmethod
    @abc.abstractmethod
    def load(cls, path: Path, runtime: Runtime) -> Generator:
        """Load what :meth:`save` wrote (``torch.load(weights_only=True)``)."""


REGISTRY: dict[str, type[Generator]] = {}
G = TypeVar("G", bound=type[Generator])


def register(kind: str) -> Callable[[G], G]:
    """Class decorator: make a generator available under ``kind``."""

    def deco(cls: G) -> G:
        if kind in REGISTRY and REGISTRY[kind] is not cls:
            raise ValueError(f"generator kind '{kind}' registered twice")
        cls.kind = kind
        REGISTRY[kind] = cls
        return cls

    return deco


def get_generator(kind: str) -> type[Generator]:
    """The generator class registered as ``kind``; a clear error naming the known kinds."""
    import components.generators  # noqa: F401  (imports every generator module: registers them)

    try:
        return REGISTRY[kind]
    except KeyError:
        known = ", ".join(sorted(REGISTRY)) or "none"
        raise ConfigError(f"gan.kind: unknown generator '{kind}' (known: {known})") from None
