"""The lesion GAN study (issue 3): does synthetic data from the GAN zoo help a lesion classifier?

Every GAN kind in ``cfg.lesion_study.gan_kinds`` is trained on the real training split, sampled,
and judged twice: by image metrics (the five PIQA metrics on random pairs, FID/KID on Inception
and on the real-data classifier's features, memorization) and by what its images do for an
EfficientNet trained on them. The arms, each trained once per seed and tested on the same
held-out real test split:

- ``real``: the real training split (its first seed's model also gives the DOMAIN features);
- ``augmented``: the same with flips, rotation and colour jitter;
- ``real+<kind>``: real plus ``evaluate.synthetic_per_real`` synthetic images per real one;
- ``balanced-<kind>``: real plus malignant images of a conditional GAN until the classes are equal;
- ``synthetic-<kind>``: the synthetic set alone.

Class imbalance is the classifier's weighted sampler's business in every arm.

A set whose memorized share exceeds ``metrics.max_memorized_share`` is not published (no DVC,
no push): it is kept under ``build/<profile>/study/lesions/unpublished/`` and its arms still run,
flagged in the report. A passing set is written under ``versioning.sets_dir`` and published.

Each step below is one function that opens its own MLflow child run under the study's parent
run (by id, so it works from any thread) and reads its inputs from disk: the Prefect flow
(``flows/lesion_study.py``) runs the steps as tasks, :func:`run_study` runs them in a plain loop.
"""

from __future__ import annotations

import contextlib
import io
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from components import stages, tracking
from components.config import Config, EvaluateConfig, GanConfig
from components.errors import ConfigError, DataError
from components.generators.base import ImageSet
from components.io import atomic_write_bytes, atomic_write_json
from components.metrics.fid import draw_index, feature_distances
from components.runtime import Runtime, make_runtime

if TYPE_CHECKING:
    from torch import nn

    from components.metrics.fid import FeatureFn

STAGE = "lesion-study"


# --------------------------------------------------------------------------------------------
# data and paths


@dataclass(frozen=True)
class StudyData:
    """The validated real splits: ``train``/``test`` at the GAN size (metrics), ``clf_*`` at the
    classifier's size."""

    train: ImageSet
    test: ImageSet
    clf_train: ImageSet
    clf_val: ImageSet
    clf_test: ImageSet


def study_dir(cfg: Config) -> Path:
    return cfg.out_dir / "study" / "lesions"


def runtime_of(cfg: Config) -> Runtime:
    return make_runtime(cfg.device, cfg.precision, cfg.channels_last)


def prepare(cfg: Config) -> str:
    """Check the study's settings, run ingest and validate when their outputs are missing.

    Call it before the parent run starts: the stages open MLflow runs of their own.

    Returns:
        The sha256 of the validated lesion table (the data lineage tag).
    """
    from components.data.manifest import manifest_sha256
    from components.generators.base import get_generator

    cfg = study_config(cfg)
    study = cfg.lesion_study
    for field, size in (
        ("lesion_study.image_size", study.image_size),
        ("evaluate.image_size", cfg.evaluate.image_size),
    ):
        if size not in cfg.data.lesions.sizes:
            raise ConfigError(
                f"{field}: {size} px is not ingested (data.lesions.sizes: {cfg.data.lesions.sizes})"
            )
    for kind in study.gan_kinds:
        try:
            get_generator(kind)
        except ConfigError as exc:
            raise ConfigError(str(exc).replace("gan.kind", "lesion_study.gan_kinds", 1)) from None
    if "balanced" in study.arms and not get_generator(study.balanced_kind).conditional:
        raise ConfigError(
            f"lesion_study.balanced_kind: '{study.balanced_kind}' is not class-conditional"
        )
    table = stages.validated_dir(cfg, "lesions") / "dataset.csv"
    if not table.is_file():
        if not (stages.ingest_dir(cfg, "lesions") / "manifest.csv").is_file():
            stages.ingest(cfg)
        stages.validate(cfg)
    if "balanced" in study.arms:
        _check_balanced_supply(cfg)
    return manifest_sha256(table)


def _check_balanced_supply(cfg: Config) -> None:
    """Fail before any training when the balanced arm's set cannot hold enough malignant images."""
    labels = stages.load_split(cfg, "lesions", "train", cfg.lesion_study.image_size).labels
    assert labels is not None
    need = int((labels == 0).sum() - (labels == 1).sum())
    have = int(sample_labels(cfg.generate.n_images, cfg.lesion_study.malignant_share).sum())
    if need > have:
        raise ConfigError(
            f"generate.n_images: {cfg.generate.n_images} images at lesion_study.malignant_share "
            f"{cfg.lesion_study.malignant_share:g} give {have} malignant; the balanced arm needs {need}"
        )


