"""Where the pipeline's data lives on disk, and how the other parts read it.

Ingest writes ``<work_dir>/<profile>/ingest/<dataset>/`` (manifest, resized copies, uint8
caches); validate writes ``<work_dir>/<profile>/validate/<dataset>/`` (``dataset.csv`` with a
``split`` column, quarantine, reports). Every consumer (the train and evaluate stages, the
studies) reads validated images through :func:`load_split`, so they all see the same pixels.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import pandas as pd

from components.data.manifest import Dataset
from components.errors import DataError

if TYPE_CHECKING:
    from components.config import Config
    from components.imageset import ImageSet
    from components.tracking import DatasetRef


DATASETS: tuple[Dataset, ...] = ("lesions", "polyps")


def datasets(cfg: Config) -> list[Dataset]:
    """The datasets the pipeline ingests and validates (polyps can be switched off)."""
    return ["lesions", "polyps"] if cfg.data.polyps.enabled else ["lesions"]


def write_disabled(folder: Path, table: str) -> None:
    """A switched-off dataset's stage output: a folder whose table has a header and no rows."""
    from components.data.manifest import COLUMNS
    from components.io import atomic_dir

    with atomic_dir(folder) as tmp:
        header = [*COLUMNS, "split"] if table == "dataset.csv" else list(COLUMNS)
        (tmp / table).write_text(",".join(header) + "\n", encoding="utf-8")
        (tmp / "DISABLED").write_text("data.<dataset>.enabled is false\n", encoding="utf-8")


def ingest_dir(cfg: Config, dataset: str) -> Path:
    return cfg.stage_dir("ingest") / dataset


def validated_dir(cfg: Config, dataset: str) -> Path:
    return cfg.stage_dir("validate") / dataset


def validated_table(cfg: Config, dataset: str) -> pd.DataFrame:
    """The validated rows of ``dataset`` with their ``split``.

    Raises:
        DataError: validate has not run.
    """
    table = validated_dir(cfg, dataset) / "dataset.csv"
    if not table.is_file():
        raise DataError(f"{table}: missing; run the 'validate' stage first (synthmed validate)")
    return pd.read_csv(table, dtype=str, keep_default_na=False)


def validated_sha256(cfg: Config, dataset: str) -> str:
    """sha256 of the validated table: the data lineage tag of everything trained on it."""
    from components.io import sha256_file

    validated_table(cfg, dataset)  # a clear error when it is missing
    return sha256_file(validated_dir(cfg, dataset) / "dataset.csv")


def load_split(cfg: Config, dataset: str, split: str | list[str], size: int) -> ImageSet:
    """Validated images of one split (or several, in table order) at ``size`` px, from the
    uint8 cache built at ingestion."""
    from components.data.manifest import load_cache

    wanted = [split] if isinstance(split, str) else list(split)
    df = validated_table(cfg, dataset)
    ids = df.loc[df["split"].isin(wanted), "image_id"].tolist()
    return load_cache(ingest_dir(cfg, dataset), size, ids)


def split_ref(cfg: Config, dataset: str, split: str | list[str]) -> DatasetRef:
    """One split of the validated table as a run input: the table's path and sha256 (the run's
    ``data.manifest_sha256``), its columns and the split's row count; no image is read."""
    from components.tracking import DatasetRef

    wanted = [split] if isinstance(split, str) else list(split)
    df = validated_table(cfg, dataset)
    label = "+".join(wanted)
    return DatasetRef(
        name=f"{dataset}-{label}",
        source=str((validated_dir(cfg, dataset) / "dataset.csv").resolve()),
        digest=validated_sha256(cfg, dataset),
        columns=list(df.columns),
        rows=int(df["split"].isin(wanted).sum()),
        tags={"synthmed.dataset": dataset, "synthmed.split": label},
    )
