"""Expectations on the embedded demo data: what the demo and the tests rely on."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from components.config import load_config
from components.data import ingest, load_cache
from components.validation import validate_manifest

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def ingested(repo_root: Path, tmp_path_factory: pytest.TempPathFactory) -> dict:
    cfg = load_config(repo_root / "params.yaml", "demo")
    out = tmp_path_factory.mktemp("embedded")
    return {name: ingest(name, cfg, out / name) for name in ("lesions", "polyps")} | {"cfg": cfg}


def test_isic_samples_pass_validation_with_the_documented_balance(ingested: dict) -> None:
    result = validate_manifest(ingested["lesions"].manifest, ingested["cfg"].validation, "lesions")
    assert result.summary["quarantined"] == 0
    assert result.summary["class_balance"]["counts"] == {"benign": 192, "malignant": 83}


def test_isic_attribution_is_kept(repo_root: Path) -> None:
    text = (repo_root / "data/samples/isic-uda1/ATTRIBUTION.txt").read_text()
    assert "CC0" in text


def test_phantoms_are_valid_polyps_with_binary_masks(ingested: dict) -> None:
    result = validate_manifest(ingested["polyps"].manifest, ingested["cfg"].validation, "polyps")
    assert result.summary["quarantined"] == 0
    cache = load_cache(ingested["polyps"].path, 64)
    assert cache.masks is not None and set(np.unique(cache.masks)) == {0, 1}
    share = cache.masks.reshape(len(cache), -1).mean(axis=1)
    # A polyp covers a visible but minor part of the frame, as in Kvasir-SEG.
    assert (share > 0.02).all() and (share < 0.4).all()