def load_data(cfg: Config) -> StudyData:
    """The real splits at the GAN size and at the classifier size."""
    gan_size, clf_size = cfg.lesion_study.image_size, cfg.evaluate.image_size
    return StudyData(
        train=stages.load_split(cfg, "lesions", "train", gan_size),
        test=stages.load_split(cfg, "lesions", "test", gan_size),
        clf_train=stages.load_split(cfg, "lesions", "train", clf_size),
        clf_val=stages.load_split(cfg, "lesions", "val", clf_size),
        clf_test=stages.load_split(cfg, "lesions", "test", clf_size),
    )


def gan_config(cfg: Config, kind: str) -> Config:
    """``cfg`` with the study's GAN: ``gan`` + ``lesion_study.gan_overrides``, this kind and size."""
    fields = {
        **cfg.gan.model_dump(),
        **cfg.lesion_study.gan_overrides,
        "kind": kind,
        "image_size": cfg.lesion_study.image_size,
    }
    return cfg.model_copy(update={"gan": GanConfig.model_validate(fields)})


def study_config(cfg: Config) -> Config:
    """``cfg`` as the study sees it: ``evaluate`` + ``lesion_study.evaluate_overrides``, and
    ``lesion_study.metric_samples`` as ``metrics.fid_samples``. Applying it twice changes nothing.
    """
    study = cfg.lesion_study
    evaluate = EvaluateConfig.model_validate(
        {**cfg.evaluate.model_dump(), **study.evaluate_overrides}
    )
    metrics = cfg.metrics
    if study.metric_samples is not None:
        metrics = metrics.model_copy(update={"fid_samples": study.metric_samples})
    return cfg.model_copy(update={"evaluate": evaluate, "metrics": metrics})


@contextlib.contextmanager
def child_run(
    cfg: Config, parent_run_id: str | None, name: str, tags: dict[str, str] | None = None
) -> Iterator[tracking.Reporter]:
    """A nested MLflow run under ``parent_run_id``; a NullReporter when there is no parent.

    The parent is named by tag, not taken from MLflow's active-run stack, which is per thread:
    a Prefect task may run in another thread than the flow that opened the parent.
    """
    if parent_run_id is None:
        yield tracking.NullReporter()
        return
    all_tags = {"mlflow.parentRunId": parent_run_id, **(tags or {})}
    with tracking.start_run(
        cfg, STAGE, run_name=name, nested=True, tags=all_tags, log_config=False
    ) as rep:
        yield rep


# --------------------------------------------------------------------------------------------
# GANs: train, sample, judge, publish


def train_gan(cfg: Config, kind: str, parent_run_id: str | None = None) -> dict[str, Any]:
    """Train (or resume) one GAN kind on the real training split; save its sampling weights.

    Checkpoints live in ``study/lesions/gans/<kind>/work-<config digest>``: a retried or
    repeated study resumes them, a changed GAN config starts afresh.
    """
    from components.data.manifest import manifest_sha256
    from components.generators.factory import build_generator

    kcfg = gan_config(cfg, kind)
    runtime = runtime_of(cfg)
    train = stages.load_split(cfg, "lesions", "train", kcfg.gan.image_size)
    out = study_dir(cfg) / "gans" / kind
    workdir = out / f"work-{stages.config_digest(kcfg, 'gan', 'data')}"
    data_hash = manifest_sha256(stages.validated_dir(cfg, "lesions") / "dataset.csv")
    with child_run(cfg, parent_run_id, f"gan-{kind}", {"synthmed.gan": kind}) as rep:
        gen = build_generator(kcfg, runtime)
        figures = gen.fit(train, workdir, rep)
        weights = out / "generator.pt"
        gen.save(weights)
        registered: dict[str, Any] = {}
        if isinstance(rep, tracking.MlflowReporter):  # one registered model per kind and size
            tracking.tag_lineage(rep, data_manifest_sha256=data_hash)
            name, version = stages.register_lesion_generator(kcfg, rep.run_id, weights, data_hash)
            registered = {"registered_model": name, "model_version": version}
    # Per-class wrappers report each model's time ("benign/train_seconds"...): add them up.
    seconds = sum(v for k, v in figures.items() if k.endswith("train_seconds"))
    return {
        "kind": kind,
        "weights": str(weights),
        "train_seconds": seconds,
        **registered,
    }


