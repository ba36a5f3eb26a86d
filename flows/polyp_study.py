"""The polyp study as a Prefect flow: thin sequencing of ``components.experiments.polyps``.

SinGAN-Seg trains one model per pool image. Images go to mapped tasks in groups of
``singan.models_at_once`` (K models train together in one task); a task that still fails after
its retries does not fail the flow: its images are mapped again one per task, so a single bad
image is retried alone and only it is dropped. The thread pool's ``max_workers``
(``polyp_study.device_workers``) is the device's concurrency limit.

Everything else (synthesis, style transfer, versioning, the segmentation arms, promotion, the
report) runs in the flow's own thread, inside one MLflow parent run with a child run per arm and
fold (MLflow's active-run stack is per thread, so nested runs must start there).
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

from prefect import flow, get_run_logger, task, unmapped
from prefect.cache_policies import NO_CACHE
from prefect.task_runners import ThreadPoolTaskRunner

from components import tracking
from components.config import Config, PromoteConfig, load_config
from components.errors import DataError
from components.experiments import polyps
from components.generators.base import ImageSet
from components.runtime import make_runtime, seed_everything

STAGE = "polyp-study"


@task(cache_policy=NO_CACHE)
def prepare_data(cfg: Config) -> polyps.StudyData:
    """The study's images; ingest and validate first when their outputs are missing."""
    from components import stages

    if not (stages.validated_dir(cfg, "polyps") / "dataset.csv").is_file():
        stages.ingest(cfg)
        stages.validate(cfg)
    return polyps.load_study_data(cfg)


@task(cache_policy=NO_CACHE, task_run_name="singan-{ids[0]}+{n_more}")
def fit_singan(
    cfg: Config, data: ImageSet, ids: list[str], n_more: int, workdir: str, run_id: str
) -> list[str]:
    """Train (or resume from checkpoints) the models of ``ids``; returns them."""
    position = {image_id: i for i, image_id in enumerate(data.ids or [])}
    runtime = make_runtime(cfg.device, cfg.precision, cfg.channels_last)
    subset = data.subset([position[i] for i in ids])
    polyps.fit_singan(cfg, subset, Path(workdir), runtime, tracking.MlflowReporter(run_id))
    return ids


def _map_singan(
    cfg: Config, data: ImageSet, groups: list[list[str]], workdir: Path, run_id: str
) -> tuple[list[str], list[str]]:
    """Run ``groups`` as mapped tasks; returns (trained ids, ids of failed groups)."""
    futures = fit_singan.with_options(retries=cfg.polyp_study.task_retries).map(
        unmapped(cfg),
        unmapped(data),
        groups,
        [len(g) - 1 for g in groups],
        unmapped(str(workdir)),
        unmapped(run_id),
    )
    futures.wait()
    done, failed = [], []
    for group, future in zip(groups, futures, strict=True):
        (done if future.state.is_completed() else failed).extend(group)
    return done, failed


def train_singan(cfg: Config, data: polyps.StudyData, run_id: str) -> tuple[list[str], list[str]]:
    """Every pool image's model: K-at-once groups, then the failed groups' images one by one."""
    ids = data.pool.ids or []
    workdir = polyps.singan_workdir(cfg)
    groups = polyps.singan_groups(ids, cfg.singan.models_at_once)
    done, failed = _map_singan(cfg, data.pool, groups, workdir, run_id)
    if failed:
        get_run_logger().warning(
            "SinGAN-Seg: %d images failed in groups; retrying alone", len(failed)
        )
        alone, failed = _map_singan(cfg, data.pool, [[i] for i in failed], workdir, run_id)
        done += alone
    if not done:
        raise DataError("polyp study: SinGAN-Seg training failed for every image")
    return [i for i in ids if i in set(done)], failed


