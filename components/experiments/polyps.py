"""The SinGAN-Seg polyp study: does synthetic polyp data help a UNet++ segmenter?

The validated polyp images split into a *pool* (the ``train`` + ``val`` splits: what folds divide
and SinGAN-Seg learns from) and the held-out ``test`` split, which no generator, fold or model
selection ever sees: it only scores the final models.

The study is a :class:`~components.plan.Plan` (:func:`build_plan`):

- ``singan-<first id>+<n>``: one SinGAN-Seg model per pool image, K images per step (the
  models train together); a group that fails is retried image by image inside the step, and
  only an image that fails alone is dropped;
- ``sets``: ``synthetic_per_real`` samples per model and their style-transferred copies; mask
  statistics and the memorization check go into each set's ``set.json``; a passing set is
  published with DVC, a failing one held back (its arms still run, flagged);
- ``arm-<arm>-fold<k>``: a UNet++ trained on one arm's set of one fold (the fold's val part
  picks the epoch), scored on the test split. A fold's synthetic data comes only from the models
  of that fold's training images, so val images never leak in through their samples. Arms read
  the versioned sets from disk, as a colleague who pulled them would;
- ``report``: mean and sample std over folds, the best arm's model promoted in the registry
  (its own child run), the small-data sweep plot, a markdown + self-contained HTML report.

Arms: ``real``, ``synthetic``, ``synthetic+style`` (the fold's full sets), and per sweep size n
``real-n<n>`` (n real training images) against ``real+synthetic-n<n>`` (the same n images plus
their samples).
"""

from __future__ import annotations

import dataclasses
import fcntl
import io
import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from components import plan as plans
from components.config import Config, MetricsConfig, PolypStudyConfig, config_digest
from components.data.store import ingest_dir, split_ref, validated_dir, validated_sha256
from components.errors import DataError
from components.experiments.reporting import STD_NOTE, Report, aggregate, fig_png, mean_pm_std
from components.experiments.study import StudyContext, finish, publish_or_hold
from components.imageset import RESIZE_KERNEL, ImageSet, concat, preview, resize
from components.data.polyps import _bfs_components, count_components, mask_statistics  # noqa: F401
from components.io import atomic_write_bytes
from components.metrics.memorization import pixel_features
from components.segmenter import METRICS

if TYPE_CHECKING:
    from matplotlib.figure import Figure

    from components.generators.singan_seg.model import SinganSeg
    from components.metrics.memorization import MemorizationReport

STAGE = "polyp-study"
KIND = "singan-seg"
VARIANTS = {KIND: "SinGAN-Seg samples", f"{KIND}-style": "style-transferred"}
"""The synthetic sets the study makes: set kind -> what it is."""
FEATURES = "pixels"
"""Memorization feature space: RGB downsampled to ``memorization_pixels`` a side, in [0, 1]."""


def study_dir(cfg: Config) -> Path:
    return cfg.out_dir / "study" / "polyps"


# --------------------------------------------------------------------------------------------
# data and folds


@dataclass(frozen=True)
class StudyData:
    """The pool (train + val splits) with its table, and the held-out test split."""

    pool: ImageSet
    pool_table: pd.DataFrame
    test: ImageSet
    manifest_sha256: str


def load_study_data(cfg: Config) -> StudyData:
    """The validated polyp images at ``polyp_study.image_size``.

    Raises:
        DataError: validate has not run, the size was not ingested, or a split is empty.
    """
    from components.data.manifest import load_cache
    from components.data.store import validated_table

    table = validated_table(cfg, "polyps")
    pool_table = table[table["split"].isin(["train", "val"])].reset_index(drop=True)
    test_ids = table.loc[table["split"] == "test", "image_id"].tolist()
    if pool_table.empty or not test_ids:
        raise DataError(f"{validated_dir(cfg, 'polyps') / 'dataset.csv'}: needs train/val and test polyp images")
    size = cfg.polyp_study.image_size
    source = ingest_dir(cfg, "polyps")
    return StudyData(
        pool=load_cache(source, size, pool_table["image_id"].tolist()),
        pool_table=pool_table,
        test=load_cache(source, size, test_ids),
        manifest_sha256=validated_sha256(cfg, "polyps"),
    )


