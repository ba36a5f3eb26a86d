"""Logging classifiers to MLflow and promoting them in the model registry.

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
from dataclasses import dataclass
from importlib.metadata import PackageNotFoundError, version
from typing import TYPE_CHECKING, Any

from components.errors import ConfigError

if TYPE_CHECKING:
    import numpy as np
    from torch import nn

    from components.config import PromoteConfig

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


def log_classifier(
    model: nn.Module,
    input_example: np.ndarray | None = None,
    extra_packages: tuple[str, ...] = (),
) -> str:
    """Log ``model`` to the active MLflow run as ``model``; return its model URI.

    ``extra_packages`` are pinned too, e.g. segmentation-models-pytorch for the segmenter.

    Pickle serialization: the default ``pt2`` export loads back as a GraphModule that cannot be
    fine-tuned. ``input_example`` (N,3,H,W float32, normalised) adds a signature when given.

    Raises:
        RuntimeError: no MLflow run is active (a bug in the calling stage).
    """
    import mlflow

    if mlflow.active_run() is None:
        raise RuntimeError("log_classifier needs an active MLflow run (use tracking.start_run)")
    info = mlflow.pytorch.log_model(
        model,
        name="model",
        serialization_format="pickle",
        input_example=input_example,
        pip_requirements=_pip_requirements(extra_packages),
    )
    return str(info.model_uri)


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
