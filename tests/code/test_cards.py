"""Dataset cards, their metrics and the licence facts they start from, on tiny made-up sets."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest

from components import cards
from components.config import load_config
from components.data.licences import source_licence, spdx
from components.data.sources import LocalSource
from components.imageset import ImageSet
from components.metrics.precision_recall import prdc_metrics
from components.tracking import DatasetRef, NullReporter

ROOT = Path(__file__).resolve().parents[2]


def _polyps(n: int, seed: int) -> ImageSet:
    rng = np.random.default_rng(seed)
    masks = np.zeros((n, 16, 16), dtype=np.uint8)
    masks[:, 4:12, 4:12] = 1
    return ImageSet(rng.integers(0, 256, (n, 16, 16, 3), dtype=np.uint8), masks=masks,
                    ids=[f"p{i}" for i in range(n)])  # fmt: skip


def _facts(samples: ImageSet, train: ImageSet, test: ImageSet) -> cards.CardFacts:
    cfg = load_config(ROOT / "params.yaml", "demo", overrides={"metrics": {"kid_subsets": 5}})
    feats = cards.Features("pixels4", *(
        d.images.reshape(len(d), -1)[:, :48].astype(np.float64) / 255 for d in (samples, train, test)))  # fmt: skip
    training = {"dataset": "polyps", "source": "data/polyps", "formats": ["kvasir"],
                "splits": ["train", "val"], "n_images": len(train), "manifest_sha256": "ab" * 32,
                "licences": [{"dataset": "polyps", "license": "CC0-1.0", "attribution": "phantoms",
                              "images": len(train)}]}  # fmt: skip
    return cards.CardFacts(
        generator=cards.GeneratorFacts("singan-seg", "synthmed-singan-seg-16", "3", "cfg123", 42),
        training=training,
        quality=cards.assess(feats, cfg, "real pool (6 images)", "real test (4 images)"),
        reference_stats=cards.image_statistics(train),
    )


def test_card_is_complete_offline_and_byte_identical_when_written_again(tmp_path: Path) -> None:
    samples, facts = _polyps(8, 0), _facts(_polyps(8, 0), _polyps(6, 1), _polyps(4, 2))
    first = cards.write_card(tmp_path / "a", "singan-seg-16-demo-12345678", samples, facts)
    cards.write_card(tmp_path / "b", "singan-seg-16-demo-12345678", samples, facts)
    for name in (*cards.CARD_FILES, cards.GRID_FILE):
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes(), name
    assert json.loads((tmp_path / "a" / "card.json").read_text()) == json.loads(json.dumps(first))
    assert first["set"]["output"] == "image+mask" and first["memorization"]["verdict"] in {"pass", "fail"}
    assert first["statistics"]["synthetic"]["masks"]["single_component_share"] == 1.0
    html = (tmp_path / "a" / "card.html").read_text()
    assert not re.search(r"https?://|<script|<link|@import", html)
    # The grid shows each mask's outline in green.
    from PIL import Image

    grid = np.asarray(Image.open(tmp_path / "a" / cards.GRID_FILE))
    assert ((grid == (0, 255, 0)).all(axis=-1)).sum() == 8 * 28  # 8 images, 28 outline pixels each


def test_a_failed_memorization_check_is_said_in_the_limitations() -> None:
    train = _polyps(6, 1)
    copies = ImageSet(np.repeat(train.images, 2, axis=0), masks=np.repeat(train.masks, 2, axis=0))
    card = cards.build_card("copies", copies, _facts(copies, train, _polyps(4, 2)))
    assert card["memorization"]["verdict"] == "fail" and card["memorization"]["memorized_share"] == 1.0
    assert any("FAILED the memorization check" in line for line in card["limitations"])


def test_set_licence_is_the_most_restrictive_source_licence() -> None:
    def of(*licences: str) -> str:
        return cards.set_licence([{"license": lic} for lic in licences])

    assert of("CC0-1.0", "CC0-1.0").startswith("CC0-1.0")
    assert of("CC0-1.0", "CC-BY-NC-4.0", "CC-BY-4.0").startswith("CC-BY-NC-4.0")
    assert of("CC0-1.0", "not recorded").startswith("unknown")


def test_prdc_of_a_set_against_itself_and_against_a_far_one() -> None:
    real = np.random.default_rng(0).normal(size=(40, 8))
    same = prdc_metrics(real, real, nearest_k=3)
    assert same["precision"] == same["recall"] == same["coverage"] == 1.0
    far = prdc_metrics(real, real + 100.0, nearest_k=3)
    assert far["precision"] == far["recall"] == far["coverage"] == 0.0
    assert prdc_metrics(real[:4], real[:4], nearest_k=5)["prdc_k"] == 2.0  # capped at n - 2


def test_licence_files_beside_a_source_are_read_and_card_files_are_not_data(tmp_path: Path) -> None:
    assert spdx((ROOT / "data/samples/isic-uda1/LICENSE.txt").read_text()) == "CC0-1.0"
    assert spdx("Creative Commons Attribution-NonCommercial 4.0 International") == "CC-BY-NC-4.0"
    images = tmp_path / "set" / "images"
    images.mkdir(parents=True)
    (images / "ISIC_0000001.jpg").write_bytes(b"x")
    (images / "card.json").write_text("{}")
    (images / "card_samples.png").write_bytes(b"x")
    (tmp_path / "set" / "LICENSE.txt").write_text("CC0 1.0 Universal\n")
    (tmp_path / "set" / "ATTRIBUTION.txt").write_text("\nSomeone, 2026\n")
    source = LocalSource(str(images))
    assert source.keys() == ["ISIC_0000001.jpg"]
    assert source_licence(source, source.keys()) == ("CC0-1.0", "Someone, 2026")


def test_null_reporter_records_inputs() -> None:
    rep = NullReporter()
    ref = DatasetRef("lesions-train", "/data/dataset.csv", "ab" * 32, ("image_id",), 10)
    rep.input(ref, "training")
    assert rep.inputs == [(ref, "training")]


def test_model_references_that_are_not_one_fail_in_one_line() -> None:
    from components.errors import ConfigError
    from components.zoo import resolve

    with pytest.raises(ConfigError, match="not a model reference"):
        resolve("models:/a/b/c")