def sample_labels(n: int, malignant_share: float) -> np.ndarray:
    """``n`` labels, the first ``round(n * share)`` malignant (1), the rest benign (0)."""
    n_mal = round(n * malignant_share)
    return np.array([1] * n_mal + [0] * (n - n_mal), dtype=np.int64)


def load_extractor(cfg: Config, extractor: nn.Module | None) -> nn.Module:
    """The FID Inception (``metrics.inception_path``) unless a test passes its own extractor."""
    from components.metrics.fid import load_inception

    return extractor or load_inception(cfg.metrics.inception_path, runtime_of(cfg).device)


def real_features(cfg: Config, extractor: nn.Module | None = None) -> Path:
    """Inception features of every real training and test image, computed once per study.

    The memorization yardstick needs all training images (a copy of any one must be found), and
    FID's real sample is a subset of them: one pass serves every GAN.
    """
    from components.metrics.fid import inception_features

    net = load_extractor(cfg, extractor)
    device = runtime_of(cfg).device
    size, bs = cfg.lesion_study.image_size, cfg.metrics.batch_size
    train = stages.load_split(cfg, "lesions", "train", size).images
    test = stages.load_split(cfg, "lesions", "test", size).images
    buf = io.BytesIO()
    np.savez(
        buf,
        train=inception_features(train, net, bs, device),
        test=inception_features(test, net, bs, device),
    )
    return atomic_write_bytes(study_dir(cfg) / "features" / "inception_real.npz", buf.getvalue())


def domain_classifier_path(cfg: Config) -> Path:
    return study_dir(cfg) / "domain_classifier.pt"


def domain_feature_fn(cfg: Config, runtime: Runtime) -> FeatureFn:
    """Pooled EfficientNet features of the real arm's first-seed classifier (the DOMAIN space)."""
    from components.classifier import build_classifier, normalize, to_tensor

    path = domain_classifier_path(cfg)
    if not path.is_file():
        raise DataError(f"{path}: missing; the study's real arm must run before the GAN metrics")
    model = build_classifier(cfg.evaluate.model_copy(update={"weights_path": None}))
    model.load_state_dict(torch.load(path, map_location="cpu", weights_only=True))
    model = model.to(runtime.device).eval()

    @torch.inference_mode()
    def features(images: np.ndarray) -> np.ndarray:
        x = normalize(to_tensor(images, cfg.evaluate.image_size), runtime)
        fmap = model.extract_features(x)  # type: ignore[operator]
        return torch.nn.functional.adaptive_avg_pool2d(fmap, 1).flatten(1).float().cpu().numpy()

    return features


def judge_set(
    samples: ImageSet,
    data: StudyData,
    cfg: Config,
    extractor: nn.Module,
    train_feats: np.ndarray,
    test_feats: np.ndarray,
    domain_fn: FeatureFn | None,
) -> tuple[dict[str, float], bool]:
    """Every metric of one synthetic set; returns ``(metrics, passed memorization)``."""
    from components.metrics.fid import inception_features
    from components.metrics.memorization import memorization
    from components.metrics.piqa_metrics import pairwise_quality

    mc, device = cfg.metrics, runtime_of(cfg).device
    quality = pairwise_quality(
        samples.images, data.train.images, mc.quality_pairs, cfg.seed, mc.batch_size, device
    )
    rng = np.random.default_rng(cfg.seed)
    real_idx = draw_index(len(data.train), mc.fid_samples, rng)
    syn_idx = draw_index(len(samples), mc.fid_samples, rng)
    syn = samples.images[syn_idx]
    syn_feats = inception_features(syn, extractor, mc.batch_size, device)
    out = {
        **quality.as_metrics(),
        "fid_n_real": float(len(real_idx)),
        "fid_n_synthetic": float(len(syn_idx)),
        "kid_subset_size": float(min(mc.kid_subset_size, len(real_idx), len(syn_idx))),
        "kid_subsets": float(mc.kid_subsets),
        **feature_distances(train_feats[real_idx], syn_feats, mc, cfg.seed, "inception"),
    }
    if domain_fn is not None:
        dom_real = domain_fn(data.train.images[real_idx]).astype(np.float64)
        dom_syn = domain_fn(syn).astype(np.float64)
        out.update(feature_distances(dom_real, dom_syn, mc, cfg.seed, "domain"))
    # Memorization on the same synthetic sample: its share estimates the whole set's.
    report = memorization(syn_feats, train_feats, test_feats, mc)
    out.update(report.as_metrics())
    return out, report.passed


