"""The studies as Prefect flows: the component's plan mapped onto tasks, nothing else.

Each step of a study's :class:`~components.plan.Plan` becomes one task run (named after the
step, retried as the step says), submitted with its upstream steps' futures as inputs, so
Prefect runs steps as soon as what they need is done and a failed step stops only what depends
on it. The runner decides where tasks run: a thread pool sized for one device by default.
Steps exchange small records; images stay on disk.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from prefect import flow, task
from prefect.cache_policies import NO_CACHE
from prefect.futures import PrefectFuture, wait
from prefect.task_runners import ThreadPoolTaskRunner

from components import offline
from components import plan as plans
from components.experiments import lesions, polyps
from components.experiments.study import study_run

STUDIES: Mapping[str, Any] = {"lesions": lesions, "polyps": polyps}
"""Study name (as in ``synthmed experiment <name>``) -> its component module."""


def submit_plan(plan: plans.Plan) -> dict[str, PrefectFuture[Any]]:
    """Submit every step as a task, in plan order, with its upstream futures as inputs."""
    futures: dict[str, PrefectFuture[Any]] = {}
    for step in plan.steps:
        step_task = task(
            step.fn,
            name=f"{plan.name}.{step.fn.__name__}",
            task_run_name=step.name,
            retries=step.retries,
            cache_policy=NO_CACHE,
        )
        futures[step.name] = step_task.submit(**plans.inputs(step, futures))
    return futures


def run_plan(plan: plans.Plan) -> dict[str, Any]:
    """Submit the plan, wait for every step, return each step's result (raises if one failed)."""
    futures = submit_plan(plan)
    wait(list(futures.values()))
    return {name: future.result() for name, future in futures.items()}


def _study_flow(study: str) -> Any:
    module = STUDIES[study]

    @flow(name=f"synthmed-{module.STAGE}", log_prints=True)
    def run(profile: str | None = None, params: str = "params.yaml", root: str = ".") -> dict[str, Any]:
        start = time.perf_counter()
        prepare = task(module.prepare, name=f"{module.STAGE}.prepare", cache_policy=NO_CACHE)
        cfg, lineage = prepare(Path(root), profile, params)
        with study_run(cfg, module.STAGE, Path(root), lineage) as ctx:
            results = run_plan(module.build_plan(ctx))
            seconds = time.perf_counter() - start
            ctx.parent().metric("wall_seconds", seconds)
        return {**results["report"], "parent_run_id": ctx.parent_run_id, "seconds": round(seconds, 1)}

    run.__doc__ = f"The {study} study: {module.__doc__.strip().splitlines()[0]}"
    return run


lesion_study_flow = _study_flow("lesions")
polyp_study_flow = _study_flow("polyps")
FLOWS = {"lesions": lesion_study_flow, "polyps": polyp_study_flow}


def run_study(study: str, profile: str | None = None, params: str = "params.yaml", workers: int = 1) -> dict[str, Any]:
    """Run a study's flow with ``workers`` steps at a time (what ``synthmed experiment`` calls)."""
    offline.apply()
    runner = ThreadPoolTaskRunner(max_workers=workers)
    return FLOWS[study].with_options(task_runner=runner)(profile=profile, params=params)
