"""The lesion GAN study: does synthetic data from the GAN zoo help a lesion classifier?

Every GAN kind in ``lesion_study.gan_kinds`` is trained on the real training split, sampled, and
judged twice: by image metrics (the five PIQA metrics on random pairs, FID/KID on Inception and
on the real-data classifier's features, memorization) and by what its images do for an
EfficientNet trained on them (the arms of :mod:`components.arms`, each once per seed, all tested
on the same held-out real test split).

A set whose memorized share exceeds ``metrics.max_memorized_share`` is not published (no DVC,
no push): it is kept under ``build/<profile>/study/lesions/unpublished/`` and its arms still run,
flagged in the report.

The study is a :class:`~components.plan.Plan` (:func:`build_plan`); every dependency is named:

- ``gan-<kind>``: train (or resume) one GAN;
- ``features-real``: Inception features of the real train and test images, once;
- ``arm-real-seed<first>``: the real arm's first seed, which also saves its classifier: the
  DOMAIN feature space the judges use;
- ``set-<kind>``: sample, judge, publish or hold (needs its GAN, the features, the domain arm);
- ``arm-<name>-seed<s>``: every other arm and seed (synthetic arms need their kind's set);
- ``report``: aggregate, write the report, log to the parent run.

:func:`run_study` runs it in one process; ``flows/studies.py`` maps it onto Prefect tasks.
"""

from __future__ import annotations

import io
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from components import plan as plans
from components.arms import Arm, run_arm
from components.classifier import TEST_METRICS
from components.config import Config, EvaluateConfig, GanConfig, config_digest
from components.data.store import load_split, split_ref, validated_sha256
from components.errors import ConfigError
from components.experiments.reporting import STD_NOTE, Report, aggregate, fig_png, fmt, mean_pm_std
from components.experiments.study import StudyContext
from components.imageset import RESIZE_KERNEL, ImageSet, png_bytes, preview
from components.io import atomic_write_bytes

if TYPE_CHECKING:
    from torch import nn

    from components.metrics.fid import FeatureFn
    from components.metrics.memorization import MemorizationReport

STAGE = "lesion-study"
ARM_METRICS = TEST_METRICS
"""Test metrics of each arm in the report, in column order: the classifier's headline metrics."""
GAN_COLUMNS = (
    ("fid_inception", "FID (Inception)"),
    ("kid_inception", "KID (Inception)"),
    ("fid_domain", "FID (domain)"),
    ("kid_domain", "KID (domain)"),
    ("memorization_share", "memorized share"),
    ("quality_psnr_mean", "PSNR"),
    ("quality_ssim_mean", "SSIM"),
    ("quality_ms_gmsd_mean", "MS-GMSD"),
    ("quality_mdsi_mean", "MDSI"),
    ("quality_haarpsi_mean", "HaarPSI"),
)
TERMINAL_GAN_COLUMNS = (
    "GAN", "published", "FID (Inception)", "KID (Inception)", "FID (domain)", "memorized share",
)  # fmt: skip
"""What the CLI prints of the generator table (the terminal is narrow; the report has all)."""


# --------------------------------------------------------------------------------------------
# config


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


def gan_kinds(cfg: Config) -> list[str]:
    """The study's GAN kinds: ``lesion_study.gan_kinds``, or every registered lesion GAN."""
    from components.generators.base import kinds

    return list(cfg.lesion_study.gan_kinds or kinds("lesion-gan"))


def gan_section(cfg: Config, kind: str) -> GanConfig:
    """The study's GAN: ``gan`` + ``lesion_study.gan_overrides``, this kind and size."""
    fields = {
        **cfg.gan.model_dump(),
        **cfg.lesion_study.gan_overrides,
        "kind": kind,
        "image_size": cfg.lesion_study.image_size,
    }
    return GanConfig.model_validate(fields)