def publish_or_hold(
    samples: ImageSet, passed: bool, cfg: Config, root: Path, meta: dict[str, Any]
) -> dict[str, Any]:
    """Write the set; version it with DVC only when it ``passed`` memorization.

    A failing set goes to ``study/lesions/unpublished/<name>`` (never added to DVC, never
    pushed), so its arms can still run and be reported, flagged.

    Returns:
        ``meta`` plus ``name``, ``set_dir``, ``published`` and, when published, DVC's ``md5``.
    """
    from components.synthetic import content_digest, set_name, write_set
    from components.versioning import publish_set

    size = int(samples.images.shape[1])
    name = set_name(meta["generator_kind"], size, cfg.profile, content_digest(samples))
    meta = {**meta, "name": name}
    if not passed:
        set_dir = write_set(samples, study_dir(cfg) / "unpublished" / name, meta)
        return {**meta, "set_dir": str(set_dir), "published": False, "md5": None}
    set_dir = write_set(samples, Path(root) / cfg.versioning.sets_dir / name, meta)
    version = publish_set(Path(root), set_dir, cfg.versioning, record=meta)
    return {**meta, "set_dir": str(set_dir), "published": True, "md5": version.md5}


def evaluate_gan(
    cfg: Config,
    gan: dict[str, Any],
    parent_run_id: str | None = None,
    root: Path = Path("."),
    extractor: nn.Module | None = None,
    data_sha256: str | None = None,
) -> dict[str, Any]:
    """Sample one trained GAN's set, judge it, publish or hold it; returns the set's record.

    Needs :func:`real_features` and the real arm's first-seed classifier on disk.
    """
    from components.generators.factory import load_generator
    from components.generators.gan.loop import image_grid

    cfg = study_config(cfg)
    kind, runtime = gan["kind"], runtime_of(cfg)
    data = load_data(cfg)
    gen = load_generator(kind, Path(gan["weights"]), runtime)
    n = cfg.generate.n_images
    samples = gen.sample(
        n, seed=cfg.seed, labels=sample_labels(n, cfg.lesion_study.malignant_share)
    )
    with np.load(study_dir(cfg) / "features" / "inception_real.npz") as npz:
        train_feats, test_feats = npz["train"], npz["test"]
    with child_run(cfg, parent_run_id, f"set-{kind}", {"synthmed.gan": kind}) as rep:
        metrics, passed = judge_set(
            samples,
            data,
            cfg,
            load_extractor(cfg, extractor),
            train_feats,
            test_feats,
            domain_feature_fn(cfg, runtime),
        )
        for key, value in metrics.items():
            rep.metric(key, value)
        meta = {
            "generator_kind": kind,
            "source_manifest_sha256": data_sha256,
            "seed": cfg.seed,
            "n_images": n,
            "malignant_share": cfg.lesion_study.malignant_share,
            "gan_config_digest": stages.config_digest(gan_config(cfg, kind), "gan", "data"),
        }
        record = publish_or_hold(samples, passed, cfg, root, meta)
        if isinstance(rep, tracking.MlflowReporter):
            tracking.tag_lineage(
                rep,
                data_manifest_sha256=data_sha256,
                synthetic_set_version=record["name"] if record["published"] else None,
                data_dvc_md5=record["md5"],
            )
            rep.client.set_tag(rep.run_id, "synthmed.memorization_passed", str(passed))
        grid_image = image_grid(_grid_pick(samples, 16))
        rep.image("synthetic_samples", grid_image)
    grid = atomic_write_bytes(
        study_dir(cfg) / "gans" / kind / "samples.png", tracking.png_bytes(grid_image)
    )
    return {
        **record,
        "metrics": metrics,
        "passed": passed,
        "grid": str(grid),
        "train_seconds": gan["train_seconds"],
    }


def _grid_pick(samples: ImageSet, n: int) -> np.ndarray:
    """Up to ``n`` images, benign first then malignant, so a grid shows both classes."""
    if samples.labels is None:
        return samples.images[:n]
    half = n // 2
    idx = np.r_[
        np.flatnonzero(samples.labels == 0)[:half], np.flatnonzero(samples.labels == 1)[:half]
    ]
    return samples.images[np.sort(idx)]


# --------------------------------------------------------------------------------------------
# arms


