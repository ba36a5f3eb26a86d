"""Behaviour of the lesion classifier: metrics, sampler, weights, augmentation and training."""

from __future__ import annotations

import io
import math

import numpy as np
import pytest
import torch

from components.classifier import (
    augmentation,
    balanced_sampler,
    build_classifier,
    classification_metrics,
    plot_confusion_matrix,
    plot_roc,
    predict_proba,
    rank_epoch,
    roc_auc,
    roc_curve,
    train_classifier,
)
from components.config import EvaluateConfig
from components.errors import ConfigError, DataError
from components.imageset import ImageSet
from components.runtime import make_runtime, torch_threads
from components.tracking import NullReporter
from components.train import image_tensor

CPU = make_runtime("cpu")


@pytest.fixture(autouse=True, scope="module")
def one_thread():  # type: ignore[no-untyped-def]
    """Tiny convolutions gain nothing from a second thread, and on a shared 2-core machine
    intra-op threads wait on each other: one thread ran these trainings ~10x faster."""
    with torch_threads(1):
        yield


def bright_vs_dark(n: int, n_malignant: int, seed: int, size: int = 32) -> ImageSet:
    """Malignant images bright, benign dark, with noise: separable by mean intensity."""
    rng = np.random.default_rng(seed)
    labels = np.zeros(n, dtype=np.int64)
    labels[rng.choice(n, n_malignant, replace=False)] = 1
    base = np.where(labels[:, None, None, None] == 1, 190.0, 60.0)
    images = np.clip(base + rng.normal(0, 25, (n, size, size, 3)), 0, 255).astype(np.uint8)
    return ImageSet(images, labels)


def small_cfg(**kw: object) -> EvaluateConfig:
    return EvaluateConfig(**{"image_size": 32, "epochs": 1, "batch_size": 8, **kw})


# -------------------------------------------------------------------------------- metrics


def test_metrics_match_hand_computed_confusion_matrix() -> None:
    y = np.array([1, 1, 1, 0, 0])
    p = np.array([0.9, 0.7, 0.2, 0.6, 0.1])
    m = classification_metrics(y, p, threshold=0.5)
    assert (m["tp"], m["fn"], m["fp"], m["tn"]) == (2, 1, 1, 1)
    assert m["accuracy"] == pytest.approx(3 / 5)
    assert m["sensitivity"] == pytest.approx(2 / 3)
    assert m["specificity"] == pytest.approx(1 / 2)
    assert m["balanced_accuracy"] == pytest.approx((2 / 3 + 1 / 2) / 2)
    assert m["f1"] == pytest.approx(2 / 3)
    # Positive-negative pairs ranked right: 0.9 and 0.7 beat both negatives, 0.2 beats one.
    assert m["roc_auc"] == pytest.approx(5 / 6)


def test_threshold_is_inclusive() -> None:
    m = classification_metrics(np.array([1, 0]), np.array([0.5, 0.49]), threshold=0.5)
    assert (m["tp"], m["tn"]) == (1, 1)


@pytest.mark.parametrize(
    ("p", "auc", "sens_spec"),
    [([0.9, 0.8, 0.2, 0.1], 1.0, 1.0), ([0.1, 0.2, 0.8, 0.9], 0.0, 0.0)],
    ids=["perfect", "inverted"],
)
def test_perfect_and_inverted_classifiers(p: list[float], auc: float, sens_spec: float) -> None:
    m = classification_metrics(np.array([1, 1, 0, 0]), np.array(p), threshold=0.5)
    assert m["roc_auc"] == auc
    assert m["sensitivity"] == m["specificity"] == m["accuracy"] == sens_spec


def test_single_class_gives_nan_auc_and_nan_sensitivity() -> None:
    m = classification_metrics(np.zeros(4, dtype=int), np.array([0.1, 0.6, 0.3, 0.2]), 0.5)
    assert math.isnan(m["roc_auc"])
    assert math.isnan(m["sensitivity"])
    assert m["specificity"] == pytest.approx(3 / 4)


