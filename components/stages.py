"""The pipeline stages: ingest -> validate -> train -> generate -> evaluate -> promote.

Each stage is one function ``stage(cfg) -> dict`` that reads the previous stages' files under
``build/<profile>/``, writes its own under ``build/<profile>/<stage>/`` (ending with a
``metrics.json`` that DVC tracks), records one MLflow run, and returns its metrics. The order and
the staleness rules live in ``dvc.yaml`` only; ``STAGES`` maps the names used there to these
functions. Nothing else lives here: data access is :mod:`components.data.store`, registration
:mod:`components.registry`, the arms :mod:`components.arms`.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from components import tracking
from components.config import Config, config_digest
from components.data.store import (
    DATASETS,
    datasets,
    ingest_dir,
    load_split,
    validated_dir,
    validated_sha256,
)
from components.errors import DataError
from components.io import atomic_write_json
from components.runtime import runtime_for, seed_everything


EVALUATE_SECTIONS = ("data", "validation", "evaluate")
"""What the evaluate stage's models depend on besides the code and the seed (config digest)."""


def _read_json(path: Path, stage: str) -> dict[str, Any]:
    if not path.is_file():
        raise DataError(f"{path}: missing; run the '{stage}' stage first (synthmed {stage})")
    return json.loads(path.read_text(encoding="utf-8"))


def _write_metrics(cfg: Config, stage: str, metrics: dict[str, Any]) -> dict[str, Any]:
    atomic_write_json(cfg.stage_dir(stage) / "metrics.json", metrics)
    return metrics


def ingest(cfg: Config) -> dict[str, Any]:
    """Read each source into a manifest plus resized copies and uint8 caches."""
    from components.data.manifest import ingest as ingest_dataset
    from components.data.manifest import manifest_sha256
    from components.data.store import write_disabled

    metrics: dict[str, Any] = {}
    with tracking.start_run(cfg, "ingest") as rep:
        for dataset in set(DATASETS) - set(datasets(cfg)):
            # An empty dataset, so the stage's outputs exist and the next stage sees no rows.
            write_disabled(ingest_dir(cfg, dataset), "manifest.csv")
            metrics[dataset] = {"enabled": False}
        for dataset in datasets(cfg):
            out = ingest_dir(cfg, dataset)
            result = ingest_dataset(dataset, cfg, out)
            digest = manifest_sha256(out / "manifest.csv")
            metrics[dataset] = {**result.counts, "format": result.format, "manifest_sha256": digest}
            rep.metric(f"{dataset}.rows", len(result.manifest))
            rep.tag(f"data.{dataset}.manifest_sha256", digest)
            rep.artifact(out / "manifest.csv", f"manifests/{dataset}")
    return _write_metrics(cfg, "ingest", metrics)


def validate(cfg: Config) -> dict[str, Any]:
    """Great Expectations on each manifest; quarantine failures; rebalance; split."""
    from components.data.manifest import manifest_sha256, read_manifest
    from components.data.splits import assign_splits
    from components.data.store import write_disabled
    from components.io import atomic_write_text
    from components.validation import (
        check_threshold,
        log_to_mlflow,
        validate_manifest,
        write_report,
    )

    metrics: dict[str, Any] = {}
    results, tables = {}, {}
    with tracking.start_run(cfg, "validate") as rep:
        for dataset in set(DATASETS) - set(datasets(cfg)):
            write_disabled(validated_dir(cfg, dataset), "dataset.csv")
            metrics[dataset] = {"enabled": False}
        for dataset in datasets(cfg):
            manifest = ingest_dir(cfg, dataset) / "manifest.csv"
            if not manifest.is_file():
                raise DataError(f"{manifest}: missing; run the 'ingest' stage first")
            df = read_manifest(manifest)
            rep.tag(f"data.{dataset}.manifest_sha256", manifest_sha256(manifest))
            result = validate_manifest(df, cfg.validation, dataset)
            out = validated_dir(cfg, dataset)
            write_report(result, out, dataset)
            log_to_mlflow(result, out, rep)
            section = cfg.data.lesions if dataset == "lesions" else cfg.data.polyps
            # max_images was applied at ingestion, before decoding (rebalance keeps the ratio).
            split = assign_splits(
                result.clean,
                val_fraction=section.val_fraction,
                test_fraction=section.test_fraction,
                seed=cfg.seed,
                stratify="label" if dataset == "lesions" else None,
            )
            tables[dataset] = split
            counts = split["split"].value_counts().to_dict()
            metrics[dataset] = {**result.summary, "splits": counts}
            results[dataset] = result
        # Reports are written before failing, so a failed run still explains itself; all
        # datasets are judged at once, so the one line names every one that failed. The
        # tables the next stages read are written only after that: a failed validation
        # leaves none behind (not even an older one), so nothing trains on rejected data.
        reports = {dataset: validated_dir(cfg, dataset) for dataset in results}
        try:
            check_threshold(list(results.values()), cfg.validation, report=reports)
        except BaseException:
            for dataset in results:
                (validated_dir(cfg, dataset) / "dataset.csv").unlink(missing_ok=True)
            raise
        for dataset, split in tables.items():
            atomic_write_text(validated_dir(cfg, dataset) / "dataset.csv", split.to_csv(index=False))
    return _write_metrics(cfg, "validate", metrics)