@dataclass(frozen=True)
class Fold:
    """Positions (into the pool) of one fold's training and validation images."""

    index: int
    train: np.ndarray
    val: np.ndarray


def make_folds(pool_table: pd.DataFrame, test_ids: list[str], k: int, seed: int) -> list[Fold]:
    """``k`` folds of the pool; groups (patient, lesion) never straddle train and val.

    Raises:
        DataError: a test image is also in the pool (it would be trained on), or too few images.
    """
    from components.data.splits import kfold

    leaked = sorted(set(pool_table["image_id"]) & set(test_ids))
    if leaked:
        raise DataError(
            f"polyp study: {len(leaked)} test images are in the pool (e.g. {leaked[0]})"
        )
    return [Fold(i, tr, va) for i, (tr, va) in enumerate(kfold(pool_table, k, seed, stratify=None))]


def folds_of(cfg: Config, data: StudyData) -> list[Fold]:
    return make_folds(data.pool_table, data.test.ids or [], cfg.polyp_study.folds, cfg.seed)


# --------------------------------------------------------------------------------------------
# SinGAN-Seg


def singan_workdir(cfg: Config) -> Path:
    """Checkpoint folder named by the settings, so a resume never mixes SinGAN configs."""
    return study_dir(cfg) / f"singan-{config_digest(cfg, 'singan', 'data')}"


def singan_groups(ids: list[str], k: int) -> list[list[str]]:
    """``ids`` in chunks of ``k``: one K-at-once training step each."""
    return [ids[i : i + k] for i in range(0, len(ids), k)]


def fit_singan(
    cfg: Config, data: ImageSet, workdir: Path, runtime: Any, reporter: Any
) -> dict[str, float]:
    """Train (or resume) the SinGAN-Seg models of ``data``'s images, K at once."""
    from components.generators.singan_seg.model import SinganSeg

    return SinganSeg.build(cfg.singan, cfg.seed, runtime).fit(data, workdir, reporter)


def train_group(ctx: StudyContext, ids: list[str]) -> dict[str, Any]:
    """Train (or resume from checkpoints) the models of ``ids`` together.

    When the group fails, each image is retried alone, so one bad image costs only itself;
    returns the ``trained`` and ``failed`` ids. An interrupt is never swallowed.
    """
    import logging

    cfg = ctx.cfg
    data = load_study_data(cfg).pool
    position = {image_id: i for i, image_id in enumerate(data.ids or [])}
    workdir, start = singan_workdir(cfg), time.perf_counter()
    trained, failed = [], []
    with ctx.child(f"singan-{ids[0]}+{len(ids) - 1}", {"synthmed.generator": KIND}) as rep:
        rep.input(split_ref(cfg, "polyps", ["train", "val"]), "training")
        try:
            fit_singan(cfg, data.subset([position[i] for i in ids]), workdir, ctx.runtime, rep)
            trained = list(ids)
        except Exception as exc:  # noqa: BLE001 (any failure of the group: retry alone)
            if len(ids) == 1:
                raise
            logging.getLogger(__name__).warning(
                "SinGAN-Seg group %s failed (%s); retrying its images alone", ids[0], exc
            )
            for image_id in ids:
                try:
                    fit_singan(cfg, data.subset([position[image_id]]), workdir, ctx.runtime, rep)
                    trained.append(image_id)
                except Exception:  # noqa: BLE001
                    failed.append(image_id)
        rep.metrics({"singan.models": len(trained), "singan.failed": len(failed)})
    return {"trained": trained, "failed": failed, "seconds": time.perf_counter() - start}


