"""What every study shares: its context, its data preparation, its parent run, its sets.

A study runs in the project (``root``, the current folder): its data comes from the pipeline's
own ``ingest`` and ``validate`` stages, brought up to date by DVC first
(:func:`prepare_data`), so a study never trains on stale data and never re-runs what is current.
Its steps (see :mod:`components.plan`) receive a :class:`StudyContext`: the config as the study
sees it, the root, and the id of the study's parent MLflow run, under which each step opens its
own child run, from any thread or process.
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from components import tracking

if TYPE_CHECKING:
    from torch import nn

    from components.cards import CardFacts
    from components.config import Config
    from components.imageset import ImageSet
    from components.runtime import Runtime


@dataclass(frozen=True)
class StudyContext:
    """What a study step needs besides its own arguments (small and picklable)."""

    cfg: Config
    root: str
    parent_run_id: str | None
    extractor: nn.Module | None = None
    """Replaces the FID Inception network (tests pass a tiny one); None loads Inception."""

    @property
    def runtime(self) -> Runtime:
        from components.runtime import runtime_for

        return runtime_for(self.cfg)

    def child(
        self, name: str, tags: Mapping[str, Any] | None = None
    ) -> contextlib.AbstractContextManager[tracking.Reporter]:
        """A child run of the study's parent run (a null reporter when nothing is tracked)."""
        return tracking.reporter_for(self.parent_run_id).child(name, tags)

    def parent(self) -> tracking.Reporter:
        return tracking.reporter_for(self.parent_run_id)


def prepare_data(root: Path, cfg: Config) -> dict[str, bool]:
    """Bring ``ingest`` and ``validate`` of ``cfg.profile`` up to date, as the pipeline would
    (DVC decides); returns ``{stage: skipped}``."""
    from components.dvcstages import reproduce

    return {stage: reproduce(root, stage, cfg).skipped for stage in ("ingest", "validate")}


@contextlib.contextmanager
def study_run(
    cfg: Config,
    stage: str,
    root: Path,
    tags: Mapping[str, str] | None = None,
    extractor: nn.Module | None = None,
) -> Iterator[StudyContext]:
    """The study's parent MLflow run (config, commit, lineage tags), as a context for steps."""
    with tracking.start_run(cfg, stage, run_name=f"{stage}-{cfg.profile}", tags=tags) as parent:
        yield StudyContext(cfg, str(root), parent.run_id, extractor)


def run_local(
    study: Any, root: Path, profile: str | None, params: str, extractor: nn.Module | None = None
) -> dict[str, Any]:
    """Run a study module (``prepare``, ``build_plan``, ``STAGE``) in this process: data brought
    up to date by DVC, the parent run opened, every step of the plan in order."""
    from components import plan as plans

    cfg, lineage = study.prepare(Path(root), profile, params)
    with study_run(cfg, study.STAGE, Path(root), lineage, extractor) as ctx:
        results = plans.run(study.build_plan(ctx))
    return {**results["report"], "parent_run_id": ctx.parent_run_id}


def metric_safe(name: str) -> str:
    """``name`` with what MLflow refuses in metric names ('+' of ``real+dcgan``) made '_'."""
    return re.sub(r"[^\w\-. :/]", "_", name)


def log_rows(parent: tracking.Reporter, rows: list[dict[str, Any]], by: str = "arm") -> None:
    """Every ``*_mean``/``*_std`` of a results table as parent-run metrics ``<row>.<name>``."""
    for row in rows:
        parent.metrics(
            {
                f"{metric_safe(str(row[by]))}.{key}": value
                for key, value in row.items()
                if key.endswith(("_mean", "_std"))
            }
        )


def finish(
    ctx: StudyContext, report: Any, summary: dict[str, Any], rows: list[dict[str, Any]], out: Path
) -> dict[str, Any]:
    """Write the study's report (with ``results.json``) into ``out``, hand the report files,
    the results table and the summary to the parent run; returns the summary with its path."""
    import json

    paths = report.write(
        out, {"results.json": json.dumps(summary, indent=2, sort_keys=True, default=str)}
    )
    summary = {**summary, "report": str(paths["report.html"])}
    parent = ctx.parent()
    for name, path in paths.items():
        if name != "results.json":
            parent.artifact(path, "report")
    log_rows(parent, rows)
    parent.dict(summary, "study.json")
    return summary


def publish_or_hold(
    samples: ImageSet,
    passed: bool,
    cfg: Config,
    root: Path,
    meta: dict[str, Any],
    held_dir: Path,
    card: CardFacts | None = None,
) -> dict[str, Any]:
    """Write a synthetic set with its dataset card; version it with DVC only when it ``passed``
    memorization.

    A failing set goes to ``held_dir/<name>`` (never added to DVC, never pushed), so its arms
    can still run and be reported, flagged; its card says why it was held. Returns ``meta`` plus
    ``name``, ``set_dir``, ``published``, when published DVC's ``md5``, and ``card_tags`` (the
    card's headline figures, for the generator's registry version).
    """
    from components import cards
    from components.synthetic import content_digest, set_name, write_set
    from components.versioning import publish_set

    size = int(samples.images.shape[1])
    # A variant of one generator's output (e.g. style-transferred) names itself in set_kind.
    kind = meta.get("set_kind") or meta["generator_kind"]
    name = set_name(kind, size, cfg.profile, content_digest(samples))
    meta = {**meta, "name": name}
    target = Path(root) / cfg.versioning.sets_dir / name if passed else held_dir / name
    set_dir = write_set(samples, target, meta)
    card_tags: dict[str, str] = {}
    if card is not None:
        # Before DVC hashes the folder, so `dvc pull` brings the card with the images.
        written = cards.write_card(set_dir, name, samples, card, cfg.cards.grid_images)
        card_tags = cards.headline(written) if passed else {}
    if not passed:
        return {**meta, "set_dir": str(set_dir), "published": False, "md5": None, "card_tags": card_tags}
    version = publish_set(Path(root), set_dir, cfg.versioning, record=meta)
    return {**meta, "set_dir": str(set_dir), "published": True, "md5": version.md5, "card_tags": card_tags}