@dataclass(frozen=True)
class Arm:
    """One training set recipe. ``kind``: the GAN it draws from (None for the real arms)."""

    name: str
    family: str
    kind: str | None = None
    augment: bool = False


def plan_arms(cfg: Config) -> list[Arm]:
    """The study's arms in run order; ``real`` always comes first (the DOMAIN features need it)."""
    study = cfg.lesion_study
    arms = [Arm("real", "real")]
    if "augmented" in study.arms:
        arms.append(Arm("augmented", "augmented", augment=True))
    if "real+synthetic" in study.arms:
        arms += [Arm(f"real+{k}", "real+synthetic", k) for k in study.gan_kinds]
    if "balanced" in study.arms:
        arms.append(Arm(f"balanced-{study.balanced_kind}", "balanced", study.balanced_kind))
    if "synthetic" in study.arms:
        kinds = study.synthetic_only_kinds or study.gan_kinds
        arms += [Arm(f"synthetic-{k}", "synthetic", k) for k in kinds]
    return arms


def concat(*sets: ImageSet) -> ImageSet:
    """Images and labels of ``sets`` one after the other (ids kept, or made up)."""
    labels = [s.labels for s in sets]
    ids = [i for k, s in enumerate(sets) for i in (s.ids or [f"set{k}-{j}" for j in range(len(s))])]
    return ImageSet(
        images=np.concatenate([s.images for s in sets]),
        labels=None if any(lab is None for lab in labels) else np.concatenate(labels),
        ids=ids,
    )


def mixed_arm(real: ImageSet, synthetic: ImageSet, per_real: float, seed: int) -> ImageSet:
    """Real plus ``per_real`` synthetic images per real one, drawn without replacement."""
    n = min(len(synthetic), round(per_real * len(real)))
    pick = np.random.default_rng(seed).choice(len(synthetic), size=n, replace=False)
    return concat(real, synthetic.subset(np.sort(pick)))


def balanced_arm(real: ImageSet, synthetic: ImageSet, seed: int) -> ImageSet:
    """Real plus synthetic malignant images until malignant equals benign.

    Raises:
        DataError: the synthetic set has too few malignant images.
    """
    assert real.labels is not None and synthetic.labels is not None
    need = int((real.labels == 0).sum() - (real.labels == 1).sum())
    pool = np.flatnonzero(synthetic.labels == 1)
    if need > len(pool):
        raise DataError(
            f"balanced arm: needs {need} synthetic malignant images, the set has {len(pool)}; "
            "raise generate.n_images or lesion_study.malignant_share"
        )
    if need <= 0:
        return real
    pick = np.random.default_rng(seed).choice(pool, size=need, replace=False)
    return concat(real, synthetic.subset(np.sort(pick)))


def arm_training_set(
    arm: Arm, real: ImageSet, synthetic: ImageSet | None, per_real: float, seed: int
) -> ImageSet:
    """The training set of ``arm`` from the real split and (for GAN arms) its kind's set."""
    if arm.family in ("real", "augmented"):
        return real
    if synthetic is None:
        raise ValueError(f"arm {arm.name} needs the {arm.kind} set")
    if arm.family == "real+synthetic":
        return mixed_arm(real, synthetic, per_real, seed)
    if arm.family == "balanced":
        return balanced_arm(real, synthetic, seed)
    return synthetic


def _resize(data: ImageSet, size: int) -> ImageSet:
    from components.classifier import to_tensor

    if data.images.shape[1:3] == (size, size):
        return data
    images = to_tensor(data.images, size).permute(0, 2, 3, 1).numpy()
    return ImageSet(images=np.ascontiguousarray(images), labels=data.labels, ids=data.ids)


