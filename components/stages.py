"""The pipeline stages: ingest -> validate -> train -> generate -> evaluate -> promote.

Each stage is one function ``stage(cfg) -> dict`` that reads the previous stages' files under
``build/<profile>/``, writes its own under ``build/<profile>/<stage>/`` (ending with a
``metrics.json`` that DVC tracks), records one MLflow run, and returns its metrics. The order and
the staleness rules live in ``dvc.yaml`` only; ``STAGES`` maps the names used there to these
functions for the CLI.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from components import tracking
from components.config import Config
from components.errors import DataError
from components.generators.base import ImageSet
from components.io import atomic_write_json
from components.runtime import make_runtime, seed_everything

# --------------------------------------------------------------------------------------------
# small shared helpers


def _read_json(path: Path, stage: str) -> dict[str, Any]:
    if not path.is_file():
        raise DataError(f"{path}: missing; run the '{stage}' stage first (synthmed {stage})")
    return json.loads(path.read_text(encoding="utf-8"))


def _write_metrics(cfg: Config, stage: str, metrics: dict[str, Any]) -> dict[str, Any]:
    atomic_write_json(cfg.stage_dir(stage) / "metrics.json", metrics)
    return metrics


def config_digest(cfg: Config, *sections: str) -> str:
    """Short hash of some config sections: names work folders that must not be mixed up."""
    dump = cfg.model_dump(mode="json")
    blob = json.dumps({s: dump[s] for s in sections} | {"seed": cfg.seed}, sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()[:12]


def _runtime(cfg: Config):  # type: ignore[no-untyped-def]
    return make_runtime(cfg.device, cfg.precision, cfg.channels_last)


def ingest_dir(cfg: Config, dataset: str) -> Path:
    return cfg.stage_dir("ingest") / dataset


def validated_dir(cfg: Config, dataset: str) -> Path:
    return cfg.stage_dir("validate") / dataset


def load_split(cfg: Config, dataset: str, split: str, size: int) -> ImageSet:
    """Validated images of one split, at ``size`` px, from the uint8 cache built at ingestion."""
    from components.data.manifest import load_cache

    table = validated_dir(cfg, dataset) / "dataset.csv"
    if not table.is_file():
        raise DataError(f"{table}: missing; run the 'validate' stage first (synthmed validate)")
    df = pd.read_csv(table, dtype=str, keep_default_na=False)
    ids = df.loc[df["split"] == split, "image_id"].tolist()
    return load_cache(ingest_dir(cfg, dataset), size, ids)


def _datasets(cfg: Config) -> list[str]:
    return ["lesions", "polyps"] if cfg.data.polyps.enabled else ["lesions"]


# --------------------------------------------------------------------------------------------
# stages


def ingest(cfg: Config) -> dict[str, Any]:
    """Read each source into a manifest plus resized copies and uint8 caches."""
    from components.data.manifest import ingest as ingest_dataset
    from components.data.manifest import manifest_sha256

    metrics: dict[str, Any] = {}
    with tracking.start_run(cfg, "ingest") as rep:
        for dataset in _datasets(cfg):
            out = ingest_dir(cfg, dataset)
            result = ingest_dataset(dataset, cfg, out)  # type: ignore[arg-type]
            df = result.manifest
            digest = manifest_sha256(out / "manifest.csv")
            metrics[dataset] = {**result.counts, "format": result.format, "manifest_sha256": digest}
            rep.metric(f"{dataset}.rows", len(df))
            rep.client.set_tag(rep.run_id, f"data.{dataset}.manifest_sha256", digest)
            rep.artifact(out / "manifest.csv", f"manifests/{dataset}")
    return _write_metrics(cfg, "ingest", metrics)


def validate(cfg: Config) -> dict[str, Any]:
    """Great Expectations on each manifest; quarantine failures; rebalance; split."""
    from components.data.manifest import manifest_sha256, read_manifest
    from components.data.splits import assign_splits
    from components.validation import (
        check_threshold,
        log_to_mlflow,
        validate_manifest,
        write_report,
    )

    metrics: dict[str, Any] = {}
    results = {}
    with tracking.start_run(cfg, "validate") as rep:
        for dataset in _datasets(cfg):
            manifest = ingest_dir(cfg, dataset) / "manifest.csv"
            if not manifest.is_file():
                raise DataError(f"{manifest}: missing; run the 'ingest' stage first")
            df = read_manifest(manifest)
            rep.client.set_tag(rep.run_id, f"data.{dataset}.manifest_sha256", manifest_sha256(manifest))
            result = validate_manifest(df, cfg.validation, dataset)  # type: ignore[arg-type]
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
            from components.io import atomic_write_text

            atomic_write_text(out / "dataset.csv", split.to_csv(index=False))
            counts = split["split"].value_counts().to_dict()
            metrics[dataset] = {**result.summary, "splits": counts}
            results[dataset] = result
        # Reports are written before failing, so a failed run still explains itself; all
        # datasets are judged at once, so the one line names every one that failed.
        reports = {dataset: validated_dir(cfg, dataset) for dataset in results}
        check_threshold(list(results.values()), cfg.validation, report=reports)
    return _write_metrics(cfg, "validate", metrics)


def register_lesion_generator(
    cfg: Config, run_id: str, weights: Path, data_hash: str
) -> tuple[str, int]:
    """Register trained weights as a new version of ``synthmed-<kind>-<size>`` (one registered
    model per GAN kind and size), tagged with the commit, data and config it came from."""
    from components.generators.mlflow_model import register_generator

    name = cfg.gan.registered_model.format(kind=cfg.gan.kind, image_size=cfg.gan.image_size)
    version = register_generator(
        run_id,
        weights,
        kind=cfg.gan.kind,
        image_size=cfg.gan.image_size,
        registered_name=name,
        tags={
            "git.commit": tracking.git_commit(),
            "data.manifest_sha256": data_hash,
            "config.digest": config_digest(cfg, "gan", "data"),
        },
    )
    return name, int(version)


def train(cfg: Config) -> dict[str, Any]:
    """Train the configured lesion generator on the real training split and register it."""
    from components.data.manifest import manifest_sha256
    from components.generators.factory import build_generator

    seed_everything(cfg.seed)
    runtime = _runtime(cfg)
    data = load_split(cfg, "lesions", "train", cfg.gan.image_size)
    out = cfg.stage_dir("train")
    # Checkpoints live in a folder named by the config, so a resume never mixes settings.
    workdir = out / f"work-{config_digest(cfg, 'gan', 'data')}"
    data_hash = manifest_sha256(validated_dir(cfg, "lesions") / "dataset.csv")
    with tracking.start_run(cfg, "train", run_name=f"train-{cfg.gan.kind}-{cfg.gan.image_size}") as rep:
        tracking.tag_lineage(rep, data_manifest_sha256=data_hash)
        gen = build_generator(cfg, runtime)
        figures = gen.fit(data, workdir, rep)
        weights = out / "generator.pt"
        gen.save(weights)
        name, version = register_lesion_generator(cfg, rep.run_id, weights, data_hash)
        info = {
            "kind": cfg.gan.kind,
            "image_size": cfg.gan.image_size,
            "registered_model": name,
            "model_version": version,
            "run_id": rep.run_id,
            "data_manifest_sha256": data_hash,
            "train_images": len(data),
        }
        atomic_write_json(out / "generator.json", info)
    return _write_metrics(cfg, "train", {**{k: float(v) for k, v in figures.items()}, **info})


def generate(cfg: Config) -> dict[str, Any]:
    """Sample a synthetic set from the trained generator, write it and version it with DVC."""
    from components.generators.factory import load_generator
    from components.synthetic import content_digest, set_name, write_set
    from components.versioning import publish_set

    runtime = _runtime(cfg)
    info = _read_json(cfg.stage_dir("train") / "generator.json", "train")
    gen = load_generator(info["kind"], cfg.stage_dir("train") / "generator.pt", runtime)
    labels = None
    if gen.conditional:
        share = cfg.generate.malignant_share
        if share is None:
            train_labels = load_split(cfg, "lesions", "train", cfg.gan.image_size).labels
            share = float(np.mean(train_labels)) if train_labels is not None else 0.5
        n_mal = int(round(cfg.generate.n_images * share))
        labels = np.array([1] * n_mal + [0] * (cfg.generate.n_images - n_mal), dtype=np.int64)
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
    with tracking.start_run(cfg, "generate", run_name=f"generate-{name}") as rep:
        write_set(samples, set_dir, meta)
        version = publish_set(root, set_dir, cfg.versioning, record=meta)
        tracking.tag_lineage(
            rep,
            data_manifest_sha256=info["data_manifest_sha256"],
            generator_model_version=f"{info['registered_model']}/{info['model_version']}",
            synthetic_set_version=name,
            data_dvc_md5=version.md5,
        )
        from components.generators.gan.loop import image_grid

        grid = image_grid(samples.images[:64])
        rep.image("synthetic_samples", grid)
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
    from components.classifier import (
        classification_metrics,
        plot_confusion_matrix,
        plot_roc,
        predict_proba,
        train_classifier,
    )
    from components.registry import log_classifier
    from components.synthetic import read_set

    runtime = _runtime(cfg)
    size = cfg.evaluate.image_size
    real_train = load_split(cfg, "lesions", "train", size)
    real_val = load_split(cfg, "lesions", "val", size)
    test = load_split(cfg, "lesions", "test", size)
    set_info = _read_json(cfg.stage_dir("generate") / "set.json", "generate")
    synthetic = _resize(read_set(Path(cfg.versioning.sets_dir) / set_info["name"]), size)
    train_sets = {
        "real": real_train,
        "synthetic": synthetic,
        "real+synthetic": _mix(real_train, synthetic, cfg.evaluate.synthetic_per_real, cfg.seed),
    }
    results: dict[str, Any] = {}
    with tracking.start_run(cfg, "evaluate") as parent:
        tracking.tag_lineage(
            parent,
            synthetic_set_version=set_info["name"],
            data_manifest_sha256=set_info["source_manifest_sha256"],
            generator_model_version=f"{set_info['generator_registered_model']}/"
            f"{set_info['generator_model_version']}",
        )
        for arm in cfg.evaluate.arms:
            with tracking.start_run(cfg, "evaluate", run_name=f"arm-{arm}", nested=True,
                                    tags={"synthmed.arm": arm}, log_config=False) as rep:
                seed_everything(cfg.seed)
                trained = train_classifier(
                    train_sets[arm], real_val, cfg.evaluate, runtime, rep, seed=cfg.seed
                )
                probs = predict_proba(
                    trained.model, test.images, runtime, cfg.evaluate.batch_size, image_size=size
                )
                assert test.labels is not None
                m = classification_metrics(test.labels, probs, cfg.evaluate.threshold)
                for key, value in m.items():
                    rep.metric(f"test.{key}", float(value))
                rep.figure(plot_confusion_matrix(test.labels, probs, cfg.evaluate.threshold),
                           "plots/confusion_matrix.png")
                rep.figure(plot_roc(test.labels, {arm: probs}), "plots/roc.png")
                model_uri = log_classifier(trained.model)
                results[arm] = {
                    "metrics": {k: float(v) for k, v in m.items()},
                    "run_id": rep.run_id,
                    "model_uri": model_uri,
                    "train_images": len(train_sets[arm]),
                }
        results_all = {"arms": results, "parent_run_id": parent.run_id, "synthetic_set": set_info["name"],
                       "data_manifest_sha256": set_info["source_manifest_sha256"]}
        parent.dict(results_all, "evaluation.json")
    return _write_metrics(cfg, "evaluate", results_all)


def promote(cfg: Config) -> dict[str, Any]:
    """Register the best arm's classifier; move ``champion`` only if it beats the incumbent."""
    from components.registry import promote as promote_model

    tracking.configure(cfg.tracking)
    ev = _read_json(cfg.stage_dir("evaluate") / "metrics.json", "evaluate")
    metric = cfg.promote.metric
    sign = 1.0 if cfg.promote.greater_is_better else -1.0
    arms = ev["arms"]

    def score(arm: str) -> float:
        value = arms[arm]["metrics"].get(metric, float("nan"))
        return sign * value if value == value else float("-inf")

    best = max(arms, key=score)
    tags = {
        "git.commit": tracking.git_commit(),
        "data.manifest_sha256": ev["data_manifest_sha256"],
        "synthetic.set_version": ev["synthetic_set"],
        "prefect.flow_run_id": tracking.flow_run_id() or "none",
        "synthmed.arm": best,
        "synthmed.profile": cfg.profile,
    }
    result = promote_model(arms[best]["model_uri"], arms[best]["metrics"], cfg.promote, tags)
    out = {
        "registered_model": result.name,
        "version": int(result.version),
        "champion_version": int(result.champion_version),
        "promoted": bool(result.promoted),
        "reason": result.reason,
        "arm": best,
        "metric": metric,
        "metrics": arms[best]["metrics"],
    }
    atomic_write_json(cfg.stage_dir("promote") / "champion.json", out)
    return _write_metrics(cfg, "promote", out)