def train(cfg: Config) -> dict[str, Any]:
    """Train the configured lesion generator on the real training split and register it."""
    from components.data.store import split_ref
    from components.generators.factory import build_generator
    from components.registry import register_lesion_generator

    seed_everything(cfg.seed)
    data = load_split(cfg, "lesions", "train", cfg.gan.image_size)
    out = cfg.stage_dir("train")
    # Checkpoints live in a folder named by the config, so a resume never mixes settings.
    digest = config_digest(cfg, "gan", "data")
    data_hash = validated_sha256(cfg, "lesions")
    with tracking.start_run(cfg, "train", run_name=f"train-{cfg.gan.kind}-{cfg.gan.image_size}") as rep:
        rep.tags(tracking.lineage_tags(data_manifest_sha256=data_hash))
        rep.input(split_ref(cfg, "lesions", "train"), "training")
        gen = build_generator(cfg.gan.kind, cfg.gan, cfg.seed, runtime_for(cfg))
        figures = gen.fit(data, out / f"work-{digest}", rep)
        weights = out / "generator.pt"
        gen.save(weights)
        name, version = register_lesion_generator(
            cfg.gan, rep.run_id, weights, data_hash, digest, train_images=len(data)
        )
        info = {
            "kind": cfg.gan.kind,
            "image_size": cfg.gan.image_size,
            "registered_model": name,
            "model_version": version,
            "run_id": rep.run_id,
            "data_manifest_sha256": data_hash,
            "config_digest": digest,
            "train_images": len(data),
        }
        atomic_write_json(out / "generator.json", info)
    return _write_metrics(cfg, "train", {**{k: float(v) for k, v in figures.items()}, **info})


def generate(cfg: Config) -> dict[str, Any]:
    """Sample a synthetic set from the trained generator, write it with its dataset card and
    version it with DVC."""
    from components import cards
    from components.generators.base import class_labels
    from components.generators.factory import load_generator
    from components.imageset import preview
    from components.registry import tag_model_version
    from components.synthetic import content_digest, set_name, write_set
    from components.versioning import publish_set

    info = _read_json(cfg.stage_dir("train") / "generator.json", "train")
    runtime = runtime_for(cfg)
    gen = load_generator(cfg.stage_dir("train") / "generator.pt", runtime)
    train_split = load_split(cfg, "lesions", "train", cfg.gan.image_size)
    labels = None
    if gen.conditional:
        share = cfg.generate.malignant_share
        if share is None:
            share = float(train_split.labels.mean()) if train_split.labels is not None else 0.5
        labels = class_labels(cfg.generate.n_images, share)
    samples = gen.sample(cfg.generate.n_images, seed=cfg.seed, labels=labels)
    name = set_name(info["kind"], info["image_size"], cfg.profile, content_digest(samples))
    root = Path.cwd()
    set_dir = root / cfg.versioning.sets_dir / name
    meta = {
        "name": name,
        "generator_kind": info["kind"],
        "generator_registered_model": info["registered_model"],
        "generator_model_version": info["model_version"],
        "source_manifest_sha256": info["data_manifest_sha256"],
        "seed": cfg.seed,
        "n_images": len(samples),
        "image_size": info["image_size"],
    }
    facts = cards.card_facts(
        cfg,
        "lesions",
        cards.GeneratorFacts(
            info["kind"], info["registered_model"], str(info["model_version"]),
            info["config_digest"], cfg.seed,
        ),
        samples,
        train_split,
        load_split(cfg, "lesions", "test", cfg.gan.image_size),
        runtime,
    )  # fmt: skip
    with tracking.start_run(cfg, "generate", run_name=f"generate-{name}") as rep:
        write_set(samples, set_dir, meta)
        # Into the set before DVC hashes it: `dvc pull` brings the card with the images.
        card = cards.write_card(set_dir, name, samples, facts, cfg.cards.grid_images)
        version = publish_set(root, set_dir, cfg.versioning, record=meta)
        rep.tags(
            tracking.lineage_tags(
                data_manifest_sha256=info["data_manifest_sha256"],
                generator_model_version=f"{info['registered_model']}/{info['model_version']}",
                synthetic_set_version=name,
                data_dvc_md5=version.md5,
            )
        )
        rep.image("synthetic_samples", preview(samples, 64))
        for file in cards.CARD_FILES:
            rep.artifact(set_dir / file, "card")
        rep.metrics(cards.metrics(card))
        # The generator's latest card, on the generator: what `synthmed models` lists and ranks.
        tag_model_version(info["registered_model"], info["model_version"], cards.headline(card))
        record = {
            **meta,
            "md5": version.md5,
            "dvc_file": str(version.dvc_file),
            "pushed": version.pushed,
            "remote": version.remote_url,
            "run_id": rep.run_id,
        }
        atomic_write_json(cfg.stage_dir("generate") / "set.json", record)
    return _write_metrics(cfg, "generate", {"n_images": len(samples), "set": name, "md5": version.md5})