def run_arm(
    cfg: Config,
    arm: Arm,
    seed: int,
    sets: dict[str, dict[str, Any]] | None = None,
    parent_run_id: str | None = None,
) -> dict[str, Any]:
    """Train the classifier on ``arm``'s set with ``seed``; test on the real test split.

    ``sets``: the records :func:`evaluate_gan` returned, by kind (not needed by real arms).
    The real arm's first seed saves its weights as the DOMAIN feature extractor.
    """
    from components.classifier import classification_metrics, predict_proba, train_classifier
    from components.synthetic import read_set

    cfg = study_config(cfg)
    study, runtime = cfg.lesion_study, runtime_of(cfg)
    data = load_data(cfg)
    record = (sets or {}).get(arm.kind) if arm.kind else None
    if arm.kind and record is None:
        raise ValueError(f"arm {arm.name}: no set record for '{arm.kind}'")
    synthetic = (
        _resize(read_set(Path(record["set_dir"])), cfg.evaluate.image_size) if record else None
    )
    train = arm_training_set(arm, data.clf_train, synthetic, cfg.evaluate.synthetic_per_real, seed)
    flagged = bool(record and not record["published"])
    tags = {"synthmed.arm": arm.name, "synthmed.seed": str(seed), "synthmed.flagged": str(flagged)}
    if record and record["published"]:
        tags["synthetic.set_version"] = record["name"]
    with child_run(cfg, parent_run_id, f"{arm.name}-seed{seed}", tags) as rep:
        trained = train_classifier(
            train, data.clf_val, cfg.evaluate, runtime, rep, seed=seed, augment=arm.augment
        )
        p = predict_proba(trained.model, data.clf_test.images, runtime, cfg.evaluate.batch_size)
        assert data.clf_test.labels is not None
        m = classification_metrics(data.clf_test.labels, p, cfg.evaluate.threshold)
        for key, value in m.items():
            rep.metric(f"test.{key}", float(value))
    if arm.family == "real" and seed == study.seeds[0]:
        buf = io.BytesIO()
        torch.save(trained.model.state_dict(), buf)
        atomic_write_bytes(domain_classifier_path(cfg), buf.getvalue())
    return {
        "arm": arm.name,
        "family": arm.family,
        "kind": arm.kind,
        "seed": seed,
        "flagged": flagged,
        "train_images": len(train),
        "synthetic_images": 0
        if arm.kind is None
        else len(train) - (0 if arm.family == "synthetic" else len(data.clf_train)),
        "best_epoch": trained.best_epoch,
        "metrics": {k: float(v) for k, v in m.items()},
    }


# --------------------------------------------------------------------------------------------
# the whole study without Prefect


def finish(
    cfg: Config,
    sets: dict[str, dict[str, Any]],
    results: list[dict[str, Any]],
    parent: tracking.Reporter | None = None,
) -> dict[str, Any]:
    """Aggregate, write the report (and hand it to the parent run); returns the study summary."""
    from components.experiments.report import aggregate, write_report

    cfg = study_config(cfg)
    rows = aggregate(results)
    out = study_dir(cfg) / "report"
    paths = write_report(out, rows, sets, cfg)
    summary = {
        "profile": cfg.profile,
        "rows": rows,
        "sets": sets,
        "results": results,
        "report": str(paths["report.html"]),
    }
    atomic_write_json(out / "results.json", summary)
    if parent is not None:
        for path in paths.values():
            parent.artifact(path, "report")
        for row in rows:
            for key, value in row.items():
                if key.endswith(("_mean", "_std")):
                    parent.metric(f"{metric_safe(row['arm'])}.{key}", value)
    return summary


def metric_safe(name: str) -> str:
    """``name`` with what MLflow refuses in metric names ('+' of ``real+dcgan``) made '_'."""
    return re.sub(r"[^\w\-. :/]", "_", name)


def run_study(
    cfg: Config, root: Path = Path("."), extractor: nn.Module | None = None
) -> dict[str, Any]:
    """Run every step in order under one MLflow parent run (the flow does the same as tasks).

    Args:
        cfg: The resolved config (``lesion_study`` and the sections it names).
        root: The git/DVC work tree where passing sets are versioned.
        extractor: Replaces the FID Inception (tests pass a small network); None loads it.
    """
    sha = prepare(cfg)
    study = cfg.lesion_study
    with tracking.start_run(cfg, STAGE, run_name=f"lesion-study-{cfg.profile}") as parent:
        tracking.tag_lineage(parent, data_manifest_sha256=sha)
        gans = [train_gan(cfg, kind, parent.run_id) for kind in study.gan_kinds]
        real_features(cfg, extractor)
        arms = plan_arms(cfg)
        results = [run_arm(cfg, arms[0], study.seeds[0], None, parent.run_id)]
        sets = {g["kind"]: evaluate_gan(cfg, g, parent.run_id, root, extractor, sha) for g in gans}
        for arm in arms:
            for seed in study.seeds:
                if (arm.name, seed) != (arms[0].name, study.seeds[0]):
                    results.append(run_arm(cfg, arm, seed, sets, parent.run_id))
        summary = finish(cfg, sets, results, parent)
        parent.dict(summary, "lesion_study.json")
    return {**summary, "parent_run_id": parent.run_id}