def load_singan(cfg: Config, ids: list[str], workdir: Path, runtime: Any) -> SinganSeg:
    """One generator holding the trained models of ``ids`` (written by :func:`fit_singan`)."""
    from components.generators.singan_seg.checkpoint import load_model
    from components.generators.singan_seg.model import CHECKPOINT, SinganSeg

    gen = SinganSeg.build(cfg.singan, cfg.seed, runtime)
    gen.models = [load_model(workdir / i / CHECKPOINT) for i in ids]
    unfinished = [m.image_id for m in gen.models if not m.complete]
    if unfinished:
        raise DataError(f"{workdir}: SinGAN-Seg models not fully trained: {unfinished[:3]}")
    return gen


def synthesize(gen: SinganSeg, cfg: Config) -> ImageSet:
    """``synthetic_per_real`` samples of every model, at the study's image size."""
    samples = gen.sample(len(gen.models) * cfg.polyp_study.synthetic_per_real, seed=cfg.seed)
    return resize(samples, cfg.polyp_study.image_size)


def stylize(samples: ImageSet, gen: SinganSeg, cfg: Config, runtime: Any) -> tuple[ImageSet, str]:
    """Each sample restyled toward the real image its model learned; returns (set, method)."""
    from components.style_transfer import stylize_set

    return stylize_set(samples, gen.style_images(samples), cfg.style_transfer, runtime)


def source_ids(samples: ImageSet) -> list[str]:
    """The real image each sample came from."""
    from components.generators.singan_seg.model import source_id

    return [source_id(sid) for sid in samples.ids or []]


def samples_of(samples: ImageSet, image_ids: list[str] | np.ndarray) -> ImageSet:
    """The samples whose model was trained on one of ``image_ids``."""
    wanted = set(image_ids)
    return samples.subset([i for i, s in enumerate(source_ids(samples)) if s in wanted])


# --------------------------------------------------------------------------------------------
# mask statistics and memorization


def memorization_check(
    synthetic: ImageSet,
    train: ImageSet,
    test: ImageSet,
    study: PolypStudyConfig,
    cfg: MetricsConfig,
) -> MemorizationReport:
    """Nearest-training distances of samples vs those of real test images (pixel features)."""
    from components.metrics.memorization import memorization

    p = study.memorization_pixels
    return memorization(
        pixel_features(synthetic, p), pixel_features(train, p), pixel_features(test, p), cfg
    )


def set_report(
    samples: ImageSet, data: StudyData, cfg: Config
) -> tuple[dict[str, Any], MemorizationReport]:
    """What goes into a synthetic set's ``set.json``: mask statistics and memorization."""
    assert samples.masks is not None and data.pool.masks is not None
    mem = memorization_check(samples, data.pool, data.test, cfg.polyp_study, cfg.metrics)
    report = {
        "mask_stats": {
            "real": mask_statistics(data.pool.masks),
            "synthetic": mask_statistics(samples.masks),
        },
        "memorization": {"features": FEATURES, **mem.as_metrics(prefix="")},
    }
    return report, mem


def make_sets(ctx: StudyContext, groups: list[dict[str, Any]]) -> dict[str, Any]:
    """Sample every trained model, restyle the samples, judge and publish (or hold) both sets.

    Returns ``{"sets": {set kind: record}, "style_method", "trained", "failed"}``; each record
    has the set's ``name``, ``set_dir``, ``published``, DVC ``md5``, mask statistics and
    memorization.
    """
    cfg = ctx.cfg
    trained = [i for g in groups for i in g["trained"]]
    failed = [i for g in groups for i in g["failed"]]
    if not trained:
        raise DataError("polyp study: SinGAN-Seg training failed for every image")
    data = load_study_data(cfg)
    gen = load_singan(cfg, trained, singan_workdir(cfg), ctx.runtime)
    samples = synthesize(gen, cfg)
    styled, method = stylize(samples, gen, cfg, ctx.runtime)
    records: dict[str, Any] = {}
    with ctx.child("sets", {"synthmed.generator": KIND}) as rep:
        registered = register_singan(ctx, gen, data.manifest_sha256, len(trained), rep.run_id)
        for kind, variant in ((KIND, samples), (f"{KIND}-style", styled)):
            facts, mem = set_report(variant, data, cfg)
            meta = {
                **facts,
                "set_kind": kind,
                "generator_kind": KIND,
                "generator_registered_model": registered.get("registered_model"),
                "generator_model_version": registered.get("model_version"),
                "source_manifest_sha256": data.manifest_sha256,
                "seed": cfg.seed,
                "style_method": method if kind.endswith("style") else None,
                "singan_config_digest": singan_workdir(cfg).name,
            }
            card = set_card(ctx, variant, data, mem, registered, method if kind.endswith("style") else None)
            records[kind] = publish_or_hold(
                variant, mem.passed, cfg, Path(ctx.root), meta, study_dir(cfg) / "unpublished", card
            )
            rep.metrics({f"{kind}.{k}": v for k, v in mem.as_metrics(prefix="memorization_").items()})
            rep.image(f"{kind}_samples", preview(variant, 16))
        if registered and records[KIND]["card_tags"]:  # the generator's own samples' card
            from components.registry import tag_model_version

            tag_model_version(registered["registered_model"], registered["model_version"], records[KIND]["card_tags"])
        rep.tag("synthetic.set_version", ",".join(r["name"] for r in records.values() if r["published"]) or None)
    return {"sets": records, "style_method": method, "trained": trained, "failed": failed}


