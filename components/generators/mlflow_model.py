"""A trained generator as an MLflow pyfunc model (registered by :mod:`components.registry`).

The logged model holds the generator's weights file (what ``Generator.save`` wrote) as an artifact,
the ``components`` package as code, and the generator kind in its ``model_config``; loading it
needs no synthmed checkout.

``predict`` takes a DataFrame with one row per request:

- ``n`` (int): images to draw; ``seed`` (int): the same seed gives the same images;
- ``label`` (int, optional): 0 benign, 1 malignant for conditional generators; -1 or absent:
  the generator's default (uniform classes). Unconditional generators ignore it.

and returns a DataFrame with one row per image, in request order: ``request`` (row number of the
request), ``label`` (-1 when the generator gives none) and ``png`` (the image as base64 PNG, so
the output is JSON-safe for ``mlflow models serve``).
"""

from __future__ import annotations

import base64
from importlib.metadata import version
from pathlib import Path
from typing import Any

import mlflow
import numpy as np
import pandas as pd
from mlflow.models import ModelSignature
from mlflow.types.schema import ColSpec, Schema

ARTIFACT = "weights"
SIGNATURE = ModelSignature(
    inputs=Schema(
        [ColSpec("long", "n"), ColSpec("long", "seed"), ColSpec("long", "label", required=False)]
    ),
    outputs=Schema(
        [ColSpec("long", "request"), ColSpec("long", "label"), ColSpec("string", "png")]
    ),
)
_PACKAGES = ("torch", "numpy", "pandas", "pillow", "pydantic", "pyyaml", "mlflow")


def pip_requirements() -> list[str]:
    """What importing ``components.generators`` and sampling needs, pinned to this environment.

    Explicit, because MLflow's requirement inference imports the model and takes seconds.
    """
    return [f"{name}=={version(name).split('+')[0]}" for name in _PACKAGES]


class GeneratorModel(mlflow.pyfunc.PythonModel):
    """Samples from a saved generator; see the module docstring for input and output."""

    def load_context(self, context: Any) -> None:
        from components.generators.factory import load_generator
        from components.runtime import make_runtime

        self.generator = load_generator(Path(context.artifacts[ARTIFACT]), make_runtime())

    def predict(self, context: Any, model_input: pd.DataFrame, params: Any = None) -> pd.DataFrame:
        from components.imageset import png_bytes

        rows = []
        for i, request in enumerate(model_input.to_dict("records")):
            n, label = int(request["n"]), int(request.get("label", -1))
            labels = np.full(n, label, dtype=np.int64) if label >= 0 else None
            drawn = self.generator.sample(n, seed=int(request["seed"]), labels=labels)
            for j, image in enumerate(drawn.images):
                rows.append(
                    {
                        "request": i,
                        "label": -1 if drawn.labels is None else int(drawn.labels[j]),
                        "png": base64.b64encode(png_bytes(image)).decode("ascii"),
                    }
                )
        return pd.DataFrame(rows, columns=["request", "label", "png"])


def save_pyfunc(path: Path, weights: Path, kind: str, image_size: int) -> None:
    """Write the pyfunc model of the generator saved at ``weights`` into the folder ``path``."""
    import components

    mlflow.pyfunc.save_model(
        str(path),
        python_model=GeneratorModel(),
        artifacts={ARTIFACT: str(weights)},
        model_config={"kind": kind, "image_size": image_size},
        code_paths=[str(Path(components.__file__).parent)],
        signature=SIGNATURE,
        input_example=pd.DataFrame({"n": [2], "seed": [0], "label": [-1]}),
        pip_requirements=pip_requirements(),
        metadata={"kind": kind, "image_size": image_size},
    )