def check_settings(cfg: Config) -> None:
    """Fail before any work when the settings cannot work: sizes not ingested, unknown kinds,
    an unconditional kind for the balanced arm."""
    from components.generators.base import get_generator

    study = cfg.lesion_study
    for field, size in (
        ("lesion_study.image_size", study.image_size),
        ("evaluate.image_size", cfg.evaluate.image_size),
    ):
        if size not in cfg.data.lesions.sizes:
            raise ConfigError(
                f"{field}: {size} px is not ingested (data.lesions.sizes: {cfg.data.lesions.sizes})"
            )
    for kind in gan_kinds(cfg):
        get_generator(kind, "lesion_study.gan_kinds")
    for field, chosen in (
        ("lesion_study.balanced_kind", [study.balanced_kind] if "balanced" in study.arms else []),
        ("lesion_study.synthetic_only_kinds", study.synthetic_only_kinds or []),
    ):
        missing = sorted(set(chosen) - set(gan_kinds(cfg)))
        if missing:
            raise ConfigError(f"{field}: {missing} not in lesion_study.gan_kinds")
    if "balanced" in study.arms and not get_generator(study.balanced_kind).conditional:
        raise ConfigError(
            f"lesion_study.balanced_kind: '{study.balanced_kind}' is not class-conditional"
        )


def check_supply(cfg: Config) -> None:
    """Fail before any training when the balanced arm's set cannot hold enough malignant
    images (needs the validated data)."""
    from components.generators.base import class_labels

    study = cfg.lesion_study
    if "balanced" in study.arms:
        labels = load_split(cfg, "lesions", "train", study.image_size).labels
        assert labels is not None
        need = int((labels == 0).sum() - (labels == 1).sum())
        have = int(class_labels(cfg.generate.n_images, study.malignant_share).sum())
        if need > have:
            raise ConfigError(
                f"generate.n_images: {cfg.generate.n_images} images at lesion_study.malignant_share "
                f"{study.malignant_share:g} give {have} malignant; the balanced arm needs {need}"
            )


def study_dir(cfg: Config) -> Path:
    return cfg.out_dir / "study" / "lesions"


# --------------------------------------------------------------------------------------------
# steps: GANs and their sets


def train_gan(ctx: StudyContext, kind: str) -> dict[str, Any]:
    """Train (or resume) one GAN kind on the real training split; save and register it.

    Checkpoints live in ``study/lesions/gans/<kind>/work-<config digest>``: a retried or
    repeated study resumes them, a changed GAN config starts afresh.
    """
    from components.generators.factory import build_generator
    from components.registry import register_lesion_generator

    cfg, section = ctx.cfg, gan_section(ctx.cfg, kind)
    train = load_split(cfg, "lesions", "train", section.image_size)
    out = study_dir(cfg) / "gans" / kind
    digest = config_digest(cfg.model_copy(update={"gan": section}), "gan", "data")
    data_hash = validated_sha256(cfg, "lesions")
    with ctx.child(f"gan-{kind}", {"synthmed.gan": kind, "data.manifest_sha256": data_hash}) as rep:
        rep.input(split_ref(cfg, "lesions", "train"), "training")
        gen = build_generator(kind, section, cfg.seed, ctx.runtime, "lesion_study.gan_kinds")
        figures = gen.fit(train, out / f"work-{digest}", rep)
        weights = out / "generator.pt"
        gen.save(weights)
        registered: dict[str, Any] = {}
        if rep.run_id is not None:  # one registered model per kind and size
            name, version = register_lesion_generator(
                section, rep.run_id, weights, data_hash, digest, train_images=len(train)
            )
            registered = {"registered_model": name, "model_version": version}
    # Per-class wrappers report each model's time ("benign/train_seconds"...): add them up.
    seconds = sum(v for k, v in figures.items() if k.endswith("train_seconds"))
    return {
        "kind": kind,
        "weights": str(weights),
        "config_digest": digest,
        "train_seconds": seconds,
        **registered,
    }


def load_extractor(ctx: StudyContext) -> nn.Module:
    """The FID Inception (``metrics.inception_path``) unless the context brings its own."""
    from components.metrics.fid import load_inception

    return ctx.extractor or load_inception(ctx.cfg.metrics.inception_path, ctx.runtime.device)


def real_features(ctx: StudyContext) -> str:
    """Inception features of every real training and test image, computed once per study.

    The memorization yardstick needs all training images (a copy of any one must be found), and
    FID's real sample is a subset of them: one pass serves every GAN. Returns the npz path.
    """
    from components.metrics.fid import inception_features

    cfg, net = ctx.cfg, load_extractor(ctx)
    size, bs, device = cfg.lesion_study.image_size, cfg.metrics.batch_size, ctx.runtime.device
    buf = io.BytesIO()
    np.savez(
        buf,
        **{
            split: inception_features(load_split(cfg, "lesions", split, size).images, net, bs, device)
            for split in ("train", "test")
        },
    )
    path = study_dir(cfg) / "features" / "inception_real.npz"
    return str(atomic_write_bytes(path, buf.getvalue()))


