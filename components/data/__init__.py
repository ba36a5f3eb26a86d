"""Raw data in: ingestion of ISIC lesions and polyp images, phantoms, rebalancing and splits.

``ingest`` (manifest.py) reads a :class:`~components.data.sources.Source` through a layout reader
(isic.py, polyps.py) and writes the manifest and caches that every later stage reads with
``read_manifest`` and ``load_cache``. ``phantoms.py`` makes polyp-like demo data in the Kvasir-SEG
layout; ``splits.py`` subsets and splits manifests without leaking a patient across splits.
"""

from components.data.manifest import (
    COLUMNS,
    IngestResult,
    ingest,
    load_cache,
    manifest_sha256,
    read_manifest,
)
from components.data.phantoms import write_phantoms
from components.data.sources import Source, open_source
from components.data.splits import assign_splits, kfold, rebalance

__all__ = [
    "COLUMNS",
    "IngestResult",
    "Source",
    "assign_splits",
    "ingest",
    "kfold",
    "load_cache",
    "manifest_sha256",
    "open_source",
    "read_manifest",
    "rebalance",
    "write_phantoms",
]