def register_singan(
    ctx: StudyContext, gen: SinganSeg, data_hash: str, n_models: int, run_id: str | None
) -> dict[str, Any]:
    """Register the trained SinGAN-Seg models (one generator, one model per pool image) so that
    ``synthmed models`` lists it and ``synthmed sample`` draws from it; {} when not tracked."""
    from components.registry import register_generator
    from components.tracking import git_commit

    if run_id is None:
        return {}
    cfg = ctx.cfg
    weights = study_dir(cfg) / "singan-seg.pt"
    gen.save(weights)
    size = int(gen.sample(1, seed=cfg.seed).images.shape[1])
    name = cfg.singan.registered_model.format(kind=KIND, image_size=size)
    version = register_generator(
        run_id, weights, KIND, size, name,
        tags={"git.commit": git_commit(), "data.manifest_sha256": data_hash,
              "config.digest": singan_workdir(cfg).name.removeprefix("singan-")},
        description=f"SinGAN-Seg: {n_models} single-image models (RGB + mask), one per polyp "
        f"image of the pool (train+val splits of the validated polyp table, sha256 "
        f"{data_hash[:12]}), {cfg.singan.niter} iterations per scale.",
    )  # fmt: skip
    return {"registered_model": name, "model_version": str(version)}


def set_card(
    ctx: StudyContext,
    samples: ImageSet,
    data: StudyData,
    mem: MemorizationReport,
    registered: dict[str, Any],
    style_method: str | None,
) -> Any:
    """The card facts of one of the study's sets; the memorization verdict is the study's own
    (the one that decides publication), on its pixel features."""
    from components import cards

    cfg = ctx.cfg
    weights = []
    if style_method == "gatys-vgg19":
        weights.append(("VGG19 for style transfer (torchvision, ImageNet-trained)",
                        "torchvision code BSD-3-Clause; ImageNet-trained weights: check ImageNet's terms"))  # fmt: skip
    generator = cards.GeneratorFacts(
        KIND, registered.get("registered_model"), registered.get("model_version"),
        singan_workdir(cfg).name.removeprefix("singan-"), cfg.seed, tuple(weights),
    )  # fmt: skip
    return cards.card_facts(
        cfg, "polyps", generator, samples, data.pool, data.test, ctx.runtime,
        train_splits=("train", "val"), extractor=ctx.extractor, memorization=mem,
        memorization_space=f"{FEATURES}{cfg.polyp_study.memorization_pixels}",
        extra={"style_method": style_method} if style_method else None,
    )  # fmt: skip


# --------------------------------------------------------------------------------------------
# the segmentation arms


