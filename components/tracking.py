"""Tracking: a Reporter that collects what a run measures, and where it goes.

Components never call MLflow to log. They report to a :class:`Reporter` (the stylegan2-ada
``training_stats`` idea): metrics, images, figures, artifacts, text, dicts, tags, params, input
datasets, and child runs. Two sinks implement all of it:

- :class:`MlflowReporter` sends everything to one MLflow run *by id* through ``MlflowClient``.
  Nothing uses MLflow's fluent active-run stack, which is per thread and per process, so a
  reporter (or its run id) can be handed to a Prefect task in another thread or a Ray worker in
  another process, and ``child()`` nests runs the same way everywhere.
- :class:`NullReporter` keeps everything in memory and writes nothing (tests, benchmarks,
  runs without tracking); tests read back what was reported.

:func:`start_run` opens a top-level run that records what a result needs to be traced back: the
resolved config (params and ``config.yaml``), the git commit, the profile and stage, and the
Prefect flow run when one drives it. A run that ends with an exception is marked FAILED, an
interrupted one (Ctrl-C, SIGTERM) KILLED: no run stays RUNNING because its process died politely.
"""

from __future__ import annotations

import contextlib
import functools
import os
import subprocess
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import yaml

from components.config import Config, TrackingConfig, section_params

FLOW_RUN_ENV = "SYNTHMED_FLOW_RUN_ID"
"""Set by the Prefect flows for the processes they start; read into run tags."""
STAGE_TAG = "synthmed.stage"
PROFILE_TAG = "synthmed.profile"
EXPERIMENT_KIND_TAG = "mlflow.experimentKind"
"""MLflow 3's experiment kind: its UI opens a ``custom_model_development`` experiment in the
model-training view (runs, metrics, models) instead of the GenAI one (traces)."""
EXPERIMENT_KIND = "custom_model_development"


@dataclass(frozen=True)
class DatasetRef:
    """A dataset a run reads, described without loading it: what MLflow's Datasets section shows.

    ``source`` is where it lives (a manifest's path or URI, a synthetic set's folder), ``digest``
    its content hash (the validated table's sha256, a set's content sha256; MLflow keeps 36
    characters, the full one goes to the ``synthmed.sha256`` input tag), ``columns`` the schema of
    its table, ``rows`` how many records it has, ``tags`` more facts (split, DVC md5...).
    """

    name: str
    source: str
    digest: str
    columns: Sequence[str] = ()
    rows: int | None = None
    tags: Mapping[str, str] = field(default_factory=dict)


class Reporter(Protocol):
    """Where components send what they measure and make. Every method is cheap to call."""

    @property
    def run_id(self) -> str | None:
        """The MLflow run behind this reporter; None when nothing is tracked."""

    def metric(self, name: str, value: float, step: int | None = None) -> None: ...

    def metrics(self, values: Mapping[str, float], step: int | None = None) -> None: ...

    def image(self, name: str, image: np.ndarray, step: int | None = None) -> None:
        """``image``: H x W x C uint8."""

    def figure(self, fig: Any, artifact_file: str) -> None:
        """A matplotlib Figure, saved as ``artifact_file``."""

    def artifact(self, path: str | os.PathLike[str], subdir: str | None = None) -> None:
        """A file or a folder (its contents) under ``subdir``."""

    def text(self, text: str, artifact_file: str) -> None: ...

    def dict(self, obj: Mapping[str, Any], artifact_file: str) -> None: ...

    def tag(self, key: str, value: Any) -> None:
        """A tag; ``None`` values are skipped (a missing fact is not the string "None")."""

    def tags(self, values: Mapping[str, Any]) -> None: ...

    def params(self, values: Mapping[str, Any]) -> None: ...

    def input(self, dataset: DatasetRef, context: str) -> None:
        """A dataset the run reads (``context``: training, validation, testing, reference...)."""

    def child(
        self, name: str, tags: Mapping[str, Any] | None = None
    ) -> contextlib.AbstractContextManager[Reporter]:
        """A nested run (one experiment arm, one fold...), ended when the block ends."""


