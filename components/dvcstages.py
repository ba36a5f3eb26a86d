"""Running the stages of ``dvc.yaml``: DVC decides what is stale, the stage runs in this process.

``dvc.yaml`` declares each stage once per profile (``foreach: ${profiles}``), so a stage of
profile ``demo`` is ``ingest@demo`` and runs ``synthmed ingest --profile demo``; choosing a
profile never edits ``params.yaml``, and runs of different profiles never touch each other's
entries. :func:`reproduce` does what ``dvc repro --single-item`` does, without a fresh
interpreter per stage:

Paths in the config are relative to the project root, so the stage runs with the root as the
current folder (where ``dvc repro`` runs commands too).

1. ask DVC whether the stage changed (deps, params, outs, the command) under DVC's repo lock;
2. if it did, run the stage function in this process (what the command would run), under a
   per-stage file lock, so two runs of the same profile do the work once;
3. record the result with DVC's Python API (outputs saved and cached, ``dvc.lock`` updated),
   exactly as ``dvc repro`` would; a failed stage records nothing.

Plain ``dvc repro`` keeps working and sees the same lock entries. DVC's repo lock is held only
for the status check and the commit (a few seconds at most), never while a stage trains.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import logging
import os
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from components.errors import SynthmedError

if TYPE_CHECKING:
    from dvc.repo import Repo
    from dvc.stage import Stage

    from components.config import Config

log = logging.getLogger(__name__)
LOCK_WAIT_S = 120.0
"""How long to wait for DVC's repo lock (another run's status check or commit) before failing."""


@dataclass(frozen=True)
class StageResult:
    """One stage of one run: whether DVC found it up to date, its metrics, and its time."""

    stage: str
    skipped: bool
    metrics: dict[str, Any]
    seconds: float


def dvc_name(stage: str, profile: str) -> str:
    """The stage's address in ``dvc.yaml`` for a profile, e.g. ``ingest@demo``."""
    return f"{stage}@{profile}"


@contextlib.contextmanager
def open_repo(root: Path) -> Iterator[Repo]:
    """The DVC repo at ``root`` (closed afterwards: it holds sqlite handles)."""
    from dvc.exceptions import NotDvcRepoError
    from dvc.repo import Repo

    try:
        repo = Repo(os.fspath(root))
    except NotDvcRepoError:
        raise SynthmedError(f"{root}: not a DVC project (no .dvc folder); run from the project root") from None
    with repo:
        yield repo


@contextlib.contextmanager
def repo_lock(repo: Repo, wait_s: float = LOCK_WAIT_S) -> Iterator[None]:
    """DVC's repo lock, retried while another process holds it briefly."""
    from dvc.lock import LockError
    from dvc.repo import lock_repo

    deadline = time.monotonic() + wait_s
    while True:
        try:
            with lock_repo(repo):
                yield
            return
        except LockError:
            if time.monotonic() > deadline:
                raise SynthmedError(
                    f"{repo.root_dir}: DVC's lock was held for over {wait_s:.0f} s by another "
                    "process (a `dvc` command?); try again when it is done"
                ) from None
            time.sleep(0.5)


def stage_order(root: Path, profile: str) -> list[str]:
    """The pipeline's stage names (without ``@profile``) in dependency order, as DVC sees them."""
    import networkx as nx

    with open_repo(root) as repo:
        graph = repo.index.graph
        # Edges point from a stage to the stages it depends on.
        ordered = reversed(list(nx.topological_sort(graph)))
        suffix = f"@{profile}"
        names = [
            s.name.removesuffix(suffix)
            for s in ordered
            if getattr(s, "name", "").endswith(suffix) and s.path.endswith("dvc.yaml")
        ]
    if not names:
        raise SynthmedError(f"dvc.yaml: no stages for profile '{profile}'")
    return names


def _collect(repo: Repo, name: str) -> Stage:
    from dvc.stage.exceptions import StageNotFound

    try:
        return repo.stage.collect(name)[0]
    except StageNotFound:
        raise SynthmedError(f"dvc.yaml: no stage '{name}'") from None


def is_stale(root: Path, stage: str, profile: str) -> bool:
    """Whether DVC would run ``stage`` of ``profile`` now (anything it tracks changed)."""
    with open_repo(root) as repo, repo_lock(repo):
        return bool(_collect(repo, dvc_name(stage, profile)).changed())


def record(root: Path, stage: str, profile: str) -> None:
    """Save the stage's outputs to DVC's cache and write its entry in ``dvc.lock``."""
    with open_repo(root) as repo, repo_lock(repo):
        st = _collect(repo, dvc_name(stage, profile))
        st.save()
        st.commit()
        st.dump(update_pipeline=False)


@contextlib.contextmanager
def stage_lock(cfg: Config, stage: str) -> Iterator[None]:
    """An exclusive file lock per profile and stage: a second run waits, then finds the stage
    up to date. Released by the OS if the process dies."""
    path = cfg.out_dir / f".{stage}.lock"
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def reproduce(
    root: Path,
    stage: str,
    cfg: Config,
    run: Callable[[Config], dict[str, Any]] | None = None,
) -> StageResult:
    """Bring ``stage`` of ``cfg.profile`` up to date, in this process; see the module docstring.

    ``run`` is the stage function (default: :data:`components.stages.STAGES`' entry).
    """
    from components.stages import STAGES

    start = time.perf_counter()
    fn = run or STAGES[stage]
    root = Path(root).resolve()
    skipped = True
    # Stage paths are relative to the project root, where `dvc repro` runs commands too.
    with contextlib.chdir(root):
        if is_stale(root, stage, cfg.profile):
            with stage_lock(cfg, stage):
                # Another run of this profile may have finished it while we waited.
                if is_stale(root, stage, cfg.profile):
                    fn(cfg)
                    record(root, stage, cfg.profile)
                    skipped = False
        metrics_file = cfg.stage_dir(stage) / "metrics.json"
        metrics = json.loads(metrics_file.read_text()) if metrics_file.is_file() else {}
    return StageResult(stage, skipped, metrics, time.perf_counter() - start)
