"""The lesion GAN study as a Prefect flow: thin tasks over ``components.experiments.lesions``.

One task per GAN kind (training), per set (metrics and publishing) and per arm and seed, each
retried once on its own: a retried GAN resumes from its checkpoints, a retried arm retrains only
itself. The order is the component's (see :func:`components.experiments.lesions.run_study`):
GANs, real features, the real arm's first seed (the DOMAIN features need its classifier), the
sets, the other arms, the report. Tasks exchange small records; images stay on disk.
"""

from __future__ import annotations

import os
import time
from typing import Any

from prefect import flow, task
from prefect.cache_policies import NO_CACHE

from components import tracking
from components.config import Config, load_config
from components.experiments import lesions

TERMINAL_GAN_COLUMNS = (
    "GAN",
    "published",
    "FID (Inception)",
    "KID (Inception)",
    "FID (domain)",
    "memorized share",
)
"""What ``print_table`` shows of the generator table (the terminal is narrow)."""

train_gan = task(lesions.train_gan, retries=1, cache_policy=NO_CACHE, task_run_name="gan-{kind}")
real_features = task(lesions.real_features, cache_policy=NO_CACHE)
evaluate_gan = task(
    lesions.evaluate_gan, retries=1, cache_policy=NO_CACHE, task_run_name="set-{gan[kind]}"
)
run_arm = task(
    lesions.run_arm, retries=1, cache_policy=NO_CACHE, task_run_name="{arm.name}-seed{seed}"
)


@task(cache_policy=NO_CACHE)
def prepare(cfg: Config) -> str:
    """Settings checked, ingest and validate run when missing; the data lineage hash."""
    return lesions.prepare(cfg)


@flow(name="synthmed-lesion-study", log_prints=True)
def lesion_study_flow(profile: str | None = None, params: str = "params.yaml") -> dict[str, Any]:
    """Every GAN and every arm of ``lesion_study``; see the module docstring."""
    start = time.perf_counter()
    cfg = load_config(params, profile)
    study = cfg.lesion_study
    sha = prepare(cfg)
    with tracking.start_run(cfg, lesions.STAGE, run_name=f"lesion-study-{cfg.profile}") as parent:
        tracking.tag_lineage(parent, data_manifest_sha256=sha)
        gans = [train_gan(cfg, kind, parent.run_id) for kind in study.gan_kinds]
        real_features(cfg)
        arms = lesions.plan_arms(cfg)
        first = (arms[0], study.seeds[0])
        results = [run_arm(cfg, *first, None, parent.run_id)]
        sets = {g["kind"]: evaluate_gan(cfg, g, parent.run_id, data_sha256=sha) for g in gans}
        results += [
            run_arm(cfg, arm, seed, sets, parent.run_id)
            for arm in arms
            for seed in study.seeds
            if (arm, seed) != first
        ]
        summary = lesions.finish(cfg, sets, results, parent)
        seconds = time.perf_counter() - start
        parent.metric("wall_seconds", seconds)
        parent.dict(summary, "lesion_study.json")
    return {**summary, "parent_run_id": parent.run_id, "seconds": round(seconds, 1)}


def lesion_study(profile: str | None = None, params: str = "params.yaml") -> dict[str, Any]:
    """Run the study flow (what ``synthmed experiment lesions`` calls)."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    return lesion_study_flow(profile=profile, params=params)


def print_table(result: dict[str, Any]) -> None:
    """The arm table (mean ± std over seeds), the generator table and where the report is."""
    from rich.console import Console
    from rich.table import Table

    from components.experiments.report import arm_table, gan_table

    # The terminal gets the generator table's headline columns; the report has all of them.
    gan_header, gan_cells = gan_table(result["sets"])
    keep = [gan_header.index(c) for c in TERMINAL_GAN_COLUMNS]
    console = Console()
    for title, header, cells in (
        (
            f"Lesion study ({result['profile']}): test metrics, mean ± std over seeds",
            *arm_table(result["rows"]),
        ),
        (
            "Generators (full table with PIQA metrics in the report)",
            [gan_header[i] for i in keep],
            [[row[i] for i in keep] for row in gan_cells],
        ),
    ):
        table = Table(title=title)
        for i, name in enumerate(header):
            table.add_column(name, justify="left" if i == 0 else "right")
        for row in cells:
            table.add_row(*row)
        console.print(table)
    console.print("* trained on a set that failed memorization (not published)")
    console.print(f"report: {result['report']}  ({result.get('seconds', 0):.0f} s)")
