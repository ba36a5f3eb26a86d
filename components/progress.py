"""Rich progress bars for long steps, shared by every component.

Components call :func:`track` (for an iterable) or :func:`bar` (for a loop they drive). Bars go to
stderr and are switched off with ``SYNTHMED_PROGRESS=0`` (tests, benchmarks) so they cost
nothing where nobody watches.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable, Iterable, Iterator
from typing import TypeVar

T = TypeVar("T")


def enabled() -> bool:
    return os.environ.get("SYNTHMED_PROGRESS", "1") not in {"0", "false", "no", ""}


def _progress():  # type: ignore[no-untyped-def]
    from rich.console import Console
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    return Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        TextColumn("{task.fields[info]}"),
        console=Console(stderr=True),
        transient=False,
    )


def track(items: Iterable[T], description: str, total: int | None = None) -> Iterator[T]:
    """Iterate ``items`` with a progress bar."""
    if not enabled():
        yield from items
        return
    if total is None and hasattr(items, "__len__"):
        total = len(items)  # type: ignore[arg-type]
    with _progress() as progress:
        task = progress.add_task(description, total=total, info="")
        for item in items:
            yield item
            progress.advance(task)


@contextlib.contextmanager
def bar(description: str, total: int | None) -> Iterator[Callable[..., None]]:
    """A bar advanced by the caller: ``with bar("train", n) as advance: advance(1, info="...")``."""
    if not enabled():
        yield lambda n=1, info="": None
        return
    with _progress() as progress:
        task = progress.add_task(description, total=total, info="")

        def advance(n: int = 1, info: str = "") -> None:
            progress.update(task, advance=n, info=info)

        yield advance