def evaluate(cfg: Config) -> dict[str, Any]:
    """Train the classifier on each configured arm and test it on the held-out real split."""
    import numpy as np

    from components.arms import Arm, run_arm
    from components.classifier import plot_confusion_matrix, plot_roc
    from components.data.store import split_ref
    from components.registry import log_model
    from components.synthetic import read_set, set_ref

    runtime = runtime_for(cfg)
    size = cfg.evaluate.image_size
    real_train = load_split(cfg, "lesions", "train", size)
    real_val = load_split(cfg, "lesions", "val", size)
    test = load_split(cfg, "lesions", "test", size)
    set_info = _read_json(cfg.stage_dir("generate") / "set.json", "generate")
    set_dir = Path(cfg.versioning.sets_dir) / set_info["name"]
    synthetic = read_set(set_dir)
    kind = set_info["generator_kind"]
    splits = {s: split_ref(cfg, "lesions", s) for s in ("train", "val", "test")}
    synthetic_ref = set_ref(set_dir, set_info.get("md5"))
    # The classifier's input: a batch of normalised images (what predict_proba feeds it).
    example = np.zeros((1, 3, size, size), dtype=np.float32)
    results: dict[str, Any] = {}
    with tracking.start_run(cfg, "evaluate") as parent:
        parent.tag("synthmed.device", runtime.device.type)  # reproduce: bit-identical on CPU
        parent.tags(
            tracking.lineage_tags(
                synthetic_set_version=set_info["name"],
                data_manifest_sha256=set_info["source_manifest_sha256"],
                generator_model_version=f"{set_info['generator_registered_model']}/"
                f"{set_info['generator_model_version']}",
            )
        )
        inputs = [(splits["train"], "training"), (splits["val"], "validation"),
                  (splits["test"], "testing")]  # fmt: skip
        tracking.log_inputs(parent, [*inputs, (synthetic_ref, "training")])
        for name in cfg.evaluate.arms:
            arm = Arm(name, name, kind if name != "real" else None)  # type: ignore[arg-type]
            # The truth: only an arm that trains on the synthetic set names it.
            arm_tags = {"synthmed.arm": name,
                        "synthetic.set_version": set_info["name"] if arm.needs_synthetic else None}  # fmt: skip
            with parent.child(f"arm-{name}", arm_tags) as rep:
                arm_inputs = [(synthetic_ref, "training")] if arm.needs_synthetic else []
                if arm.family == "synthetic":  # trains on the set alone
                    arm_inputs += inputs[1:]
                else:
                    arm_inputs = [*inputs[:1], *arm_inputs, *inputs[1:]]
                tracking.log_inputs(rep, arm_inputs)
                seed_everything(cfg.seed)
                done = run_arm(
                    arm, real_train, real_val, test, synthetic, cfg.evaluate, runtime, rep, cfg.seed
                )
                assert test.labels is not None
                rep.figure(
                    plot_confusion_matrix(test.labels, done.probabilities, cfg.evaluate.threshold),
                    "plots/confusion_matrix.png",
                )
                rep.figure(plot_roc(test.labels, {name: done.probabilities}), "plots/roc.png")
                assert rep.run_id is not None
                results[name] = {
                    **done.record(),
                    "run_id": rep.run_id,
                    "uses_synthetic": arm.needs_synthetic,
                    "model_uri": log_model(rep.run_id, done.model, input_example=example),
                }
        summary = {
            "arms": results,
            "parent_run_id": parent.run_id,
            "synthetic_set": set_info["name"],
            "data_manifest_sha256": set_info["source_manifest_sha256"],
            # What trained the models, for their registry versions (promote runs later, maybe
            # at another commit): the code, the settings and the seed.
            "git_commit": tracking.git_commit(),
            "config_digest": config_digest(cfg, *EVALUATE_SECTIONS),
            "seed": cfg.seed,
            "device": runtime.device.type,
        }
        parent.dict(summary, "evaluation.json")
    return _write_metrics(cfg, "evaluate", summary)