def test_roc_auc_equals_pairwise_definition_with_ties() -> None:
    rng = np.random.default_rng(3)
    y = rng.integers(0, 2, 60)
    s = rng.integers(0, 5, 60) / 4  # few distinct values: many ties
    pos, neg = s[y == 1], s[y == 0]
    pairs = (pos[:, None] > neg[None, :]) + 0.5 * (pos[:, None] == neg[None, :])
    assert roc_auc(y, s) == pytest.approx(pairs.mean())


def test_roc_curve_runs_from_origin_to_corner_monotonically() -> None:
    fpr, tpr = roc_curve(np.array([1, 0, 1, 0, 1]), np.array([0.9, 0.8, 0.8, 0.3, 0.1]))
    assert (fpr[0], tpr[0], fpr[-1], tpr[-1]) == (0, 0, 1, 1)
    assert np.all(np.diff(fpr) >= 0) and np.all(np.diff(tpr) >= 0)
    assert len(fpr) == 5  # origin + one point per distinct score (0.8 is tied)


def test_plots_render_counts_and_curves() -> None:
    y, p = np.array([1, 1, 0, 0, 0]), np.array([0.9, 0.2, 0.7, 0.1, 0.3])
    fig = plot_confusion_matrix(y, p, threshold=0.5)
    texts = sorted(t.get_text() for t in fig.axes[0].texts)
    assert texts == ["1", "1", "1", "2"]  # tp, fn, fp, tn=2
    roc = plot_roc(y, {"real": p, "real+synthetic": 1 - p})
    assert len(roc.axes[0].get_lines()) == 3  # two arms + chance diagonal
    buf = io.BytesIO()
    roc.savefig(buf, format="png")
    assert buf.getvalue().startswith(b"\x89PNG")


# -------------------------------------------------------------------------------- data


def test_weighted_sampler_balances_an_imbalanced_set() -> None:
    labels = np.array([0] * 900 + [1] * 100)
    drawn = labels[list(balanced_sampler(labels, seed=0))]
    assert len(drawn) == 1000
    assert 0.44 < drawn.mean() < 0.56
    assert list(balanced_sampler(labels, seed=5)) == list(balanced_sampler(labels, seed=5))


def test_augmentation_keeps_shape_and_dtype_and_changes_pixels() -> None:
    torch.manual_seed(0)
    x = torch.from_numpy(np.random.default_rng(0).integers(0, 256, (3, 32, 32), dtype=np.uint8))
    aug = augmentation()
    outs = [aug(x) for _ in range(4)]
    assert all(o.shape == x.shape and o.dtype == torch.uint8 for o in outs)
    assert any(not torch.equal(o, x) for o in outs)


def test_image_tensor_resizes_only_when_needed() -> None:
    images = np.full((2, 40, 40, 3), 77, dtype=np.uint8)
    x = image_tensor(images, 32)
    assert x.shape == (2, 3, 32, 32) and x.dtype == torch.uint8
    assert int(x.min()) == int(x.max()) == 77  # a flat image stays flat at the same value
    same = image_tensor(images[:, :32, :32], 32)
    assert same.shape == (2, 3, 32, 32) and same.is_contiguous()


# -------------------------------------------------------------------------------- model


def test_missing_weights_path_is_a_config_error(tmp_path) -> None:
    missing = tmp_path / "nope.pth"
    with pytest.raises(ConfigError, match=r"evaluate\.weights_path: .*nope\.pth: file not found"):
        build_classifier(small_cfg(weights_path=str(missing)))


def test_weights_path_loads_backbone_and_drops_imagenet_head(tmp_path) -> None:
    from efficientnet_pytorch import EfficientNet

    imagenet = EfficientNet.from_name("efficientnet-b0")  # 1000-class head, like real weights
    path = tmp_path / "b0.pth"
    torch.save(imagenet.state_dict(), path)
    model = build_classifier(small_cfg(weights_path=str(path)))
    loaded = model.state_dict()
    for key in ("_conv_stem.weight", "_blocks.3._depthwise_conv.weight", "_bn1.bias"):
        assert torch.equal(loaded[key], imagenet.state_dict()[key])
    assert loaded["_fc.weight"].shape == (2, 1280)