def domain_feature_fn(ctx: StudyContext, weights: str) -> FeatureFn:
    """Pooled EfficientNet features of the classifier saved at ``weights`` (the DOMAIN space)."""
    import torch

    from components import classifier

    cfg, runtime = ctx.cfg, ctx.runtime
    model = classifier.build_classifier(cfg.evaluate.model_copy(update={"weights_path": None}))
    model.load_state_dict(torch.load(weights, map_location="cpu", weights_only=True))
    model = model.to(runtime.device)
    return lambda images: classifier.features(
        model, images, runtime, cfg.metrics.batch_size, cfg.evaluate.image_size
    )


def judge_set(
    samples: ImageSet,
    train: ImageSet,
    cfg: Config,
    extractor: nn.Module,
    train_feats: np.ndarray,
    test_feats: np.ndarray,
    domain_fn: FeatureFn | None,
    device: Any,
) -> tuple[dict[str, float], MemorizationReport, np.ndarray]:
    """Every metric of one synthetic set; returns ``(metrics, memorization report, Inception
    features of the protocol's draw of the set)``: the set's card reuses the last two."""
    from components.metrics.fid import (
        draw_index,
        feature_distances,
        inception_features,
        protocol_counts,
    )
    from components.metrics.memorization import memorization
    from components.metrics.piqa_metrics import pairwise_quality

    mc = cfg.metrics
    quality = pairwise_quality(
        samples.images, train.images, mc.quality_pairs, cfg.seed, mc.batch_size, device
    )
    rng = np.random.default_rng(cfg.seed)
    real_idx = draw_index(len(train), mc.fid_samples, rng)
    syn_idx = draw_index(len(samples), mc.fid_samples, rng)
    syn = samples.images[syn_idx]
    syn_feats = inception_features(syn, extractor, mc.batch_size, device)
    out = {
        **quality.as_metrics(),
        **protocol_counts(len(real_idx), len(syn_idx), mc),
        **feature_distances(train_feats[real_idx], syn_feats, mc, cfg.seed, "inception"),
    }
    if domain_fn is not None:
        dom_real = domain_fn(train.images[real_idx]).astype(np.float64)
        dom_syn = domain_fn(syn).astype(np.float64)
        out.update(feature_distances(dom_real, dom_syn, mc, cfg.seed, "domain"))
    # Memorization on the same synthetic sample: its share estimates the whole set's.
    report = memorization(syn_feats, train_feats, test_feats, mc)
    out.update(report.as_metrics())
    return out, report, syn_feats


def _str(value: Any) -> str | None:
    return None if value is None else str(value)