def promote(cfg: Config) -> dict[str, Any]:
    """Register the best arm's classifier; move ``champion`` only if it beats the incumbent."""
    from components.registry import best_arm, describe, metrics_text
    from components.registry import promote as promote_model

    tracking.configure(cfg.tracking)
    ev = _read_json(cfg.stage_dir("evaluate") / "metrics.json", "evaluate")
    arms = ev["arms"]
    best = best_arm({a: r["metrics"] for a, r in arms.items()}, cfg.promote)
    synthetic = arms[best].get("uses_synthetic", best != "real")
    tags = {
        "git.commit": ev.get("git_commit") or tracking.git_commit(),
        "data.manifest_sha256": ev["data_manifest_sha256"],
        "prefect.flow_run_id": tracking.flow_run_id() or "none",
        "synthmed.arm": best,
        "synthmed.profile": cfg.profile,
        "synthmed.stage": "evaluate",
        "seed": ev.get("seed", cfg.seed),
        "config.digest": ev.get("config_digest"),
        "synthmed.device": ev.get("device"),
    }
    if synthetic:  # a model trained on real images alone carries no set version
        tags["synthetic.set_version"] = ev["synthetic_set"]
    tags = {k: str(v) for k, v in tags.items() if v is not None}
    result = promote_model(arms[best]["model_uri"], arms[best]["metrics"], cfg.promote, tags)
    trained_on = (f"real training split + synthetic set {ev['synthetic_set']}" if synthetic
                  else "the real training split only")  # fmt: skip
    describe(
        result.name,
        result.version,
        f"EfficientNet ({cfg.evaluate.model}) benign/malignant classifier, arm '{best}': trained "
        f"on {trained_on} ({arms[best]['train_images']} images; validated lesion table sha256 "
        f"{ev['data_manifest_sha256'][:12]}), best epoch {arms[best]['best_epoch']}, seed "
        f"{tags['seed']}. Test on the held-out real split: {metrics_text(arms[best]['metrics'])}. "
        f"Promotion: {result.reason}.",
        model_text="synthmed lesion classifier: EfficientNet on dermoscopy images (input "
        "N x 3 x S x S float32, ImageNet-normalised; output N x 2 logits benign/malignant). One "
        "version per evaluate stage (its best arm); alias 'champion' is the best so far on the "
        f"test {cfg.promote.metric}, 'challenger' the latest. Rebuild a version with `synthmed "
        "reproduce models:/<name>/<version>`.",
    )
    out = {
        "registered_model": result.name,
        "version": int(result.version),
        "champion_version": int(result.champion_version),
        "promoted": bool(result.promoted),
        "reason": result.reason,
        "arm": best,
        "metric": cfg.promote.metric,
        "metrics": arms[best]["metrics"],
    }
    atomic_write_json(cfg.stage_dir("promote") / "champion.json", out)
    return _write_metrics(cfg, "promote", out)


STAGES: dict[str, Callable[[Config], dict[str, Any]]] = {
    "ingest": ingest,
    "validate": validate,
    "train": train,
    "generate": generate,
    "evaluate": evaluate,
    "promote": promote,
}
