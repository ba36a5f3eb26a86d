"""The generator interface and registry.

A generator learns from an :class:`~components.imageset.ImageSet` of real images and samples a
synthetic one. The lesion GAN zoo, SinGAN-Seg and the learned transforms implement the same
interface and register under a name (their *kind*); stages, studies and the model zoo look
generators up by that name, so a new generator is one new module, not an edit across the tree.

A generator is built from its own config section (``cls.config_section`` names it in
:class:`~components.config.Config`), a seed and a runtime: it never sees the rest of the config.
Its trained state is a plain dict of tensors and numbers (:meth:`Generator.state_dict`), which
``torch.load(weights_only=True)`` reads back; wrapping (one model per class) and registration
in MLflow work on those dicts, never on temporary files.
"""

from __future__ import annotations

import abc
import io
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Literal, TypeVar

import numpy as np

from components.errors import ConfigError, DataError
from components.imageset import ImageSet

if TYPE_CHECKING:
    from pydantic import BaseModel

    from components.config import Config
    from components.runtime import Runtime
    from components.tracking import Reporter

Output = Literal["image", "image+label", "image+mask"]
"""What one sample is: an image, a labelled image (benign/malignant), an image with its mask."""


class Generator(abc.ABC):
    """A trainable source of synthetic images."""

    kind: ClassVar[str]
    config_section: ClassVar[str]
    """The :class:`~components.config.Config` field this generator is built from."""
    family: ClassVar[str] = ""
    """Generators compared with each other (``lesion-gan``: the zoo a lesion study trains)."""
    modality: ClassVar[str] = "any"
    """``dermoscopy``, ``endoscopy`` or ``any``: what it was made for (the model zoo's filter)."""
    output: ClassVar[Output] = "image"
    conditional: ClassVar[bool] = False
    """True when ``sample`` honours requested labels (e.g. AC-GAN)."""

    @classmethod
    @abc.abstractmethod
    def build(cls, section: BaseModel, seed: int, runtime: Runtime) -> Generator:
        """An untrained generator from its own config section."""

    @abc.abstractmethod
    def fit(self, data: ImageSet, workdir: Path, reporter: Reporter) -> dict[str, float]:
        """Train on ``data``; checkpoint into ``workdir`` and resume from it if present.

        Returns final figures (losses, throughput) for the run's summary.
        """

    @abc.abstractmethod
    def sample(self, n: int, seed: int, labels: np.ndarray | None = None) -> ImageSet:
        """Draw ``n`` synthetic images; deterministic for a given seed."""

    @abc.abstractmethod
    def state_dict(self) -> dict[str, Any]:
        """Everything sampling needs (architecture, weights), as tensors, numbers and strings.

        Includes ``"kind"``, so a saved file says what it holds.
        """

    @classmethod
    @abc.abstractmethod
    def from_state_dict(cls, state: dict[str, Any], runtime: Runtime) -> Generator:
        """The trained generator :meth:`state_dict` describes."""

    def save(self, path: Path) -> None:
        """Write :meth:`state_dict` to one file, atomically."""
        import torch

        from components.io import atomic_write_bytes

        buf = io.BytesIO()
        torch.save(self.state_dict(), buf)
        atomic_write_bytes(path, buf.getvalue())

    @classmethod
    def load(cls, path: Path, runtime: Runtime) -> Generator:
        """Read what :meth:`save` wrote (``torch.load(weights_only=True)``)."""
        return cls.from_state_dict(read_state(path), runtime)


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


def _load_all() -> None:
    import components.generators  # noqa: F401  (imports every generator module: registers them)


def get_generator(kind: str, field: str = "gan.kind") -> type[Generator]:
    """The generator class registered as ``kind``; a clear error naming ``field`` and the known
    kinds."""
    _load_all()
    try:
        return REGISTRY[kind]
    except KeyError:
        known = ", ".join(sorted(REGISTRY)) or "none"
        raise ConfigError(f"{field}: unknown generator '{kind}' (known: {known})") from None


def kinds(family: str) -> list[str]:
    """The registered kinds of one family, in registration order (e.g. the lesion GAN zoo)."""
    _load_all()
    return [kind for kind, cls in REGISTRY.items() if cls.family == family]


def class_labels(n: int, malignant_share: float) -> np.ndarray:
    """``n`` labels to ask of a conditional generator: the first ``round(n * share)`` malignant
    (1), the rest benign (0)."""
    n_mal = round(n * malignant_share)
    return np.array([1] * n_mal + [0] * (n - n_mal), dtype=np.int64)


def section_of(cls: type[Generator], cfg: Config) -> BaseModel:
    """The config section ``cls`` is built from."""
    return getattr(cfg, cls.config_section)


def read_state(path: Path) -> dict[str, Any]:
    """A saved generator state (``torch.load(weights_only=True)``); one-line errors."""
    import torch

    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: generator weights not found")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 (zip/pickle errors have many types; one meaning)
        raise DataError(f"{path}: not a saved generator ({type(exc).__name__})") from None
    if not isinstance(state, dict) or "kind" not in state:
        raise DataError(f"{path}: not a saved generator (no 'kind')")
    return state