def arm_sets(
    data: StudyData,
    fold: Fold,
    synthetic: ImageSet,
    styled: ImageSet,
    cfg: PolypStudyConfig,
    seed: int,
) -> dict[str, ImageSet]:
    """Every arm's training set for one fold (sweep sizes above the fold's size are skipped)."""
    train = data.pool.subset(fold.train)
    ids = train.ids or []
    full = {
        "real": train,
        "synthetic": samples_of(synthetic, ids),
        "synthetic+style": samples_of(styled, ids),
    }
    sets = {arm: full[arm] for arm in cfg.arms}
    rng = np.random.default_rng([seed, fold.index])
    order = rng.permutation(len(train))
    for n in cfg.sweep_sizes:
        if n > len(train):
            continue
        # Nested: the n=4 images include the n=2 ones, so the sweep varies size alone.
        real_n = train.subset(np.sort(order[:n]))
        sets[f"real-n{n}"] = real_n
        sets[f"real+synthetic-n{n}"] = concat(real_n, samples_of(synthetic, real_n.ids or []))
    return sets


def arm_names(cfg: PolypStudyConfig, fold_sizes: list[int]) -> list[str]:
    """The arms the study runs, in report order: the full sets, then the sweep pairs that fit
    in at least one fold."""
    names = list(cfg.arms)
    for n in cfg.sweep_sizes:
        if n <= max(fold_sizes):
            names += [f"real-n{n}", f"real+synthetic-n{n}"]
    return names


def _models_dir(ctx: StudyContext) -> Path:
    return study_dir(ctx.cfg) / "models" / (ctx.parent_run_id or "local")


