"""Build or load the configured generator, wrapping unconditional ones per class."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from components.generators.base import Generator, get_generator
from components.generators.per_class import PerClassGenerator

if TYPE_CHECKING:
    from components.config import Config
    from components.runtime import Runtime


def build_generator(cfg: Config, runtime: Runtime) -> Generator:
    """An untrained ``cfg.gan.kind``; unconditional kinds get one model per class when
    ``cfg.gan.per_class`` (synthetic images then carry labels)."""
    cls = get_generator(cfg.gan.kind)
    if not cls.conditional and cfg.gan.per_class:
        return PerClassGenerator.wrap(cls, cfg, runtime)
    return cls.from_config(cfg, runtime)


def load_generator(kind: str, path: Path, runtime: Runtime) -> Generator:
    """Load what ``build_generator(...).save(path)`` wrote."""
    cls = get_generator(kind)
    if PerClassGenerator.is_bundle(path):
        return PerClassGenerator.load_with(cls, path, runtime)
    return cls.load(path, runtime)
