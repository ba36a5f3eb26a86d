"""A trained GAN logged as a pyfunc, registered with lineage tags, loaded back and sampled."""

from __future__ import annotations

import base64
import io
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from components.config import GanConfig
from components.errors import ConfigError
from components.generators import get_generator
from components.generators.mlflow_model import pip_requirements
from components.registry import register_generator
from components.runtime import make_runtime, torch_threads

CPU = make_runtime("cpu")


@pytest.fixture(autouse=True)
def one_thread() -> Iterator[None]:
    with torch_threads(1):
        yield


def _decode(png_b64: str) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(base64.b64decode(png_b64))).convert("RGB"))


@pytest.mark.slow
def test_registered_generator_loads_as_pyfunc_and_samples(
    mlflow_sqlite: str, tmp_path: Path
) -> None:
    import mlflow
    from mlflow.tracking import MlflowClient

    cfg = GanConfig(kind="acgan", image_size=32, base_channels=8, latent_dim=16)
    gan = get_generator("acgan")(cfg, seed=0, runtime=CPU)
    weights = tmp_path / "generator.pt"
    gan.save(weights)
    exp = mlflow.get_experiment_by_name("tests")
    run_id = MlflowClient().create_run(exp.experiment_id).info.run_id  # by id: no active run
    tags = {"config.digest": "abc123", "data.manifest_sha256": "f" * 64, "git.commit": "deadbeef"}
    version = register_generator(run_id, weights, "acgan", 32, "synthmed-acgan-32", tags)
    assert version == 1
    mv = MlflowClient().get_model_version("synthmed-acgan-32", "1")
    assert mv.run_id == run_id
    assert {
        **tags,
        "generator.kind": "acgan",
        "generator.image_size": "32",
    }.items() <= mv.tags.items()

    model = mlflow.pyfunc.load_model("models:/synthmed-acgan-32/1")
    out = model.predict(pd.DataFrame({"n": [3, 2], "seed": [5, 6], "label": [1, -1]}))
    assert list(out.columns) == ["request", "label", "png"]
    assert out["request"].tolist() == [0, 0, 0, 1, 1]
    assert out["label"].tolist()[:3] == [1, 1, 1]
    images = np.stack([_decode(s) for s in out["png"]])
    expected = gan.sample(3, seed=5, labels=np.ones(3, dtype=np.int64)).images
    assert np.array_equal(images[:3], expected)  # PNG is lossless: the very same pixels


def test_register_refuses_an_unknown_kind_before_logging(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="known"):
        register_generator("run", tmp_path / "g.pt", "nope", 64, "name", {})


def test_pip_requirements_are_pinned_without_local_version_suffixes() -> None:
    reqs = pip_requirements()
    assert any(r.startswith("torch==") for r in reqs)
    assert all("==" in r and "+" not in r for r in reqs)