# --------------------------------------------------------------------------------------------
# array helpers used above


def _resize(data: ImageSet, size: int) -> ImageSet:
    if data.images.shape[1] == size and data.images.shape[2] == size:
        return data
    from PIL import Image

    images = np.stack(
        [np.asarray(Image.fromarray(im).resize((size, size), Image.BICUBIC)) for im in data.images]
    )
    return ImageSet(images=images, labels=data.labels, masks=None, ids=data.ids)


def _mix(real: ImageSet, synthetic: ImageSet, per_real: float, seed: int) -> ImageSet:
    """Real images plus ``per_real`` synthetic images per real one (drawn without replacement)."""
    n = min(len(synthetic), int(round(per_real * len(real))))
    pick = np.random.default_rng(seed).choice(len(synthetic), size=n, replace=False)
    syn = synthetic.subset(np.sort(pick))
    labels = None
    if real.labels is not None and syn.labels is not None:
        labels = np.concatenate([real.labels, syn.labels])
    return ImageSet(
        images=np.concatenate([real.images, syn.images]),
        labels=labels,
        ids=(real.ids or [""] * len(real)) + (syn.ids or [""] * len(syn)),
    )


STAGES: dict[str, Callable[[Config], dict[str, Any]]] = {
    "ingest": ingest,
    "validate": validate,
    "train": train,
    "generate": generate,
    "evaluate": evaluate,
    "promote": promote,
}