def keep_if_best(folder: Path, arm: str, fold: int, val_iou: float, state: dict[str, Any]) -> None:
    """Keep ``state`` as ``arm``'s model when its val IoU is the arm's best so far (ties go to
    the lower fold, so the choice does not depend on the order folds finish in)."""
    import torch

    folder.mkdir(parents=True, exist_ok=True)
    with open(folder / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        info_path = folder / f"{arm}.json"
        if info_path.is_file():
            old = json.loads(info_path.read_text())
            if (val_iou, -fold) <= (old["val_iou"], -old["fold"]):
                return
        buf = io.BytesIO()
        torch.save(state, buf)
        atomic_write_bytes(folder / f"{arm}.pt", buf.getvalue())
        atomic_write_bytes(info_path, json.dumps({"fold": fold, "val_iou": val_iou}).encode())


def uses_synthetic(arm: str) -> bool:
    """Whether ``arm`` trains on synthetic images (``real`` and ``real-n<n>`` do not)."""
    return arm != "real" and not arm.startswith("real-n")


def log_fold_inputs(rep: Any, cfg: Config, arm: str, fold: int, sets: dict[str, Any]) -> None:
    """The data one fold's arm reads, as MLflow inputs: the pool (this fold's part of it), the
    set(s) it draws from, and the test split."""
    from components.synthetic import set_ref
    from components.tracking import log_inputs

    pool = split_ref(cfg, "polyps", ["train", "val"])
    pool = dataclasses.replace(pool, tags={**pool.tags, "synthmed.fold": str(fold)})
    inputs = [(pool, "training")]
    if uses_synthetic(arm):
        kinds = [f"{KIND}-style"] if arm == "synthetic+style" else [KIND]
        inputs += [(set_ref(Path(sets["sets"][k]["set_dir"]), sets["sets"][k].get("md5")), "training")
                   for k in kinds]  # fmt: skip
    log_inputs(rep, [*inputs, (split_ref(cfg, "polyps", "test"), "testing")])


def fold_arm(ctx: StudyContext, fold: int, arm: str, sets: dict[str, Any]) -> dict[str, Any]:
    """Train and test one arm on one fold; its model is kept if it is the arm's best so far."""
    from components.segmenter import evaluate_segmenter, train_segmenter
    from components.synthetic import read_set

    cfg, study = ctx.cfg, ctx.cfg.polyp_study
    data = load_study_data(cfg)
    this = folds_of(cfg, data)[fold]
    synthetic, styled = (resize(read_set(Path(sets["sets"][k]["set_dir"])), study.image_size) for k in VARIANTS)
    train = arm_sets(data, this, synthetic, styled, study, cfg.seed)[arm]
    if len(train) == 0:
        raise DataError(f"polyp study: arm '{arm}' has no training images in fold {fold}")
    flagged = any(not r["published"] for r in sets["sets"].values()) and uses_synthetic(arm)
    tags = {"synthmed.arm": arm, "synthmed.fold": fold, "synthmed.flagged": flagged}
    with ctx.child(f"{arm}-fold{fold}", tags) as rep:
        log_fold_inputs(rep, cfg, arm, fold, sets)
        fitted = train_segmenter(train, data.pool.subset(this.val), study, ctx.runtime, rep, seed=cfg.seed + fold)
        test = evaluate_segmenter(fitted.model, data.test, study, ctx.runtime)
        rep.metrics({f"test.{k}": v for k, v in test.items()})
        rep.metric("train_images", len(train))
        run_id = rep.run_id
    val_iou = float(fitted.best["val_iou"])
    keep_if_best(_models_dir(ctx), arm, fold, val_iou, fitted.model.state_dict())
    return {"arm": arm, "fold": fold, "train_images": len(train), "best_epoch": fitted.best_epoch,
            "val_iou": val_iou, "metrics": test, "run_id": run_id, "flagged": flagged}  # fmt: skip


def summarize(results: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One row per arm: mean and sample std over folds of every test metric, in arm order."""
    rows = aggregate(results, METRICS, repeats="folds")
    for row in rows:
        row["train_images"] = float(np.mean([r["train_images"] for r in results if r["arm"] == row["arm"]]))
    return rows


def promote_best(ctx: StudyContext, rows: list[dict[str, Any]], lineage: dict[str, str]) -> dict[str, Any]:
    """Offer the best arm's kept model (best mean test metric; of its folds, the best val IoU)
    to the registry, in its own child run that records what was compared and decided."""
    import torch

    from components.registry import describe, log_model, metrics_text, promote
    from components.segmenter import build_segmenter
    from components.tracking import flow_run_id, git_commit

    study = ctx.cfg.polyp_study
    metric = study.promote.metric
    best = max(rows, key=lambda r: r[f"{metric}_mean"])
    folder = _models_dir(ctx)
    kept = json.loads((folder / f"{best['arm']}.json").read_text())
    model = build_segmenter(study)
    model.load_state_dict(torch.load(folder / f"{best['arm']}.pt", map_location="cpu", weights_only=True))
    compared = {r["arm"]: r[f"{metric}_mean"] for r in rows}
    with ctx.child("promotion", {"synthmed.arm": best["arm"], "synthmed.fold": kept["fold"]}) as rep:
        rep.dict({"metric": metric, "margin": study.promote.margin, "arms": compared}, "compared.json")
        if rep.run_id is None:
            return {"arm": best["arm"], "fold": kept["fold"], "promoted": False, "reason": "not tracked"}
        example = np.zeros((1, 3, study.image_size, study.image_size), dtype=np.float32)
        uri = log_model(rep.run_id, model.eval(), input_example=example,
                        extra_packages=("segmentation-models-pytorch", "timm"))  # fmt: skip
        if not uses_synthetic(best["arm"]):  # the truth: a real-only model names no set
            lineage = {k: v for k, v in lineage.items() if k != "synthetic.set_version"}
        tags = {**lineage, "synthmed.arm": best["arm"], "synthmed.fold": str(kept["fold"]),
                "synthmed.profile": ctx.cfg.profile, "git.commit": git_commit(),
                "prefect.flow_run_id": flow_run_id() or "none (not run by a flow)"}  # fmt: skip
        test = {m: best[f"{m}_mean"] for m in METRICS}
        result = promote(uri, test, study.promote, tags)
        describe(
            result.name, result.version,
            f"UNet++ ({study.encoder}) polyp segmenter, arm '{best['arm']}' (fold {kept['fold']}, "
            f"{best['train_images']:.0f} training images; "
            + (f"synthetic sets {lineage.get('synthetic.set_version')}" if uses_synthetic(best["arm"]) else "real images only")
            + f"; validated polyp table sha256 {lineage['data.manifest_sha256'][:12]}). Test, mean "
            f"over folds: {metrics_text(test)}. Promotion: {result.reason}.",
            model_text=f"synthmed polyp segmenter: UNet++ ({study.encoder}) at {study.image_size} px "
            "(input N x 3 x S x S float32, ImageNet-normalised; output N x 1 x S x S logits). One "
            "version per polyp study (its best arm); alias 'champion' is the best so far.",
        )  # fmt: skip
        rep.tags({"promotion.promoted": result.promoted, "promotion.version": result.version})
        rep.text(result.reason, "decision.txt")
    return {"registered_model": result.name, "version": result.version, "arm": best["arm"],
            "fold": kept["fold"], "promoted": result.promoted, "reason": result.reason}  # fmt: skip


def sweep_points(rows: list[dict[str, Any]]) -> dict[str, list[tuple[int, float, float]]]:
    """(n, IoU mean, IoU std) per sweep series: ``real`` and ``real+synthetic``."""
    points: dict[str, list[tuple[int, float, float]]] = {"real": [], "real+synthetic": []}
    for row in rows:
        series, _, n = row["arm"].rpartition("-n")
        if series in points and n.isdigit():
            points[series].append((int(n), row["iou_mean"], row["iou_std"]))
    return {k: sorted(v) for k, v in points.items()}


def plot_iou_vs_n(rows: list[dict[str, Any]]) -> Figure:
    """Test IoU (mean +- std over folds) against the number of real training images."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=(5, 3.5), dpi=100)
    ax = fig.add_subplot()
    for series, pts in sweep_points(rows).items():
        if pts:
            n, mean, std = map(np.array, zip(*pts, strict=True))
            ax.errorbar(n, mean, yerr=std, marker="o", capsize=3, label=series)
    ax.set_xlabel("real training images (n)")
    ax.set_ylabel("test IoU")
    ax.set_title("Small-data sweep")
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    return fig


# --------------------------------------------------------------------------------------------
# report



# --------------------------------------------------------------------------------------------
# report


def build_report(rows: list[dict[str, Any]], samples: dict[str, ImageSet], facts: dict[str, Any], cfg: Config) -> Report:
    """The study's report: the results table, the sweep plot, sample pairs, the facts."""
    study = cfg.polyp_study
    report = Report(f"Polyp segmentation study ({cfg.profile})")
    report.paragraph(
        f"UNet++ ({study.encoder}) at {study.image_size} px, {study.folds}-fold cross-validation "
        "on the train+val polyp images, metrics on the held-out test split (micro-averaged, "
        f"threshold {study.threshold}). Memorization features: {FEATURES} "
        f"({study.memorization_pixels}x{study.memorization_pixels} RGB). Synthetic images are "
        f"resized to the segmenter's size: {RESIZE_KERNEL}."
    )
    report.heading("Test metrics (mean ± std over folds)")
    header = ["arm", "train images", *METRICS]
    cells = [[r["arm"] + (" *" if r.get("flagged") else ""), f"{r['train_images']:.0f}",
              *(mean_pm_std(r, m) for m in METRICS)] for r in rows]  # fmt: skip
    report.table(header, cells)
    report.bullets([STD_NOTE.format(over="folds"),
                    "* = trained on a set that failed the memorization check (not published)."])  # fmt: skip
    report.heading("IoU vs number of real images")
    report.image("iou_vs_n.png", fig_png(plot_iou_vs_n(rows)), "IoU vs n")
    report.heading("Sample image/mask pairs (mask outlines in green)")
    for i, (title, data) in enumerate(samples.items()):
        if len(data):
            from components.imageset import png_bytes

            report.image(f"samples_{i}.png", png_bytes(preview(data, study.report_samples)), title)
    report.heading("Synthetic sets, mask statistics, memorization, promotion")
    report.facts(facts)
    return report


def report(ctx: StudyContext, sets: dict[str, Any], results: list[dict[str, Any]]) -> dict[str, Any]:
    """Summarize over folds, promote the best arm, write the report, log to the parent run."""
    import shutil

    from components.data.store import load_split
    from components.synthetic import read_set

    cfg = ctx.cfg
    rows = summarize(results)
    lineage = {
        "data.manifest_sha256": validated_sha256(cfg, "polyps"),
        "synthetic.set_version": ",".join(r["name"] for r in sets["sets"].values() if r["published"])
        or "unpublished",
    }
    promotion = promote_best(ctx, rows, lineage)
    shutil.rmtree(_models_dir(ctx), ignore_errors=True)  # the promoted one is in the registry
    facts = {
        "sets": sets["sets"],
        "style_method": sets["style_method"],
        "singan_failed_images": sets["failed"],
        "promotion": promotion,
    }
    pool = load_split(cfg, "polyps", ["train", "val"], cfg.polyp_study.image_size)
    samples = {"real (pool)": pool}
    for kind, title in VARIANTS.items():
        samples[f"{title} ({sets['style_method']})" if kind.endswith("style") else title] = read_set(
            Path(sets["sets"][kind]["set_dir"])
        )
    summary = {"profile": cfg.profile, "rows": rows, "results": results, **facts}
    return finish(ctx, build_report(rows, samples, facts, cfg), summary, rows, study_dir(cfg) / "report")


# --------------------------------------------------------------------------------------------
# the plan


def build_plan(ctx: StudyContext) -> plans.Plan:
    """Every step of the study with its inputs named (see the module docstring)."""
    cfg = ctx.cfg
    data = load_study_data(cfg)
    gpu = plans.Resources(cpus=1, gpus=1)
    groups = singan_groups(data.pool.ids or [], cfg.singan.models_at_once)
    group_steps = [f"singan-{g[0]}+{len(g) - 1}" for g in groups]
    steps = [
        plans.Step(name, train_group, {"ctx": ctx, "ids": g}, resources=gpu)
        for name, g in zip(group_steps, groups, strict=True)
    ]
    steps.append(plans.Step("sets", make_sets, {"ctx": ctx}, {"groups": group_steps}, resources=gpu))
    folds = folds_of(cfg, data)
    arm_steps = []
    for arm in arm_names(cfg.polyp_study, [len(f.train) for f in folds]):
        for fold in folds:
            n = arm.rpartition("-n")[2]
            if n.isdigit() and int(n) > len(fold.train):
                continue
            name = f"arm-{arm}-fold{fold.index}"
            steps.append(plans.Step(name, fold_arm, {"ctx": ctx, "fold": fold.index, "arm": arm},
                                    {"sets": "sets"}, resources=gpu))  # fmt: skip
            arm_steps.append(name)
    steps.append(plans.Step("report", report, {"ctx": ctx}, {"sets": "sets", "results": arm_steps},
                            retries=0))  # fmt: skip
    return plans.Plan(STAGE, tuple(steps))


def check_settings(cfg: Config) -> None:
    """Fail before any work when the study's size was not ingested."""
    from components.errors import ConfigError

    if cfg.polyp_study.image_size not in cfg.data.polyps.sizes:
        raise ConfigError(
            f"polyp_study.image_size: {cfg.polyp_study.image_size} px is not ingested "
            f"(data.polyps.sizes: {cfg.data.polyps.sizes})"
        )
    if not cfg.data.polyps.enabled:
        raise ConfigError("data.polyps.enabled: the polyp study needs the polyp data")


def prepare(root: Path, profile: str | None, params: str = "params.yaml") -> tuple[Config, dict[str, str]]:
    """Check the settings and bring the data up to date (DVC); the config and lineage tags."""
    from components.config import load_config
    from components.experiments.study import prepare_data

    cfg = load_config(Path(root) / params, profile)
    check_settings(cfg)
    prepare_data(Path(root), cfg)
    return cfg, {"data.manifest_sha256": validated_sha256(cfg, "polyps")}


def run_study(root: Path = Path("."), profile: str | None = None, params: str = "params.yaml") -> dict[str, Any]:
    """The whole study in this process (see :func:`components.experiments.study.run_local`)."""
    import sys

    from components.experiments.study import run_local

    return run_local(sys.modules[__name__], root, profile, params)