class NullReporter:
    """Collects every report in memory; writes nothing.

    ``last`` holds the last value of each metric, ``history`` every (step, value), and children
    are kept by name, so tests can assert what a component reported.
    """

    def __init__(self, name: str = "", tags: Mapping[str, Any] | None = None) -> None:
        self.name = name
        self.last: dict[str, float] = {}
        self.history: dict[str, list[tuple[int | None, float]]] = {}
        self.tag_values: dict[str, str] = {str(k): str(v) for k, v in (tags or {}).items()}
        self.param_values: dict[str, str] = {}
        self.files: list[str] = []
        self.inputs: list[tuple[DatasetRef, str]] = []
        self.children: dict[str, NullReporter] = {}

    @property
    def run_id(self) -> str | None:
        return None

    def metric(self, name: str, value: float, step: int | None = None) -> None:
        self.last[name] = float(value)
        self.history.setdefault(name, []).append((step, float(value)))

    def metrics(self, values: Mapping[str, float], step: int | None = None) -> None:
        for name, value in values.items():
            self.metric(name, value, step)

    def image(self, name: str, image: np.ndarray, step: int | None = None) -> None:
        self.files.append(_image_file(name, step))

    def figure(self, fig: Any, artifact_file: str) -> None:
        self.files.append(artifact_file)

    def artifact(self, path: str | os.PathLike[str], subdir: str | None = None) -> None:
        self.files.append(f"{subdir}/{Path(path).name}" if subdir else Path(path).name)

    def text(self, text: str, artifact_file: str) -> None:
        self.files.append(artifact_file)

    def dict(self, obj: Mapping[str, Any], artifact_file: str) -> None:
        self.files.append(artifact_file)

    def tag(self, key: str, value: Any) -> None:
        if value is not None:
            self.tag_values[key] = str(value)

    def tags(self, values: Mapping[str, Any]) -> None:
        for key, value in values.items():
            self.tag(key, value)

    def params(self, values: Mapping[str, Any]) -> None:
        self.param_values.update({k: str(v) for k, v in values.items()})

    def input(self, dataset: DatasetRef, context: str) -> None:
        self.inputs.append((dataset, context))

    @contextlib.contextmanager
    def child(self, name: str, tags: Mapping[str, Any] | None = None) -> Iterator[NullReporter]:
        kid = NullReporter(name, tags)
        self.children[name] = kid
        yield kid


class MlflowReporter:
    """Sends reports to one MLflow run, by id (from any thread or process)."""

    def __init__(self, run_id: str) -> None:
        from mlflow.tracking import MlflowClient

        self._run_id = run_id
        self.client = MlflowClient()
        self.last: dict[str, float] = {}

    @property
    def run_id(self) -> str:
        return self._run_id

    def metric(self, name: str, value: float, step: int | None = None) -> None:
        self.last[name] = float(value)
        # Asynchronous: a synchronous call costs ~30 ms, longer than a GPU training step.
        self.client.log_metric(self._run_id, name, float(value), step=step or 0, synchronous=False)

    def metrics(self, values: Mapping[str, float], step: int | None = None) -> None:
        for name, value in values.items():
            self.metric(name, value, step)

    def image(self, name: str, image: np.ndarray, step: int | None = None) -> None:
        self.client.log_image(self._run_id, image, artifact_file=_image_file(name, step))

    def figure(self, fig: Any, artifact_file: str) -> None:
        self.client.log_figure(self._run_id, fig, artifact_file)

    def artifact(self, path: str | os.PathLike[str], subdir: str | None = None) -> None:
        if Path(path).is_dir():
            self.client.log_artifacts(self._run_id, str(path), artifact_path=subdir)
        else:
            self.client.log_artifact(self._run_id, str(path), artifact_path=subdir)

    def text(self, text: str, artifact_file: str) -> None:
        self.client.log_text(self._run_id, text, artifact_file)

    def dict(self, obj: Mapping[str, Any], artifact_file: str) -> None:
        self.client.log_dict(self._run_id, dict(obj), artifact_file)

    def tag(self, key: str, value: Any) -> None:
        if value is not None:
            self.client.set_tag(self._run_id, key, str(value))

    def tags(self, values: Mapping[str, Any]) -> None:
        from mlflow.entities import RunTag

        batch = [RunTag(k, str(v)) for k, v in values.items() if v is not None]
        if batch:
            self.client.log_batch(self._run_id, tags=batch)

    def params(self, values: Mapping[str, Any]) -> None:
        from mlflow.entities import Param

        items = [Param(k, str(v)) for k, v in values.items()]
        for i in range(0, len(items), 100):  # the store's batch limit
            self.client.log_batch(self._run_id, params=items[i : i + 100])

    def input(self, dataset: DatasetRef, context: str) -> None:
        from mlflow.entities import DatasetInput, InputTag

        tags = {"mlflow.data.context": context, "synthmed.sha256": dataset.digest, **dataset.tags}
        if dataset.rows is not None:
            tags["synthmed.rows"] = str(dataset.rows)
        entity = _meta_dataset(dataset)._to_mlflow_entity()
        self.client.log_inputs(
            self._run_id,
            datasets=[DatasetInput(entity, [InputTag(k, str(v)) for k, v in tags.items()])],
        )

    @contextlib.contextmanager
    def child(
        self, name: str, tags: Mapping[str, Any] | None = None
    ) -> Iterator[MlflowReporter]:
        parent = self.client.get_run(self._run_id)
        inherited = {
            k: v
            for k, v in parent.data.tags.items()
            if k in (STAGE_TAG, PROFILE_TAG, "git.commit", "prefect.flow_run_id")
        }
        all_tags = {**inherited, **{k: str(v) for k, v in (tags or {}).items() if v is not None}}
        all_tags["mlflow.parentRunId"] = self._run_id
        with _run(parent.info.experiment_id, name, all_tags) as run_id:
            yield MlflowReporter(run_id)