@task(cache_policy=NO_CACHE)
def generate_sets(cfg: Config, trained: list[str]) -> tuple[ImageSet, ImageSet, str]:
    """SinGAN-Seg samples and their style-transferred copies (and the style method used)."""
    runtime = make_runtime(cfg.device, cfg.precision, cfg.channels_last)
    gen = polyps.load_singan(cfg, trained, polyps.singan_workdir(cfg), runtime)
    samples = polyps.synthesize(gen, cfg)
    styled, method = polyps.stylize(samples, gen, cfg, runtime)
    return samples, styled, method


@task(cache_policy=NO_CACHE)
def version_sets(
    cfg: Config, data: polyps.StudyData, sets: dict[str, ImageSet], style_method: str
) -> dict[str, Any]:
    """Set report (mask statistics, memorization) into set.json; write and publish each set."""
    logger = get_run_logger()
    out: dict[str, Any] = {}
    for variant, samples in sets.items():
        report, mem = polyps.set_report(samples, data, cfg)
        meta = {
            **report,
            "generator_kind": polyps.KIND,
            "source_manifest_sha256": data.manifest_sha256,
            "seed": cfg.seed,
            "style_method": style_method if variant.endswith("style") else None,
            "singan_config_digest": polyps.singan_workdir(cfg).name,
        }
        if mem.passed:
            out[variant] = {**report, **polyps.version_set(samples, variant, cfg, meta, Path.cwd())}
        else:
            # As for lesion sets: a set that copies its training images is not published.
            logger.warning("%s: memorization check failed; not published", variant)
            out[variant] = {**report, "name": None, "published": False}
    return out


def _child_run(cfg: Config) -> polyps.ChildRun:
    def start(name: str, tags: dict[str, str]):  # type: ignore[no-untyped-def]
        return tracking.start_run(
            cfg, STAGE, run_name=name, nested=True, tags=tags, log_config=False
        )

    return start


@task(cache_policy=NO_CACHE)
def evaluate(
    cfg: Config, data: polyps.StudyData, synthetic: ImageSet, styled: ImageSet
) -> list[polyps.ArmResult]:
    """Every arm on every fold, one child MLflow run each."""
    seed_everything(cfg.seed)
    runtime = make_runtime(cfg.device, cfg.precision, cfg.channels_last)
    folds = polyps.make_folds(data.pool_table, data.test.ids or [], cfg.polyp_study.folds, cfg.seed)
    return polyps.evaluate_study(data, folds, synthetic, styled, cfg, runtime, _child_run(cfg))


@task(cache_policy=NO_CACHE)
def promote_best(cfg: Config, results: list[polyps.ArmResult], lineage: dict[str, str]) -> dict:
    """Log the best arm's kept model to the parent run and offer it to the registry."""
    from components.registry import log_classifier, promote
    from components.segmenter import build_segmenter

    study = cfg.polyp_study
    best = polyps.best_model(results, study.promote_metric)
    model = build_segmenter(study)
    model.load_state_dict(best.state_dict)
    model_uri = log_classifier(
        model.eval(), extra_packages=("segmentation-models-pytorch", "timm")
    )
    promote_cfg = PromoteConfig(
        registered_model=study.registered_model,
        metric=study.promote_metric,
        greater_is_better=True,
        margin=study.promote_margin,
    )
    tags = {
        **lineage,
        "synthmed.arm": best.arm,
        "synthmed.fold": str(best.fold),
        "synthmed.arm_run_id": best.run_id or "",
        "synthmed.profile": cfg.profile,
        "git.commit": tracking.git_commit(),
        "prefect.flow_run_id": tracking.flow_run_id() or "none",
    }
    result = promote(model_uri, best.test, promote_cfg, tags)
    return {
        "registered_model": result.name,
        "version": result.version,
        "arm": best.arm,
        "fold": best.fold,
        "promoted": result.promoted,
        "reason": result.reason,
    }