def judge_gan(
    ctx: StudyContext, gan: dict[str, Any], features: str, domain: dict[str, Any]
) -> dict[str, Any]:
    """Sample one trained GAN's set, judge it, publish or hold it; returns the set's record.

    Args:
        gan: the ``gan-<kind>`` step's record.
        features: the ``features-real`` step's npz.
        domain: the first real arm's record (its ``domain_weights``).
    """
    from components import cards
    from components.experiments.study import publish_or_hold
    from components.generators.base import class_labels
    from components.generators.factory import load_generator
    from components.registry import tag_model_version

    cfg, kind = ctx.cfg, gan["kind"]
    gen = load_generator(Path(gan["weights"]), ctx.runtime)
    n = cfg.generate.n_images
    samples = gen.sample(n, seed=cfg.seed, labels=class_labels(n, cfg.lesion_study.malignant_share))
    train = load_split(cfg, "lesions", "train", cfg.lesion_study.image_size)
    with np.load(features) as npz:
        train_feats, test_feats = npz["train"], npz["test"]
    data_hash = validated_sha256(cfg, "lesions")
    with ctx.child(f"set-{kind}", {"synthmed.gan": kind}) as rep:
        metrics, report, syn_feats = judge_set(
            samples,
            train,
            cfg,
            load_extractor(ctx),
            train_feats,
            test_feats,
            domain_feature_fn(ctx, domain["domain_weights"]),
            ctx.runtime.device,
        )
        passed = report.passed
        rep.metrics(metrics)
        test = load_split(cfg, "lesions", "test", cfg.lesion_study.image_size)
        facts = cards.card_facts(
            cfg, "lesions",
            cards.GeneratorFacts(kind, gan.get("registered_model"), _str(gan.get("model_version")),
                                 gan["config_digest"], cfg.seed),
            samples, train, test, ctx.runtime,
            feats=cards.Features("inception", syn_feats, train_feats, test_feats),
            memorization=report, memorization_space="inception",
        )  # fmt: skip
        meta = {
            "generator_kind": kind,
            "generator_registered_model": gan.get("registered_model"),
            "generator_model_version": gan.get("model_version"),
            "source_manifest_sha256": data_hash,
            "seed": cfg.seed,
            "n_images": n,
            "malignant_share": cfg.lesion_study.malignant_share,
            "gan_config_digest": gan["config_digest"],
        }
        record = publish_or_hold(
            samples, passed, cfg, Path(ctx.root), meta, study_dir(cfg) / "unpublished", facts
        )
        if gan.get("registered_model") and record["card_tags"]:
            tag_model_version(gan["registered_model"], gan["model_version"], record["card_tags"])
        rep.tags(
            {
                "data.manifest_sha256": data_hash,
                "synthetic.set_version": record["name"] if record["published"] else None,
                "data.dvc_md5": record["md5"],
                "synthmed.memorization_passed": str(passed),
            }
        )
        grid = preview(samples, 16)
        rep.image("synthetic_samples", grid)
    path = atomic_write_bytes(study_dir(cfg) / "gans" / kind / "samples.png", png_bytes(grid))
    return {
        **record,
        "metrics": metrics,
        "passed": passed,
        "grid": str(path),
        "train_seconds": gan["train_seconds"],
    }


# --------------------------------------------------------------------------------------------
# steps: arms


def plan_arms(cfg: Config) -> list[Arm]:
    """The study's arms in run order; ``real`` always comes first (the DOMAIN features need it)."""
    study, kinds_ = cfg.lesion_study, gan_kinds(cfg)
    arms = [Arm("real", "real")]
    if "augmented" in study.arms:
        arms.append(Arm("augmented", "augmented"))
    if "real+synthetic" in study.arms:
        arms += [Arm(f"real+{k}", "real+synthetic", k) for k in kinds_]
    if "balanced" in study.arms:
        arms.append(Arm(f"balanced-{study.balanced_kind}", "balanced", study.balanced_kind))
    if "synthetic" in study.arms:
        arms += [Arm(f"synthetic-{k}", "synthetic", k) for k in study.synthetic_only_kinds or kinds_]
    return arms


def log_arm_inputs(rep: Any, cfg: Config, arm: Arm, rec: dict[str, Any] | None) -> None:
    """The data an arm's run reads, as MLflow inputs: real splits, and its set when it has one."""
    from components.synthetic import set_ref
    from components.tracking import log_inputs

    inputs = [(split_ref(cfg, "lesions", s), c)
              for s, c in (("train", "training"), ("val", "validation"), ("test", "testing"))]  # fmt: skip
    if arm.family == "synthetic":
        inputs = inputs[1:]
    if rec is not None and arm.needs_synthetic:
        inputs.insert(0, (set_ref(Path(rec["set_dir"]), rec.get("md5")), "training"))
    log_inputs(rep, inputs)


def study_arm(
    ctx: StudyContext,
    arm: Arm,
    seed: int,
    synthetic_set: dict[str, Any] | None = None,
    keep_domain: bool = False,
) -> dict[str, Any]:
    """Train the classifier on ``arm``'s set with ``seed``; test on the real test split.

    Args:
        synthetic_set: the ``set-<kind>`` record of the arm's GAN (not needed by real arms).
        keep_domain: save the trained weights (the DOMAIN feature space) and return their path
            as ``domain_weights``.
    """
    import torch

    from components.synthetic import read_set

    cfg, size = ctx.cfg, ctx.cfg.evaluate.image_size
    rec = synthetic_set
    if arm.needs_synthetic and rec is None:
        raise ValueError(f"arm {arm.name}: no set record for '{arm.kind}'")
    synthetic = read_set(Path(rec["set_dir"])) if rec is not None else None
    flagged = bool(rec is not None and not rec["published"])
    tags = {
        "synthmed.arm": arm.name,
        "synthmed.seed": seed,
        "synthmed.flagged": flagged,
        # The truth: only an arm trained on a published set names a set version.
        "synthetic.set_version": rec["name"] if rec is not None and rec["published"] else None,
    }
    with ctx.child(f"{arm.name}-seed{seed}", tags) as rep:
        log_arm_inputs(rep, cfg, arm, rec)
        done = run_arm(
            arm,
            load_split(cfg, "lesions", "train", size),
            load_split(cfg, "lesions", "val", size),
            load_split(cfg, "lesions", "test", size),
            synthetic,
            cfg.evaluate,
            ctx.runtime,
            rep,
            seed,
        )
    out = {"arm": arm.name, "family": arm.family, "kind": arm.kind, "seed": seed,
           "flagged": flagged, **done.record()}  # fmt: skip
    if keep_domain:
        buf = io.BytesIO()
        torch.save(done.model.state_dict(), buf)
        path = study_dir(cfg) / "domain_classifier.pt"
        out["domain_weights"] = str(atomic_write_bytes(path, buf.getvalue()))
    return out


