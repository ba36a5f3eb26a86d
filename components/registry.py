"""Logging models to MLflow runs, registering them, and promoting them in the model registry.

Classifiers, segmenters and encoders are logged as MLflow PyTorch models, generators as pyfunc
models (:mod:`components.generators.mlflow_model`), both by run id (no active run needed).

Every evaluated classifier becomes a new version of one registered model and gets the alias
``challenger``. The alias ``champion`` moves to it only when it beats the current champion on the
configured test metric by more than a margin. Aliases, not stages: stages are deprecated.

The numbers a decision needs are stored on the versions themselves, as tags ``metric.<name>``,
next to the lineage tags the caller passes (git commit, data manifest hash, synthetic set version,
Prefect flow run id). So a promotion compares against a champion trained in any earlier run,
without looking that run up.
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping
from dataclasses import dataclass
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import TYPE_CHECKING, Any

from components.errors import ConfigError, DataError

if TYPE_CHECKING:
    import numpy as np
    from torch import nn

    from components.config import GanConfig, PromoteConfig

CHAMPION = "champion"
CHALLENGER = "challenger"
METRIC_TAG = "metric."
"""Prefix of the version tags that hold test metrics (``metric.roc_auc`` ...)."""

_MODEL_PACKAGES = ("torch", "efficientnet-pytorch", "cloudpickle", "numpy")
"""What loading a pickled classifier needs; listed because inferring it takes ~8 s per log."""


def _pip_requirements(extra: tuple[str, ...] = ()) -> list[str]:
    reqs = []
    for pkg in (*_MODEL_PACKAGES, *extra):
        try:
            # "+cpu"/"+cu128" local versions do not exist on PyPI: pin the public release.
            reqs.append(f"{pkg}=={version(pkg).split('+')[0]}")
        except PackageNotFoundError:
            reqs.append(pkg)
    return reqs


def log_model(
    run_id: str,
    model: nn.Module,
    input_example: np.ndarray | None = None,
    extra_packages: tuple[str, ...] = (),
    name: str = "model",
) -> str:
    """Log a torch ``model`` (a classifier, segmenter or encoder) to run ``run_id`` as ``name``;
    return its model URI (``runs:/<run_id>/<name>``).

    ``extra_packages`` are pinned too, e.g. segmentation-models-pytorch for the segmenter.
    Pickle serialization: the default ``pt2`` export loads back as a GraphModule that cannot be
    fine-tuned. ``input_example`` (N,3,H,W float32, normalised) adds a signature when given.

    The model is saved locally and uploaded to the run by id: no MLflow active run is needed,
    so this works from a child run in any thread or worker.
    """
    import tempfile

    import mlflow
    from mlflow.tracking import MlflowClient

    with tempfile.TemporaryDirectory(prefix="synthmed-model-") as tmp:
        local = Path(tmp) / name
        mlflow.pytorch.save_model(
            model,
            str(local),
            serialization_format="pickle",
            input_example=input_example,
            pip_requirements=_pip_requirements(extra_packages),
        )
        MlflowClient().log_artifacts(run_id, str(local), artifact_path=name)
    return f"runs:/{run_id}/{name}"


GENERATOR_TAG = "synthmed.type"
"""Registered-model tag that marks a generator (value ``generator``): what the zoo lists."""


def register_generator(
    run_id: str,
    weights: str | os.PathLike[str],
    kind: str,
    image_size: int,
    registered_name: str,
    tags: Mapping[str, Any],
    description: str | None = None,
) -> int:
    """Log the generator saved at ``weights`` as a pyfunc model of run ``run_id`` and register
    it as a new version of ``registered_name``.

    The version is tagged with ``tags`` (config digest, data manifest sha256, git commit...)
    plus ``generator.kind``, ``generator.image_size``, ``generator.modality`` and
    ``generator.output``; the registered model is tagged as a generator of that kind (what
    ``synthmed models`` searches) and described. ``description`` describes the version (what it
    was trained on). Returns the new version number.
    """
    import tempfile

    import mlflow
    from mlflow.tracking import MlflowClient

    from components.generators.base import get_generator, read_state
    from components.generators.mlflow_model import save_pyfunc
    from components.generators.per_class import PerClassGenerator

    cls = get_generator(kind)  # an unknown kind fails here, with the known kinds, not at serving
    path = Path(weights)
    if not path.is_file():
        raise DataError(f"{path}: generator weights not found")
    output = "image+label" if PerClassGenerator.is_bundle(read_state(path)) else cls.output
    with tempfile.TemporaryDirectory(prefix="synthmed-generator-") as tmp:
        local = Path(tmp) / "generator"
        save_pyfunc(local, path, kind, image_size)
        MlflowClient().log_artifacts(run_id, str(local), artifact_path="generator")
    facts = {
        "generator.kind": kind,
        "generator.image_size": image_size,
        "generator.modality": cls.modality,
        "generator.output": output,
    }
    all_tags = {**facts, **tags}
    registered = mlflow.register_model(
        f"runs:/{run_id}/generator", registered_name, tags={k: str(v) for k, v in all_tags.items()}
    )
    client = _client()
    paper = ((cls.__doc__ or "").strip().splitlines() or [""])[0]
    client.update_registered_model(
        registered_name,
        description=f"synthmed generator '{kind}' ({paper}): {cls.modality}, {output}, "
        f"{image_size} px. Each version is one training run; its tags hold the lineage (git "
        "commit, config digest, training data manifest sha256) and the figures of the latest "
        "dataset card published from it (card.*). Sample with `synthmed sample "
        f"{registered_name}@<alias> -n 100 --out DIR` or as an MLflow pyfunc.",
    )
    for key, value in {GENERATOR_TAG: "generator", **facts}.items():
        client.set_registered_model_tag(registered_name, key, str(value))
    if description:
        client.update_model_version(registered_name, str(registered.version), description=description)
    return int(registered.version)


def register_lesion_generator(
    gan: GanConfig,
    run_id: str,
    weights: Path,
    data_hash: str,
    config_digest: str,
    train_images: int | None = None,
) -> tuple[str, int]:
    """Register trained GAN weights as a new version of ``synthmed-<kind>-<size>`` (one
    registered model per GAN kind and size), tagged with the commit, data and config."""
    from components.tracking import git_commit

    name = gan.registered_model.format(kind=gan.kind, image_size=gan.image_size)
    seen = f"{train_images} real training images" if train_images else "the real training split"
    version = register_generator(
        run_id,
        weights,
        kind=gan.kind,
        image_size=gan.image_size,
        registered_name=name,
        tags={
            "git.commit": git_commit(),
            "data.manifest_sha256": data_hash,
            "config.digest": config_digest,
        },
        description=f"{gan.kind} at {gan.image_size} px, {gan.steps} steps, trained on {seen} "
        f"of the validated lesion table (sha256 {data_hash[:12]}), config {config_digest}.",
    )
    return name, version


def tag_model_version(name: str, version: str | int, tags: Mapping[str, Any]) -> None:
    """Set ``tags`` on version ``version`` of ``name`` (None values are left out)."""
    client = _client()
    for key, value in tags.items():
        if value is not None:
            client.set_model_version_tag(name, str(version), key, str(value))


def describe(
    name: str, version: str | int, version_text: str, model_text: str | None = None
) -> None:
    """Describe version ``version`` of ``name`` (and, with ``model_text``, the model itself):
    what it is, what it was trained on, its metrics, as the registry UI shows them."""
    client = _client()
    client.update_model_version(name, str(version), description=version_text)
    if model_text is not None:
        client.update_registered_model(name, description=model_text)


def metrics_text(metrics: Mapping[str, float]) -> str:
    """``roc_auc=0.812, f1=0.640`` for a description."""
    return ", ".join(f"{k}={float(v):.4f}" for k, v in sorted(metrics.items()))


def best_arm(arms: Mapping[str, Mapping[str, float]], cfg: PromoteConfig) -> str:
    """The arm whose ``cfg.metric`` is best (NaN ranks last; ties keep the first arm)."""
    sign = 1.0 if cfg.greater_is_better else -1.0

    def score(arm: str) -> float:
        value = arms[arm].get(cfg.metric, math.nan)
        return -math.inf if math.isnan(value) else sign * value

    return max(arms, key=score)


@dataclass(frozen=True)
class PromotionResult:
    """What :func:`promote` registered and decided."""

    name: str
    version: str
    champion_version: str
    """The champion after the decision: ``version`` when promoted, else the old one."""
    promoted: bool
    reason: str
    previous_champion_value: float | None
    """The old champion's value of the deciding metric; None when there was no champion."""