@flow(name="synthmed-polyp-study", log_prints=True)
def polyp_study_flow(profile: str | None = None, params: str = "params.yaml") -> dict[str, Any]:
    """The whole study; see the module docstring."""
    start = time.perf_counter()
    cfg = load_config(params, profile)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    data = prepare_data(cfg)
    with tracking.start_run(cfg, STAGE, run_name=f"polyp-study-{cfg.profile}") as parent:
        tracking.tag_lineage(parent, data_manifest_sha256=data.manifest_sha256)
        with tracking.start_run(
            cfg, STAGE, run_name="singan-seg", nested=True, log_config=False
        ) as singan_run:
            t0 = time.perf_counter()
            trained, failed = train_singan(cfg, data, singan_run.run_id)
            singan_run.metric("singan.models", len(trained))
            singan_run.metric("singan.failed", len(failed))
            singan_seconds = time.perf_counter() - t0
        synthetic, styled, method = generate_sets(cfg, trained)
        sets = version_sets(
            cfg, data, {polyps.KIND: synthetic, f"{polyps.KIND}-style": styled}, method
        )
        names = [s["name"] for s in sets.values() if s.get("name")]
        tracking.tag_lineage(parent, synthetic_set_version=",".join(names) or None)
        results = evaluate(cfg, data, synthetic, styled)
        rows = polyps.summarize(results)
        lineage = {
            "data.manifest_sha256": data.manifest_sha256,
            "synthetic.set_version": ",".join(names) or "unpublished",
        }
        promotion = promote_best(cfg, results, lineage)
        facts = {
            "sets": sets,
            "style_method": method,
            "singan_failed_images": failed,
            "singan_seconds": round(singan_seconds, 1),
            "promotion": promotion,
            "pool_images": len(data.pool),
            "test_images": len(data.test),
        }
        report_dir = polyps.write_report(
            cfg.stage_dir("polyp_study") / "report",
            rows,
            {
                "real (pool)": data.pool,
                "SinGAN-Seg samples": synthetic,
                f"style-transferred ({method})": styled,
            },
            facts,
            cfg,
        )
        for name in ("report.md", "report.html", "iou_vs_n.png"):
            parent.artifact(report_dir / name, "report")
        parent.figure(polyps.plot_iou_vs_n(rows), "plots/iou_vs_n.png")
        parent.dict({"rows": rows, **facts}, "polyp_study.json")
        seconds = time.perf_counter() - start
        parent.metric("wall_seconds", seconds)
    return {
        "profile": cfg.profile,
        "rows": rows,
        "report": str(report_dir / "report.html"),
        "parent_run_id": parent.run_id,
        "seconds": round(seconds, 1),
        **facts,
    }


def polyp_study(profile: str | None = None, params: str = "params.yaml") -> dict[str, Any]:
    """Run the flow with the device's concurrency limit from the config."""
    cfg = load_config(params, profile)
    runner = ThreadPoolTaskRunner(max_workers=cfg.polyp_study.device_workers)
    return polyp_study_flow.with_options(task_runner=runner)(profile=profile, params=params)


def print_table(result: dict[str, Any]) -> None:
    """The results table (mean ± std over folds) and where the report is."""
    from rich.console import Console
    from rich.table import Table

    from components.segmenter import METRICS

    table = Table(title=f"Polyp study ({result['profile']}): test metrics, mean ± std over folds")
    table.add_column("arm", no_wrap=True)
    table.add_column("train", justify="right")
    for name in METRICS:
        table.add_column(name, justify="right", no_wrap=True)
    for row in result["rows"]:
        cells = (f"{row[f'{m}_mean']:.3f}±{row[f'{m}_std']:.3f}" for m in METRICS)
        table.add_row(row["arm"], f"{row['train_images']:.0f}", *cells)
    # Wide enough for every column: rich would otherwise squeeze the numbers into ellipses.
    console = Console(width=max(Console().width, 130))
    console.print(table)
    promo = result["promotion"]
    console.print(
        f"best: {promo['arm']} -> {promo['registered_model']} v{promo['version']} "
        f"({promo['reason']})"
    )
    console.print(f"report: {result['report']}  ({result['seconds']:.0f} s)")