# --------------------------------------------------------------------------------------------
# report


def arm_table(rows: list[dict[str, Any]]) -> tuple[list[str], list[list[str]]]:
    """Header and cells of the arm table ('mean ± std'; flagged arms marked with '*')."""
    header = ["arm", "seeds", "train images", *ARM_METRICS]
    cells = [
        [row["arm"] + (" *" if row["flagged"] else ""), str(row["seeds"]),
         str(row["train_images"]), *(mean_pm_std(row, m) for m in ARM_METRICS)]
        for row in rows
    ]  # fmt: skip
    return header, cells


def gan_table(sets: dict[str, dict[str, Any]]) -> tuple[list[str], list[list[str]]]:
    """Header and cells of the generator table, one row per GAN kind."""
    header = ["GAN", "set", "published", *(label for _, label in GAN_COLUMNS), "train s"]
    cells = [
        [kind, rec["name"], "yes" if rec["published"] else "NO (memorization)",
         *(fmt(rec["metrics"].get(key), 4 if key.startswith("kid") else 3) for key, _ in GAN_COLUMNS),
         fmt(float(rec["train_seconds"]), 0)]
        for kind, rec in sets.items()
    ]  # fmt: skip
    return header, cells


def bar_chart(rows: list[dict[str, Any]], metrics: tuple[str, ...] = ("roc_auc", "balanced_accuracy")) -> bytes:
    """Grouped bars of ``metrics`` per arm, error bars = std over seeds."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=(max(6.0, 0.9 * len(rows)), 4), layout="constrained")
    ax = fig.add_subplot()
    x = np.arange(len(rows))
    width = 0.8 / len(metrics)
    for i, m in enumerate(metrics):
        ax.bar(x + (i - (len(metrics) - 1) / 2) * width, [r[f"{m}_mean"] for r in rows], width,
               yerr=[r[f"{m}_std"] for r in rows], capsize=3, label=m)  # fmt: skip
    ax.axhline(0.5, color="grey", linestyle="--", linewidth=1)
    ax.set_xticks(x, [r["arm"] for r in rows], rotation=30, ha="right")
    ax.set(ylim=(0, 1), ylabel="test value (mean ± std over seeds)", title="Lesion study arms")
    ax.legend(loc="lower right", fontsize="small")
    return fig_png(fig)


def build_report(rows: list[dict[str, Any]], sets: dict[str, dict[str, Any]], cfg: Config) -> Report:
    """The study's report: the arm table and chart, the generator table, sample grids, notes."""
    from components.metrics.piqa_metrics import PAIRING

    mc, study = cfg.metrics, cfg.lesion_study
    weights = cfg.evaluate.weights_path
    report = Report(f"Lesion GAN study ({cfg.profile})")
    report.heading("Classifier arms (test split, mean ± std over seeds)").table(*arm_table(rows))
    report.image("arms.png", bar_chart(rows), "test ROC AUC and balanced accuracy per arm")
    report.heading("Generators").table(*gan_table(sets))
    for kind, rec in sets.items():
        if rec.get("grid") and Path(rec["grid"]).is_file():
            report.image(f"samples_{kind}.png", Path(rec["grid"]).read_bytes(), kind)
    report.bullets(
        [
            f"Classifier: {cfg.evaluate.model} at {cfg.evaluate.image_size} px, "
            f"{cfg.evaluate.epochs} epochs, weights {'from ' + weights if weights else 'random init'}; "
            f"seeds {study.seeds}; every arm is tested on the same held-out real test split. "
            f"Synthetic images are resized to the classifier's size: {RESIZE_KERNEL}.",
            STD_NOTE.format(over="seeds"),
            "* = trained on a set that failed the memorization check (not published).",
            f"PIQA pairing: {PAIRING}.",
            f"FID/KID: up to {mc.fid_samples} images per side, reference = the real training "
            "split; Inception = FID Inception-v3 pool features, domain = pooled features of the "
            "real arm's first-seed classifier. Compare values only at equal counts.",
            "Memorization: a synthetic image is memorized when closer to a training image than "
            f"the {mc.memorization_quantile:g} quantile of real test images (Inception features); "
            f"a set passes at a share <= {mc.max_memorized_share:g}.",
        ]
    )
    return report