def _meta_dataset(dataset: DatasetRef) -> Any:
    """An MLflow MetaDataset: name, source, digest and schema, no data (images stay on disk)."""
    import warnings

    from mlflow.data.dataset_source_registry import resolve_dataset_source
    from mlflow.data.meta_dataset import MetaDataset
    from mlflow.types import ColSpec, DataType, Schema

    with warnings.catch_warnings():
        # A local path matches MLflow's "local" source type twice (plain and file://); it warns.
        warnings.simplefilter("ignore")
        source = resolve_dataset_source(dataset.source)
    columns = [ColSpec(DataType.string, c) for c in dataset.columns]
    schema = Schema(columns) if columns else None
    return MetaDataset(source, name=dataset.name, digest=dataset.digest[:36], schema=schema)


def log_inputs(reporter: Reporter, inputs: Sequence[tuple[DatasetRef, str]]) -> None:
    """Every ``(dataset, context)`` of ``inputs`` as an input of ``reporter``'s run."""
    for dataset, context in inputs:
        reporter.input(dataset, context)


def _image_file(name: str, step: int | None) -> str:
    suffix = f"_step{step:07d}" if step is not None else ""
    return f"images/{name}{suffix}.png"


@contextlib.contextmanager
def _run(experiment_id: str, name: str, tags: Mapping[str, str]) -> Iterator[str]:
    """Create a run, yield its id, and end it FINISHED, FAILED (error) or KILLED (interrupt)."""
    import mlflow
    from mlflow.tracking import MlflowClient

    client = MlflowClient()
    run = client.create_run(experiment_id, tags={"mlflow.runName": name, **tags}, run_name=name)
    status = "FINISHED"
    try:
        yield run.info.run_id
    except (KeyboardInterrupt, SystemExit):
        status = "KILLED"
        raise
    except BaseException:
        status = "FAILED"
        raise
    finally:
        with contextlib.suppress(Exception):
            mlflow.flush_async_logging()
        client.set_terminated(run.info.run_id, status)


def reporter_for(run_id: str | None) -> Reporter:
    """The reporter of an existing run (e.g. a study's parent run, in a task); Null when None."""
    return NullReporter() if run_id is None else MlflowReporter(run_id)


# --------------------------------------------------------------------------------------------
# where runs go


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
        if exp.tags.get(EXPERIMENT_KIND_TAG) is None:  # made before synthmed set the kind
            mlflow.MlflowClient().set_experiment_tag(
                exp.experiment_id, EXPERIMENT_KIND_TAG, EXPERIMENT_KIND
            )
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
        exp_id = mlflow.create_experiment(
            cfg.experiment,
            artifact_location=location,
            tags={EXPERIMENT_KIND_TAG: EXPERIMENT_KIND},
        )
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
        STAGE_TAG: stage,
        PROFILE_TAG: cfg.profile,
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
    tags: Mapping[str, str] | None = None,
    log_config: bool = True,
) -> Iterator[MlflowReporter]:
    """Start a top-level MLflow run for ``stage`` that records the config, commit and flow run.

    Yields a reporter bound to the run; nested runs come from its ``child()``.
    """
    exp_id = configure(cfg.tracking)
    with _run(exp_id, run_name or stage, {**base_tags(cfg, stage), **(tags or {})}) as run_id:
        rep = MlflowReporter(run_id)
        if log_config:
            rep.params(section_params(cfg))
            rep.text(yaml.safe_dump(cfg.model_dump(mode="json"), sort_keys=False), "config.yaml")
        yield rep


def lineage_tags(**lineage: str | None) -> dict[str, str]:
    """Lineage facts as tags: ``data_manifest_sha256=...`` becomes ``data.manifest_sha256``
    (the first ``_`` turns into ``.``); None values are left out."""
    return {k.replace("_", ".", 1): str(v) for k, v in lineage.items() if v is not None}
