"""Prefect flows: when and where the pipeline runs. What is stale is DVC's call.

The stage graph is declared once, in ``dvc.yaml``. A flow asks DVC for the stages in dependency
order and runs each as a task that calls ``dvc repro --single-item <stage>``: DVC skips a stage
whose inputs, code and params are unchanged, and otherwise runs the stage's command (the
``synthmed`` CLI, which calls the component). The flow run id travels to those processes in
``SYNTHMED_FLOW_RUN_ID`` so every MLflow run and registered model is tagged with it.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

from prefect import flow, get_run_logger, task
from prefect.runtime import flow_run

from components.errors import SynthmedError
from components.tracking import FLOW_RUN_ENV

DVC = str(Path(sys.executable).with_name("dvc"))
USER_ERROR = "synthmed: error:"
"""Prefix of the one-line message the CLI prints for a user mistake (exit status 2)."""


class StageFailed(SynthmedError):
    """A stage's command failed; the message is the stage's own last error line."""

    def __init__(self, stage: str, message: str, user_error: bool) -> None:
        super().__init__(f"stage '{stage}' failed: {message}")
        self.user_error = user_error


def stage_order(root: str | os.PathLike[str] = ".") -> list[str]:
    """The pipeline stages of ``dvc.yaml`` in dependency order, as DVC sees them."""
    import networkx as nx
    from dvc.repo import Repo

    with Repo(str(root)) as repo:
        graph = repo.index.graph
        # Edges point from a stage to the stages it depends on.
        ordered = list(reversed(list(nx.topological_sort(graph))))
        return [s.name for s in ordered if getattr(s, "name", None) and s.path.endswith("dvc.yaml")]


def set_profile(root: Path, profile: str) -> bool:
    """Make ``profile`` the active one in params.yaml (as ``dvc exp run -S`` would).

    DVC reads the profile from params.yaml, so a flow asked for another profile records that
    choice there, where ``dvc repro`` and ``git diff`` see it. Returns True if it changed.
    """
    from components.config import load_config
    from components.io import atomic_write_text

    params = root / "params.yaml"
    load_config(params, profile)  # fails clearly if the profile does not exist
    text = params.read_text(encoding="utf-8")
    new, n = re.subn(r"(?m)^profile:\s*\S+", f"profile: {profile}", text, count=1)
    if n == 0:
        new = f"profile: {profile}\n{text}"
    if new == text:
        return False
    atomic_write_text(params, new)
    return True


def _no_retry_on_user_error(task: Any, task_run: Any, state: Any) -> bool:
    try:
        state.result()
    except StageFailed as exc:
        return not exc.user_error
    except Exception:
        return True
    return True


@task(retries=2, retry_delay_seconds=5, retry_condition_fn=_no_retry_on_user_error,
      task_run_name="{stage}")
def reproduce(stage: str, root: str, profile: str, single_item: bool = True) -> dict[str, Any]:
    """Run one DVC stage (skipped by DVC when up to date) and return its metrics.json.

    With ``single_item=False`` DVC first brings the stage's stale upstream stages up to date.
    """
    logger = get_run_logger()
    env = dict(os.environ)
    # Stage commands call `synthmed`, which lives next to this interpreter.
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    if flow_run.id:
        env[FLOW_RUN_ENV] = str(flow_run.id)
    proc = subprocess.run(
        [DVC, "repro", *(["--single-item"] if single_item else []), stage],
        cwd=root,
        env=env,
        capture_output=True,
        text=True,
    )
    output = (proc.stdout + proc.stderr).strip()
    for line in output.splitlines()[-40:]:
        logger.info(line)
    if proc.returncode != 0:
        lines = [ln for ln in output.splitlines() if ln.strip()]
        user = [ln for ln in lines if ln.startswith(USER_ERROR)]
        crash = [ln for ln in lines if re.match(r"^[A-Za-z_.]+(Error|Exception):", ln)]
        message = user[-1] if user else " / ".join(crash[-1:] + lines[-1:]) or "no output"
        raise StageFailed(stage, message, user_error=bool(user))
    skipped = "didn't change, skipping" in output or "is cached" in output
    metrics_file = Path(root) / "build" / profile / stage / "metrics.json"
    metrics = json.loads(metrics_file.read_text()) if metrics_file.is_file() else {}
    return {"stage": stage, "skipped": skipped, "metrics": metrics}


def _run(
    stages: list[str], root: str, profile: str | None, single_item: bool = True
) -> dict[str, Any]:
    from components.config import load_config

    root_path = Path(root).resolve()
    if profile and set_profile(root_path, profile):
        get_run_logger().info("params.yaml: profile set to '%s'", profile)
    cfg = load_config(root_path / "params.yaml")
    results = {}
    for stage in stages:
        results[stage] = reproduce(stage, str(root_path), cfg.profile, single_item)
    return {"profile": cfg.profile, "stages": results}


@flow(name="synthmed-pipeline", log_prints=True)
def pipeline(profile: str | None = None, root: str = ".") -> dict[str, Any]:
    """Every stage of dvc.yaml, in DVC's order; up-to-date stages are skipped by DVC."""
    return _run(stage_order(root), root, profile)


def _stage_flow(stage: str):  # type: ignore[no-untyped-def]
    @flow(name=f"synthmed-{stage}", log_prints=True)
    def run_stage(profile: str | None = None, root: str = ".") -> dict[str, Any]:
        # Without --single-item DVC also refreshes stale upstream stages first.
        return _run([stage], root, profile, single_item=False)

    run_stage.__doc__ = f"The '{stage}' stage of dvc.yaml (skipped by DVC when up to date)."
    return run_stage


ingest = _stage_flow("ingest")
validate = _stage_flow("validate")
train = _stage_flow("train")
generate = _stage_flow("generate")
evaluate = _stage_flow("evaluate")
promote = _stage_flow("promote")