def report(
    ctx: StudyContext, sets: dict[str, dict[str, Any]], results: list[dict[str, Any]]
) -> dict[str, Any]:
    """Aggregate over seeds, write the report (and give it to the parent run); the summary."""
    from components.experiments.study import finish

    cfg = ctx.cfg
    rows = aggregate(results, ARM_METRICS, keep=("train_images",), repeats="seeds")
    summary = {"profile": cfg.profile, "rows": rows, "sets": sets, "results": results}
    return finish(ctx, build_report(rows, sets, cfg), summary, rows, study_dir(cfg) / "report")


# --------------------------------------------------------------------------------------------
# the plan


def build_plan(ctx: StudyContext) -> plans.Plan:
    """Every step of the study with its inputs named (see the module docstring)."""
    cfg = ctx.cfg
    seeds, kinds_ = cfg.lesion_study.seeds, gan_kinds(cfg)
    gpu = plans.Resources(cpus=1, gpus=1)
    steps = [plans.Step(f"gan-{k}", train_gan, {"ctx": ctx, "kind": k}, resources=gpu) for k in kinds_]
    steps.append(plans.Step("features-real", real_features, {"ctx": ctx}, resources=gpu))
    arms = plan_arms(cfg)
    first = f"arm-real-seed{seeds[0]}"
    steps.append(
        plans.Step(first, study_arm, {"ctx": ctx, "arm": arms[0], "seed": seeds[0], "keep_domain": True},
                   resources=gpu)
    )  # fmt: skip
    steps += [
        plans.Step(f"set-{k}", judge_gan, {"ctx": ctx},
                   {"gan": f"gan-{k}", "features": "features-real", "domain": first}, resources=gpu)
        for k in kinds_
    ]  # fmt: skip
    results = [first]
    for arm in arms:
        for seed in seeds:
            name = f"arm-{arm.name}-seed{seed}"
            if name == first:
                continue
            needs = {"synthetic_set": f"set-{arm.kind}"} if arm.needs_synthetic else {}
            steps.append(plans.Step(name, study_arm, {"ctx": ctx, "arm": arm, "seed": seed}, needs,
                                    resources=gpu))  # fmt: skip
            results.append(name)
    steps.append(
        plans.Step("report", report, {"ctx": ctx},
                   {"sets": {k: f"set-{k}" for k in kinds_}, "results": results}, retries=0)
    )  # fmt: skip
    return plans.Plan(STAGE, tuple(steps))


def prepare(root: Path, profile: str | None, params: str = "params.yaml") -> tuple[Config, dict[str, str]]:
    """Check the settings, bring the data up to date (DVC), check the balanced arm's supply;
    returns the study's config and its lineage tags."""
    from components.config import load_config
    from components.experiments.study import prepare_data

    base = load_config(Path(root) / params, profile)
    cfg = study_config(base)
    check_settings(cfg)
    prepare_data(Path(root), base)
    check_supply(cfg)
    return cfg, {"data.manifest_sha256": validated_sha256(cfg, "lesions")}


def run_study(
    root: Path = Path("."),
    profile: str | None = None,
    params: str = "params.yaml",
    extractor: nn.Module | None = None,
) -> dict[str, Any]:
    """The whole study in this process (see :func:`components.experiments.study.run_local`).

    Args:
        root: the project (git + DVC) folder, also the current folder.
        extractor: replaces the FID Inception (tests pass a small network); None loads it.
    """
    import sys

    from components.experiments.study import run_local

    return run_local(sys.modules[__name__], root, profile, params, extractor)