def _client() -> Any:
    from mlflow.tracking import MlflowClient

    return MlflowClient()


def _metric_tags(metrics: dict[str, float]) -> dict[str, str]:
    return {f"{METRIC_TAG}{k}": repr(float(v)) for k, v in metrics.items()}


def _read_metrics(tags: dict[str, str]) -> dict[str, float]:
    return {k[len(METRIC_TAG) :]: float(v) for k, v in tags.items() if k.startswith(METRIC_TAG)}


def _beats(new: float, old: float, cfg: PromoteConfig) -> bool:
    """True when ``new`` is better than ``old`` by strictly more than ``cfg.margin``."""
    if math.isnan(new):
        return False
    if math.isnan(old):
        return True
    gain = new - old if cfg.greater_is_better else old - new
    return gain > cfg.margin


def _decide(
    value: float, old_version: str | None, old_value: float | None, cfg: PromoteConfig
) -> tuple[bool, str]:
    """Whether the challenger becomes champion, and why, in one line."""
    m = cfg.metric
    if old_version is None:
        return True, f"first version: champion by default ({m}={value:.4f})"
    if old_value is None:
        return True, f"champion v{old_version} has no {m} tag: replaced ({m}={value:.4f})"
    better = "higher" if cfg.greater_is_better else "lower"
    verdict = f"{m} {value:.4f} vs champion v{old_version} {old_value:.4f}"
    if _beats(value, old_value, cfg):
        return True, f"{verdict}: {better} by more than the margin {cfg.margin:g}"
    return False, f"{verdict}: not {better} by more than the margin {cfg.margin:g}"