def test_weights_of_another_model_are_rejected(tmp_path) -> None:
    from efficientnet_pytorch import EfficientNet

    path = tmp_path / "b1.pth"
    torch.save(EfficientNet.from_name("efficientnet-b1").state_dict(), path)
    with pytest.raises(ConfigError, match=r"evaluate\.weights_path: .*b1\.pth: "):
        build_classifier(small_cfg(weights_path=str(path)))


def test_partial_or_unreadable_weights_are_rejected(tmp_path) -> None:
    partial = tmp_path / "partial.pth"
    torch.save({"_conv_stem.weight": torch.zeros(32, 3, 3, 3)}, partial)
    with pytest.raises(ConfigError, match=r"partial\.pth: \d+ backbone tensors missing"):
        build_classifier(small_cfg(weights_path=str(partial)))
    garbage = tmp_path / "garbage.pth"
    garbage.write_bytes(b"not a checkpoint")
    with pytest.raises(ConfigError, match=r"garbage\.pth: not a loadable state_dict"):
        build_classifier(small_cfg(weights_path=str(garbage)))


def test_unknown_model_name_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match=r"^evaluate\.model: "):
        build_classifier(small_cfg(model="efficientnet-b99"))


def test_best_epoch_prefers_auc_then_lower_loss_and_ranks_nan_last() -> None:
    def better(auc: float, loss: float, best: tuple[float, float]) -> bool:
        key = rank_epoch({"val_roc_auc": auc, "val_loss": loss})
        return key > rank_epoch({"val_roc_auc": best[0], "val_loss": best[1]})

    assert better(0.9, 0.5, (0.8, 0.1))
    assert better(0.8, 0.2, (0.8, 0.3))
    assert not better(0.8, 0.4, (0.8, 0.3))
    assert not better(math.nan, 0.1, (0.6, 0.9))
    assert better(0.1, 5.0, (math.nan, 0.1))


def test_unlabelled_training_set_is_a_data_error() -> None:
    data = bright_vs_dark(8, 4, seed=0)
    with pytest.raises(DataError, match="training set"):
        train_classifier(ImageSet(data.images), data, small_cfg(), CPU, NullReporter(), 0)


def test_training_is_deterministic_for_a_seed_with_augmentation() -> None:
    # 17 images at batch 8: the last batch of one is dropped in training and recalibration.
    train, val = bright_vs_dark(17, 5, seed=0), bright_vs_dark(8, 4, seed=1)
    runs = [
        train_classifier(train, val, small_cfg(), CPU, NullReporter(), seed=7, augment=True)
        for _ in range(2)
    ]
    assert runs[0].history == runs[1].history
    a, b = (r.model.state_dict() for r in runs)
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert not runs[0].model.training


@pytest.mark.slow
def test_short_training_separates_bright_from_dark_images() -> None:
    # 64 px, not 32: at 32 px b0's last stages see 1x1 maps, where BatchNorm statistics are
    # too batch-dependent for a three-epoch run to rank reliably across seeds.
    train, val = bright_vs_dark(48, 12, 0, size=64), bright_vs_dark(24, 8, 1, size=64)
    reporter = NullReporter()
    cfg = small_cfg(image_size=64, epochs=3, batch_size=16)
    result = train_classifier(train, val, cfg, CPU, reporter, seed=0)

    assert [h["epoch"] for h in result.history] == [1, 2, 3]
    best = result.history[result.best_epoch - 1]
    assert best["val_roc_auc"] == max(h["val_roc_auc"] for h in result.history)
    steps = {name: [step for step, _ in points] for name, points in reporter.history.items()}
    assert steps == {
        **{k: [1, 2, 3] for k in ("train_loss", "val_loss", "val_roc_auc")},
        "best_epoch": [None],
    }

    p = predict_proba(result.model, val.images, CPU, batch_size=8, image_size=64)
    assert p.shape == (24,) and np.all((p >= 0) & (p <= 1))
    assert roc_auc(val.labels, p) > 0.9
    # The kept weights are the best epoch's: re-scoring gives the reported AUC.
    assert roc_auc(val.labels, p) == pytest.approx(best["val_roc_auc"])
