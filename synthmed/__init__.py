"""synthmed's public Python API: the same behaviour as the command line, without printing.

    from synthmed import sample, models
    drawn = sample("synthmed-acgan-64@champion", n=100, out="synthetic/", label="malignant")
    loader = torch.utils.data.DataLoader(drawn.dataset, batch_size=32)

Importing this package does nothing else: no I/O, no environment change, no heavy import
(torch, MLflow and DVC load on first use of a function).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from pathlib import Path

    from components.cards import CardFacts
    from components.config import Config
    from components.reproduce import Reproduction
    from components.zoo import Sampled

__all__ = ["load_config", "models", "reproduce", "sample", "write_card"]


def sample(
    model: str,
    n: int = 100,
    out: str | Path | None = None,
    label: str | None = None,
    seed: int = 0,
    tracking_uri: str | None = None,
) -> Sampled:
    """Draw ``n`` images from a registered generator (``NAME``, ``NAME@alias``, ``NAME/VERSION``).

    With ``out``, they are written there as ``synthmed sample`` writes them (ISIC legacy or
    Kvasir-SEG, with a dataset card). The result has ``.images`` (an ImageSet), ``.dataset`` (a
    torch ``Dataset`` of ``(image, label or mask)``), ``.path`` and ``.card``. The registry is
    ``tracking_uri``, else MLFLOW_TRACKING_URI, else the one in ./params.yaml.
    """
    from components import zoo

    zoo.connect(tracking_uri)
    return zoo.sample(model, n, out, label=label, seed=seed)


def models(
    modality: str | None = None,
    output: str | None = None,
    kind: str | None = None,
    rank_by: str | None = None,
    tracking_uri: str | None = None,
) -> list[dict[str, Any]]:
    """The registered generators with their metadata and card figures, as ``synthmed models``
    lists them (filtered by ``modality``/``output``/``kind``, ranked by ``rank_by``)."""
    from components import zoo

    zoo.connect(tracking_uri)
    return zoo.list_generators(modality, output, kind, rank_by)


def reproduce(model: str, root: str | Path = ".", tracking_uri: str | None = None) -> Reproduction:
    """Rebuild a registered classifier from its lineage (see ``synthmed reproduce``)."""
    from components import reproduce as rebuild
    from components import zoo

    zoo.connect(tracking_uri, params=f"{root}/params.yaml")
    return rebuild.reproduce(model, root)


def load_config(path: str | Path = "params.yaml", profile: str | None = None) -> Config:
    """The resolved configuration of ``profile`` in ``path`` (see ``synthmed config``)."""
    from components.config import load_config as load

    return load(path, profile)


def write_card(folder: str | Path, name: str, samples: Any, facts: CardFacts) -> dict[str, Any]:
    """Write a dataset card (CARD.md, card.html, card.json) for ``samples`` into ``folder``."""
    from pathlib import Path

    from components.cards import write_card as write

    return write(Path(folder), name, samples, facts)
