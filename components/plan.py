"""Plans: a study as named steps that say what they need, so any runner can run them.

A study (the lesion GAN study, the polyp study, the one-shot study) is built as a
:class:`Plan`: each :class:`Step` names the function it calls, its constant arguments, the
steps whose results it needs (by parameter name), and the resources it asks for. Nothing is
hidden in side effects: if a step reads what another wrote, it names that step in ``needs``.

The component runs a plan in one process with :func:`run` (tests, `--runner local`). The
Prefect flows map the same plan onto tasks, one per step, with the dependencies as task inputs
(and, on Ray, each step's resources as its remote options). Steps pass small records (dicts of
paths, names and numbers), never arrays: a step's inputs come from disk or the registry, so it
can run in another process or on another machine.
"""

from __future__ import annotations

import graphlib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

Needs = Mapping[str, "str | Sequence[str] | Mapping[str, str]"]
"""Parameter name -> the step whose result it receives; a list of steps gives a list of their
results, a mapping ``{key: step}`` a dict of them."""


@dataclass(frozen=True)
class Resources:
    """What one step asks of a worker (Ray's ``num_cpus``/``num_gpus``; fractions allowed)."""

    cpus: float = 1.0
    gpus: float = 0.0


@dataclass(frozen=True)
class Step:
    """One unit of a plan: ``fn(**args, **results of needs)``."""

    name: str
    fn: Callable[..., Any]
    args: Mapping[str, Any] = field(default_factory=dict)
    needs: Needs = field(default_factory=dict)
    resources: Resources = Resources()
    retries: int = 1
    """Times a runner retries a failed step (each step resumes from its own checkpoints)."""

    def upstream(self) -> list[str]:
        """The steps this one needs, in order, each once."""
        names: list[str] = []
        for ref in self.needs.values():
            if isinstance(ref, str):
                names.append(ref)
            elif isinstance(ref, Mapping):
                names.extend(ref.values())
            else:
                names.extend(ref)
        return list(dict.fromkeys(names))


@dataclass(frozen=True)
class Plan:
    """Steps in an order that respects ``needs`` (checked when the plan is made)."""

    name: str
    steps: tuple[Step, ...]

    def __post_init__(self) -> None:
        names = [s.name for s in self.steps]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ValueError(f"plan {self.name}: step names used twice: {dupes}")
        known = set(names)
        for step in self.steps:
            missing = [n for n in step.upstream() if n not in known]
            if missing:
                raise ValueError(f"plan {self.name}: step {step.name} needs unknown {missing}")
        sorter = graphlib.TopologicalSorter({s.name: s.upstream() for s in self.steps})
        try:
            order = list(sorter.static_order())
        except graphlib.CycleError as exc:
            raise ValueError(f"plan {self.name}: steps depend on each other: {exc.args[1]}") from None
        by_name = {s.name: s for s in self.steps}
        # Keep the order the plan was written in where needs allow (stable, readable logs).
        rank = {n: i for i, n in enumerate(names)}
        ordered: list[str] = []
        done: set[str] = set()
        pending = sorted(order, key=rank.__getitem__)
        while pending:
            ready = next(n for n in pending if set(by_name[n].upstream()) <= done)
            ordered.append(ready)
            done.add(ready)
            pending.remove(ready)
        object.__setattr__(self, "steps", tuple(by_name[n] for n in ordered))

    def __getitem__(self, name: str) -> Step:
        return next(s for s in self.steps if s.name == name)

    @property
    def names(self) -> list[str]:
        return [s.name for s in self.steps]


def inputs(step: Step, results: Mapping[str, Any]) -> dict[str, Any]:
    """The keyword arguments of ``step`` given the results (or futures) of earlier steps."""
    kwargs = dict(step.args)
    for param, ref in step.needs.items():
        if isinstance(ref, str):
            kwargs[param] = results[ref]
        elif isinstance(ref, Mapping):
            kwargs[param] = {key: results[name] for key, name in ref.items()}
        else:
            kwargs[param] = [results[name] for name in ref]
    return kwargs


def run(plan: Plan, on_step: Callable[[Step], None] | None = None) -> dict[str, Any]:
    """Run every step in order in this process; returns each step's result by name."""
    results: dict[str, Any] = {}
    for step in plan.steps:
        if on_step is not None:
            on_step(step)
        results[step.name] = step.fn(**inputs(step, results))
    return results
