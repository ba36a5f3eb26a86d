"""MLflow tracking: where runs go, what every run records, and the metric sink.

Training code never calls MLflow. It reports to a :class:`Reporter` (the stylegan2-ada
``training_stats.report`` idea): ``metric``, ``image`` and ``artifact``. :class:`MlflowReporter`
sends those to the active MLflow run, :class:`NullReporter` drops them (tests, benchmarks).

Every run started with :func:`start_run` records its inputs so a result can be traced back:
the full resolved config (as params and as ``config.yaml``), the git commit, the profile, the
stage, the Prefect flow run id when one drives it, and lineage tags the stage adds with
:func:`tag_lineage` (data manifest hash, DVC hash, generator version, synthetic set version).
"""

from __future__ import annotations

import contextlib
import functools
import io
import os
import subprocess
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import yaml

from components.config import Config, TrackingConfig, section_params

FLOW_RUN_ENV = "SYNTHMED_FLOW_RUN_ID"
"""Set by the Prefect flows for the processes they start (DVC stages); read into run tags."""


class Reporter(Protocol):
    """Where training code sends what it measures."""

    def metric(self, name: str, value: float, step: int | None = None) -> None: ...

    def image(self, name: str, image: np.ndarray, step: int | None = None) -> None:
        """``image``: HxWxC uint8."""

    def artifact(self, path: str | os.PathLike[str], subdir: str | None = None) -> None: ...


class NullReporter:
    """A reporter that keeps the last value of each metric and writes nothing."""

    def __init__(self) -> None:
        self.last: dict[str, float] = {}

    def metric(self, name: str, value: float, step: int | None = None) -> None:
        self.last[name] = float(value)

    def image(self, name: str, image: np.ndarray, step: int | None = None) -> None:
        return None

    def artifact(self, path: str | os.PathLike[str], subdir: str | None = None) -> None:
        return None


class MlflowReporter:
    """Sends reports to one MLflow run (by id, so it works from any thread)."""

    def __init__(self, run_id: str) -> None:
        from mlflow.tracking import MlflowClient

        self.run_id = run_id
        self.client = MlflowClient()
        self.last: dict[str, float] = {}

    def metric(self, name: str, value: float, step: int | None = None) -> None:
        self.last[name] = float(value)
        # Asynchronous: a synchronous call costs ~30 ms, longer than a GPU training step.
        self.client.log_metric(self.run_id, name, float(value), step=step or 0, synchronous=False)

    def image(self, name: str, image: np.ndarray, step: int | None = None) -> None:
        suffix = f"_step{step:07d}" if step is not None else ""
        self.client.log_image(self.run_id, image, artifact_file=f"images/{name}{suffix}.png")

    def artifact(self, path: str | os.PathLike[str], subdir: str | None = None) -> None:
        self.client.log_artifact(self.run_id, str(path), artifact_path=subdir)

    def figure(self, fig: Any, artifact_file: str) -> None:
        self.client.log_figure(self.run_id, fig, artifact_file)

    def text(self, text: str, artifact_file: str) -> None:
        self.client.log_text(self.run_id, text, artifact_file)

    def dict(self, obj: Mapping[str, Any], artifact_file: str) -> None:
        self.client.log_dict(self.run_id, dict(obj), artifact_file)


def tracking_uri(cfg: TrackingConfig, root: str | os.PathLike[str] = ".") -> str:
    """The MLflow tracking URI: MLFLOW_TRACKING_URI if set, else the config's, made absolute."""
    uri = os.environ.get("MLFLOW_TRACKING_URI") or cfg.tracking_uri
    if uri.startswith("sqlite:///") and not uri.startswith("sqlite:////"):
        db = Path(root).resolve() / uri[len("sqlite:///") :]
        db.parent.mkdir(parents=True, exist_ok=True)
        uri = f"sqlite:///{db}"
    return uri


