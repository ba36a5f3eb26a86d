"""Test-wide settings: telemetry off, every state folder under a temp dir, no progress bars."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import pytest

from components.offline import QUIET_ENV

_STATE = Path(tempfile.mkdtemp(prefix="synthmed-tests-"))
for key, value in {
    **QUIET_ENV,  # the CLI's telemetry switches: one list
    "PREFECT_HOME": str(_STATE / "prefect"),
    "DVC_SITE_CACHE_DIR": str(_STATE / "dvc-site-cache"),
    "SYNTHMED_PROGRESS": "0",
    "XDG_CACHE_HOME": str(_STATE / "cache"),
    "MPLCONFIGDIR": str(_STATE / "matplotlib"),
    "GIT_AUTHOR_NAME": "synthmed-tests",
    "GIT_AUTHOR_EMAIL": "tests@synthmed.invalid",
    "GIT_COMMITTER_NAME": "synthmed-tests",
    "GIT_COMMITTER_EMAIL": "tests@synthmed.invalid",
}.items():
    os.environ[key] = value
os.environ.pop("MLFLOW_TRACKING_URI", None)

REPO_ROOT = Path(__file__).resolve().parents[1]
ISIC_SAMPLES = REPO_ROOT / "data" / "samples" / "isic-uda1" / "images"


@pytest.fixture(scope="session")
def repo_root() -> Path:
    return REPO_ROOT


@pytest.fixture(scope="session")
def isic_samples() -> Path:
    """The embedded CC0 ISIC images (legacy layout: .jpg + .json)."""
    return ISIC_SAMPLES


@pytest.fixture(scope="session")
def _mlflow_template_db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An initialised, empty MLflow sqlite store: creating the schema takes seconds, a copy not."""
    from mlflow.tracking import MlflowClient

    db = tmp_path_factory.mktemp("mlflow-template") / "mlflow.db"
    MlflowClient(tracking_uri=f"sqlite:///{db}").search_experiments()
    return db


@pytest.fixture()
def mlflow_sqlite(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, _mlflow_template_db: Path
) -> str:
    """A fresh local MLflow store (sqlite + artifact folder under tmp_path), experiment "tests"."""
    import shutil

    import mlflow

    db = tmp_path / "mlflow.db"
    shutil.copy(_mlflow_template_db, db)
    uri = f"sqlite:///{db}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    mlflow.set_tracking_uri(uri)
    exp_id = mlflow.create_experiment("tests", artifact_location=(tmp_path / "artifacts").as_uri())
    mlflow.set_experiment(experiment_id=exp_id)
    yield uri
    while mlflow.active_run():
        mlflow.end_run()
