"""Build or load a generator by kind, wrapping unconditional ones per class when asked."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from components.generators.base import Generator, get_generator, read_state
from components.generators.per_class import PerClassGenerator

if TYPE_CHECKING:
    from pydantic import BaseModel

    from components.runtime import Runtime


def build_generator(
    kind: str, section: BaseModel, seed: int, runtime: Runtime, field: str = "gan.kind"
) -> Generator:
    """An untrained ``kind`` from its config section; unconditional kinds get one model per
    class when the section says ``per_class`` (synthetic images then carry labels)."""
    cls = get_generator(kind, field)
    if not cls.conditional and getattr(section, "per_class", False):
        return PerClassGenerator.wrap(cls, section, seed, runtime)
    return cls.build(section, seed, runtime)


def generator_from_state(state: dict, runtime: Runtime) -> Generator:  # type: ignore[type-arg]
    """The trained generator a :meth:`Generator.state_dict` describes (per-class bundles too)."""
    if PerClassGenerator.is_bundle(state):
        return PerClassGenerator.from_state_dict(state, runtime)
    return get_generator(state["kind"]).from_state_dict(state, runtime)


def load_generator(path: Path, runtime: Runtime) -> Generator:
    """Load what ``generator.save(path)`` wrote."""
    return generator_from_state(read_state(path), runtime)
