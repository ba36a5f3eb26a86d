"""The UNet++ segmenter: hand-computed metrics, local encoder weights, and that training learns."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from components.config import PolypStudyConfig
from components.errors import ConfigError, DataError
from components.imageset import ImageSet
from components.runtime import make_runtime, torch_threads
from components.segmenter import (
    build_segmenter,
    evaluate_segmenter,
    predict,
    segmentation_metrics,
    train_segmenter,
)
from components.tracking import NullReporter

RUNTIME = make_runtime("cpu", "fp32", False)


def squares(n: int, size: int = 32, seed: int = 0) -> ImageSet:
    """An easy task: a bright square on a dark noisy background; the mask is the square."""
    rng = np.random.default_rng(seed)
    images = rng.normal(40, 8, (n, size, size, 3))
    masks = np.zeros((n, size, size), dtype=np.uint8)
    for i in range(n):
        s = int(rng.integers(size // 4, size // 2))
        y, x = rng.integers(0, size - s, 2)
        masks[i, y : y + s, x : x + s] = 1
    images[masks == 1] += 160
    return ImageSet(images.clip(0, 255).astype(np.uint8), masks=masks)


def test_metrics_match_hand_computed_values() -> None:
    target = np.zeros((2, 4, 4), dtype=np.uint8)
    target[0, :2, :2] = 1  # 4 polyp pixels in image 0, none in image 1
    probs = np.full((2, 4, 4), 0.1, dtype=np.float32)
    probs[0, 0, :2] = probs[0, 1, 0] = 0.9  # 3 hits
    probs[0, 3, 3] = 0.9  # 1 false positive; image 0 (1, 1) is the miss
    m = segmentation_metrics(probs, target, threshold=0.5)
    # Micro: tp 3, fp 1, fn 1, tn 11 + 16 over both images.
    assert m["iou"] == pytest.approx(3 / 5)
    assert m["f_score"] == pytest.approx(6 / 8)
    assert m["recall"] == pytest.approx(3 / 4)
    assert m["precision"] == pytest.approx(3 / 4)
    assert m["accuracy"] == pytest.approx(30 / 32)
    # Soft Dice over all pixels: intersection 3*0.9 + 0.1, probabilities 4*0.9 + 28*0.1, target 4.
    assert m["dice_loss"] == pytest.approx(1 - 2 * 2.8 / (6.4 + 4), rel=1e-5)


def test_threshold_is_inclusive_and_empty_prediction_scores_zero() -> None:
    target = np.ones((1, 2, 2), dtype=np.uint8)
    assert segmentation_metrics(np.full((1, 2, 2), 0.5), target)["iou"] == pytest.approx(1.0)
    empty = segmentation_metrics(np.zeros((1, 2, 2)), target)
    assert empty["iou"] == 0 and empty["recall"] == 0 and empty["dice_loss"] == pytest.approx(1)


def test_local_encoder_weights_are_loaded_and_bad_paths_are_one_line_errors(
    tmp_path: Path,
) -> None:
    cfg = PolypStudyConfig(encoder="resnet18")
    torch.manual_seed(0)
    source = build_segmenter(cfg)
    weights = tmp_path / "encoder.pth"
    torch.save(source.encoder.state_dict(), weights)
    torch.manual_seed(1)
    loaded = build_segmenter(cfg.model_copy(update={"encoder_weights_path": str(weights)}))
    for key, value in source.encoder.state_dict().items():
        assert torch.equal(value, loaded.encoder.state_dict()[key]), key
    with pytest.raises(ConfigError, match="encoder_weights_path: .*file not found"):
        build_segmenter(cfg.model_copy(update={"encoder_weights_path": str(tmp_path / "x.pth")}))
    torch.save({"conv1.weight": torch.zeros(1)}, weights)
    with pytest.raises(ConfigError, match="encoder_weights_path"):
        build_segmenter(cfg.model_copy(update={"encoder_weights_path": str(weights)}))


def test_training_needs_masks() -> None:
    cfg = PolypStudyConfig(image_size=32, epochs=1)
    no_masks = ImageSet(np.zeros((2, 32, 32, 3), dtype=np.uint8))
    with pytest.raises(DataError, match="without masks"):
        train_segmenter(no_masks, squares(2), cfg, RUNTIME, NullReporter(), seed=0)


@pytest.mark.slow
def test_short_training_lowers_dice_loss_and_keeps_best_val_epoch() -> None:
    cfg = PolypStudyConfig(encoder="mobilenet_v2", image_size=32, epochs=5, batch_size=8, lr=1e-2)
    train, val = squares(8, seed=0), squares(6, seed=1)
    reporter = NullReporter()
    with torch_threads(2):
        torch.manual_seed(0)
        before = evaluate_segmenter(build_segmenter(cfg), val, cfg, RUNTIME)
        trained = train_segmenter(train, val, cfg, RUNTIME, reporter, seed=0)
        after = evaluate_segmenter(trained.model, val, cfg, RUNTIME)
        probs = predict(trained.model, val.images, RUNTIME)
    # Few steps leave BatchNorm's running statistics rough, so held-out gains are modest; the
    # training loss must fall clearly and the selected model must beat the untrained one.
    losses = [h["train_loss"] for h in trained.history]
    assert losses[-1] < losses[0] - 0.2
    assert after["dice_loss"] < before["dice_loss"]
    # The returned weights are the best epoch's, not the last one's.
    best = max(trained.history, key=lambda h: h["val_iou"])
    assert trained.best_epoch == best["epoch"]
    assert after["iou"] == pytest.approx(best["val_iou"], abs=1e-6)
    assert reporter.last["best_epoch"] == trained.best_epoch
    assert probs.shape == (6, 32, 32) and 0 <= probs.min() and probs.max() <= 1
    assert segmentation_metrics(probs, val.masks)["iou"] == pytest.approx(after["iou"], abs=1e-6)