def promote(
    model_uri: str, metrics: dict[str, float], cfg: PromoteConfig, tags: dict[str, str]
) -> PromotionResult:
    """Register ``model_uri`` as a new version; make it champion if it beats the current one.

    The version is tagged with ``tags`` and with every metric (``metric.<name>``) and gets the
    alias ``challenger``. The first version of a model becomes champion unconditionally.

    Raises:
        ConfigError: ``cfg.metric`` is not among ``metrics``.
    """
    import mlflow

    if cfg.metric not in metrics:
        known = ", ".join(sorted(metrics)) or "none"
        raise ConfigError(f"promote.metric: '{cfg.metric}' was not measured (metrics: {known})")
    name = cfg.registered_model
    client = _client()
    # Read the champion before registering: the new version must not compete with itself.
    old = champion(name)
    mv = mlflow.register_model(
        model_uri, name, tags={**{k: str(v) for k, v in tags.items()}, **_metric_tags(metrics)}
    )
    new_version = str(mv.version)
    client.set_registered_model_alias(name, CHALLENGER, new_version)

    old_version = None if old is None else str(old["version"])
    old_value = None if old is None else old["metrics"].get(cfg.metric)
    promoted, reason = _decide(float(metrics[cfg.metric]), old_version, old_value, cfg)
    if promoted:
        client.set_registered_model_alias(name, CHAMPION, new_version)
    return PromotionResult(
        name=name,
        version=new_version,
        champion_version=new_version if promoted else str(old_version),
        promoted=promoted,
        reason=reason,
        previous_champion_value=old_value,
    )


def champion(name: str) -> dict[str, Any] | None:
    """The champion of registered model ``name``: version, run_id, metrics and other tags.

    None when the model is not registered yet or has no champion.
    """
    from mlflow.exceptions import MlflowException
    from mlflow.protos.databricks_pb2 import RESOURCE_DOES_NOT_EXIST, ErrorCode

    client = _client()
    # Via the model's alias map: a missing alias and a missing model raise different errors
    # (and codes differ between stores), while an absent key is unambiguous.
    try:
        aliases = client.get_registered_model(name).aliases
    except MlflowException as exc:
        if exc.error_code == ErrorCode.Name(RESOURCE_DOES_NOT_EXIST):
            return None
        raise
    if CHAMPION not in aliases:
        return None
    mv = client.get_model_version(name, str(aliases[CHAMPION]))
    tags = dict(mv.tags)
    return {
        "name": name,
        "version": str(mv.version),
        "run_id": mv.run_id,
        "metrics": _read_metrics(tags),
        "tags": {k: v for k, v in tags.items() if not k.startswith(METRIC_TAG)},
    }
