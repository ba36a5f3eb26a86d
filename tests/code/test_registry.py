"""Champion/challenger promotion against a real MLflow sqlite store."""

from __future__ import annotations

import math

import mlflow
import numpy as np
import pytest
import torch
from mlflow.tracking import MlflowClient

from components.config import EvaluateConfig, PromoteConfig
from components.errors import ConfigError
from components.registry import champion, log_model, promote

LINEAGE = {
    "git.commit": "abc123",
    "data.manifest_sha256": "f" * 64,
    "synthetic.set_version": "v3",
    "prefect.flow_run_id": "run-1",
}


@pytest.fixture()
def model_uri(mlflow_sqlite: str) -> str:
    """A small logged model; every promotion registers it again as a new version."""
    return log_model(_run_id(), torch.nn.Linear(4, 2))


def aliases(name: str) -> dict[str, str]:
    return {k: str(v) for k, v in MlflowClient().get_registered_model(name).aliases.items()}


def test_first_version_becomes_champion_with_tags(model_uri: str) -> None:
    cfg = PromoteConfig(registered_model="lesions")
    result = promote(model_uri, {"roc_auc": 0.8, "sensitivity": 0.7}, cfg, LINEAGE)
    assert (result.version, result.champion_version, result.promoted) == ("1", "1", True)
    assert result.previous_champion_value is None
    assert aliases("lesions") == {"champion": "1", "challenger": "1"}
    tags = MlflowClient().get_model_version("lesions", "1").tags
    assert {k: tags[k] for k in LINEAGE} == LINEAGE
    assert float(tags["metric.roc_auc"]) == 0.8
    best = champion("lesions")
    assert best is not None and best["version"] == "1"
    assert best["metrics"] == {"roc_auc": 0.8, "sensitivity": 0.7}
    assert best["tags"]["git.commit"] == "abc123" and best["run_id"]


def test_champion_moves_only_when_beaten_by_more_than_the_margin(model_uri: str) -> None:
    cfg = PromoteConfig(registered_model="lesions", margin=0.01)
    promote(model_uri, {"roc_auc": 0.80}, cfg, LINEAGE)

    worse = promote(model_uri, {"roc_auc": 0.70}, cfg, LINEAGE)
    assert (worse.promoted, worse.champion_version) == (False, "1")
    assert worse.previous_champion_value == 0.80
    assert aliases("lesions") == {"champion": "1", "challenger": "2"}

    within = promote(model_uri, {"roc_auc": 0.805}, cfg, LINEAGE)
    assert not within.promoted and "margin" in within.reason
    assert aliases("lesions") == {"champion": "1", "challenger": "3"}

    better = promote(model_uri, {"roc_auc": 0.85}, cfg, LINEAGE)
    assert (better.promoted, better.champion_version) == (True, "4")
    assert aliases("lesions") == {"champion": "4", "challenger": "4"}
    # The old champion's value comes from its version tags, so later runs compare against 0.85.
    assert promote(model_uri, {"roc_auc": 0.855}, cfg, LINEAGE).previous_champion_value == 0.85


def test_lower_is_better_metrics_promote_downwards(model_uri: str) -> None:
    cfg = PromoteConfig(registered_model="lesions", metric="val_loss", greater_is_better=False)
    promote(model_uri, {"val_loss": 0.5}, cfg, LINEAGE)
    assert not promote(model_uri, {"val_loss": 0.6}, cfg, LINEAGE).promoted
    assert promote(model_uri, {"val_loss": 0.4}, cfg, LINEAGE).promoted


def test_nan_metric_never_displaces_a_champion(model_uri: str) -> None:
    cfg = PromoteConfig(registered_model="lesions")
    promote(model_uri, {"roc_auc": 0.6}, cfg, LINEAGE)
    result = promote(model_uri, {"roc_auc": math.nan}, cfg, LINEAGE)
    assert not result.promoted and champion("lesions")["version"] == "1"


def test_unmeasured_metric_is_a_config_error_and_registers_nothing(model_uri: str) -> None:
    cfg = PromoteConfig(registered_model="lesions", metric="auprc")
    with pytest.raises(ConfigError, match=r"^promote\.metric: 'auprc' was not measured"):
        promote(model_uri, {"roc_auc": 0.9}, cfg, LINEAGE)
    assert champion("lesions") is None  # not even registered


def _run_id() -> str:
    exp = mlflow.get_experiment_by_name("tests")
    return MlflowClient().create_run(exp.experiment_id).info.run_id


def test_log_model_logs_to_the_named_run_without_an_active_run(mlflow_sqlite: str) -> None:
    run_id = _run_id()
    assert mlflow.active_run() is None
    uri = log_model(run_id, torch.nn.Linear(2, 2), input_example=np.zeros((1, 2), np.float32))
    assert uri == f"runs:/{run_id}/model"
    names = {f.path for f in MlflowClient().list_artifacts(run_id, "model")}
    assert "model/MLmodel" in names
    from mlflow.models import get_model_info

    assert get_model_info(uri).signature is not None  # from the input example


@pytest.mark.slow
def test_champion_classifier_loads_back_and_can_be_fine_tuned(mlflow_sqlite: str) -> None:
    from components.classifier import build_classifier

    torch.manual_seed(0)
    model = build_classifier(EvaluateConfig(image_size=32)).eval()
    uri = log_model(_run_id(), model)
    promote(uri, {"roc_auc": 0.9}, PromoteConfig(registered_model="lesions"), LINEAGE)

    loaded = mlflow.pytorch.load_model("models:/lesions@champion")
    x = torch.rand(2, 3, 32, 32)
    with torch.no_grad():
        assert torch.allclose(loaded.eval()(x), model(x))
    loaded.train()  # pickle format: an nn.Module, not a frozen pt2 GraphModule
    assert loaded.training and any(p.requires_grad for p in loaded.parameters())