def configure(cfg: TrackingConfig, root: str | os.PathLike[str] = ".") -> str:
    """Point MLflow at the configured store and make sure the experiment exists.

    Returns the experiment id. For a local store the experiment's artifacts go to
    ``artifact_location`` (``mlruns/artifacts``); a tracking server decides for itself.
    """
    os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
    import mlflow

    uri = tracking_uri(cfg, root)
    mlflow.set_tracking_uri(uri)
    exp = mlflow.get_experiment_by_name(cfg.experiment)
    if exp is not None:
        mlflow.set_experiment(experiment_id=exp.experiment_id)
        return str(exp.experiment_id)
    location = None
    if not uri.startswith(("http://", "https://", "databricks")):
        art = Path(cfg.artifact_location)
        if not art.is_absolute():
            art = Path(root).resolve() / art
        art.mkdir(parents=True, exist_ok=True)
        location = art.as_uri()
    try:
        exp_id = mlflow.create_experiment(cfg.experiment, artifact_location=location)
    except Exception:  # created concurrently by another process
        found = mlflow.get_experiment_by_name(cfg.experiment)
        if found is None:
            raise
        exp_id = found.experiment_id
    mlflow.set_experiment(experiment_id=exp_id)
    return str(exp_id)


@functools.lru_cache(maxsize=8)
def git_commit(root: str = ".") -> str:
    """HEAD's commit, with ``+dirty`` when tracked files have uncommitted changes."""
    try:
        sha = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True, check=True
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=root,
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return f"{sha}+dirty" if dirty else sha


def flow_run_id() -> str | None:
    """The Prefect flow run driving this process, if any (set by flows/ for subprocesses)."""
    return os.environ.get(FLOW_RUN_ENV) or os.environ.get("PREFECT__FLOW_RUN_ID") or None


def base_tags(cfg: Config, stage: str) -> dict[str, str]:
    tags = {
        "synthmed.stage": stage,
        "synthmed.profile": cfg.profile,
        "git.commit": git_commit(),
        "mlflow.source.git.commit": git_commit().removesuffix("+dirty"),
    }
    if run_id := flow_run_id():
        tags["prefect.flow_run_id"] = run_id
    return tags


@contextlib.contextmanager
def start_run(
    cfg: Config,
    stage: str,
    run_name: str | None = None,
    nested: bool = False,
    tags: Mapping[str, str] | None = None,
    log_config: bool = True,
) -> Iterator[MlflowReporter]:
    """Start an MLflow run for ``stage`` that records the config, commit and flow run.

    Yields a reporter bound to the run. Nested runs (``nested=True``) are children of the
    active run, e.g. one per experiment arm.
    """
    import mlflow

    if not nested:
        configure(cfg.tracking)
    all_tags = {**base_tags(cfg, stage), **(tags or {})}
    with mlflow.start_run(run_name=run_name or stage, nested=nested, tags=all_tags) as run:
        if log_config:
            mlflow.log_params(section_params(cfg))
            mlflow.log_text(
                yaml.safe_dump(cfg.model_dump(mode="json"), sort_keys=False), "config.yaml"
            )
        try:
            yield MlflowReporter(run.info.run_id)
        finally:
            mlflow.flush_async_logging()


def tag_lineage(reporter: MlflowReporter, **lineage: str | None) -> None:
    """Tag the run with lineage facts, e.g. ``tag_lineage(r, data_manifest_sha256=...)``.

    Keyword ``data_manifest_sha256`` becomes tag ``data.manifest_sha256`` (first ``_`` -> ``.``).
    """
    for key, value in lineage.items():
        if value is None:
            continue
        name = key.replace("_", ".", 1)
        reporter.client.set_tag(reporter.run_id, name, str(value))


def png_bytes(image: np.ndarray) -> bytes:
    """Encode an HxWxC (or HxW) uint8 array as PNG."""
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(image).save(buf, format="PNG")
    return buf.getvalue()
