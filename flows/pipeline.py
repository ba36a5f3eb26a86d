"""Prefect flows: when and where the pipeline runs. What is stale is DVC's call.

The stage graph is declared once, in ``dvc.yaml`` (one stage per profile: ``train@demo``). A
flow asks DVC for the stages in dependency order and runs each as a task that calls
:func:`components.dvcstages.reproduce`: DVC checks whether the stage changed, the stage runs in
the task's own process when it did, and DVC records it in ``dvc.lock``, as ``dvc repro`` would.
The profile is a flow parameter; ``params.yaml`` is never edited, so a run's profile cannot
leak into the next run or into git.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from dataclasses import asdict
from pathlib import Path
from typing import Any

from prefect import flow, task
from prefect.runtime import flow_run

from components import dvcstages
from components.errors import SynthmedError
from components.tracking import FLOW_RUN_ENV


def _retry_unless_user_error(task: Any, task_run: Any, state: Any) -> bool:
    """A user mistake (bad config, missing source) fails at once; a crash is retried."""
    try:
        state.result()
    except SynthmedError:
        return False
    except Exception:
        return True
    return True


@task(retries=1, retry_delay_seconds=5, retry_condition_fn=_retry_unless_user_error,
      task_run_name="{stage}")  # fmt: skip
def reproduce(stage: str, root: str, profile: str, params: str = "params.yaml") -> dict[str, Any]:
    """Bring one stage up to date (skipped when DVC finds nothing changed); its result."""
    from components.config import load_config

    cfg = load_config(Path(root) / params, profile)
    return asdict(dvcstages.reproduce(Path(root), stage, cfg))


@contextlib.contextmanager
def _flow_run_tagged() -> Iterator[None]:
    """Every MLflow run of this process names the flow run driving it (while it runs)."""
    old = os.environ.get(FLOW_RUN_ENV)
    if flow_run.id:
        os.environ[FLOW_RUN_ENV] = str(flow_run.id)
    try:
        yield
    finally:
        if old is None:
            os.environ.pop(FLOW_RUN_ENV, None)
        else:
            os.environ[FLOW_RUN_ENV] = old


def _run(until: str | None, root: str, profile: str | None, params: str) -> dict[str, Any]:
    from components.config import load_config

    cfg = load_config(Path(root) / params, profile)  # a bad profile fails here, in one line
    order = dvcstages.stage_order(Path(root), cfg.profile)
    if until is not None:
        order = order[: order.index(until) + 1]
    with _flow_run_tagged():
        results = {stage: reproduce(stage, root, cfg.profile, params) for stage in order}
    return {"profile": cfg.profile, "stages": results}


@flow(name="synthmed-pipeline", log_prints=True)
def pipeline(profile: str | None = None, root: str = ".", params: str = "params.yaml") -> dict[str, Any]:
    """Every stage of dvc.yaml, in DVC's order; up-to-date stages are skipped."""
    return _run(None, root, profile, params)


def _stage_flow(stage: str):  # type: ignore[no-untyped-def]
    @flow(name=f"synthmed-{stage}", log_prints=True)
    def run_stage(profile: str | None = None, root: str = ".", params: str = "params.yaml") -> dict[str, Any]:
        # Stale upstream stages are brought up to date first, as `dvc repro <stage>` would.
        return _run(stage, root, profile, params)

    run_stage.__doc__ = f"The '{stage}' stage of dvc.yaml and its upstream stages."
    return run_stage


ingest = _stage_flow("ingest")
validate = _stage_flow("validate")
train = _stage_flow("train")
generate = _stage_flow("generate")
evaluate = _stage_flow("evaluate")
promote = _stage_flow("promote")
