"""Style transfer: both methods move color statistics toward the style image; masks stay."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from components.config import StyleTransferConfig
from components.errors import ConfigError
from components.imageset import ImageSet
from components.runtime import make_runtime, torch_threads
from components.style_transfer import (
    GATYS,
    REINHARD,
    lab_to_rgb,
    method_for,
    rgb_to_lab,
    style_transfer,
    stylize_set,
)

RUNTIME = make_runtime("cpu", "fp32", False)


@pytest.fixture(autouse=True)
def one_thread():
    with torch_threads(1):
        yield


def textured(color: tuple[int, int, int], n: int = 2, size: int = 32, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    base = np.array(color, dtype=np.float64) + rng.normal(0, 12, (n, size, size, 3))
    return base.clip(0, 255).astype(np.uint8)


def samples() -> ImageSet:
    masks = np.zeros((2, 32, 32), np.uint8)
    masks[:, 8:20, 10:24] = 1
    return ImageSet(textured((200, 90, 80)), masks=masks, ids=["a-s000", "a-s001"])


@pytest.fixture(scope="module")
def vgg_weights(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A torchvision VGG19 ``features`` state_dict with random (Kaiming) weights, as fp16."""
    from torchvision.models import vgg19

    with torch.device("meta"):
        features = vgg19(weights=None).features
    features = features.to_empty(device="cpu")
    gen = torch.Generator().manual_seed(0)
    for m in features.modules():
        if isinstance(m, nn.Conv2d):
            fan_out = m.out_channels * 9
            m.weight.data.normal_(0, (2 / fan_out) ** 0.5, generator=gen)
            m.bias.data.zero_()
    path = tmp_path_factory.mktemp("vgg") / "vgg19_features.pth"
    torch.save({k: v.half() for k, v in features.state_dict().items()}, path)
    return path


def mean_color_distance(images: np.ndarray, style: np.ndarray) -> float:
    return float(np.abs(images.reshape(-1, 3).mean(0) - style.reshape(-1, 3).mean(0)).sum())


def test_lab_round_trip_is_lossless_to_one_level():
    rgb = textured((30, 140, 220), n=1)[0]
    assert np.abs(lab_to_rgb(rgb_to_lab(rgb)).astype(int) - rgb).max() <= 1


def test_reinhard_matches_lab_statistics_and_keeps_masks():
    data, style = samples(), textured((60, 120, 200), n=1, seed=1)
    out, method = stylize_set(data, style, StyleTransferConfig(), RUNTIME)
    assert method == REINHARD
    assert out.masks is data.masks and out.ids == data.ids
    lab_out, lab_style = rgb_to_lab(out.images[0]), rgb_to_lab(style[0])
    np.testing.assert_allclose(
        lab_out.reshape(-1, 3).mean(0), lab_style.reshape(-1, 3).mean(0), atol=1.5
    )
    np.testing.assert_allclose(
        lab_out.reshape(-1, 3).std(0), lab_style.reshape(-1, 3).std(0), rtol=0.1, atol=0.5
    )


@pytest.mark.slow
def test_gatys_moves_colors_toward_the_style_image(vgg_weights: Path):
    data, style = samples(), textured((60, 120, 200), n=2, seed=1)
    cfg = StyleTransferConfig(vgg19_weights=str(vgg_weights), steps=15, lr=0.02)
    out, method = stylize_set(data, style, cfg, RUNTIME)
    assert method == GATYS
    assert np.array_equal(out.masks, data.masks)
    assert out.images.shape == data.images.shape and out.images.dtype == np.uint8
    assert mean_color_distance(out.images, style) < 0.8 * mean_color_distance(data.images, style)


def test_single_image_api_returns_the_method(vgg_weights: Path):
    content, style = textured((200, 90, 80), n=1)[0], textured((60, 120, 200), n=1, size=40)[0]
    img, method = style_transfer(
        content, style, StyleTransferConfig(vgg19_weights=str(vgg_weights), steps=2), RUNTIME
    )
    assert method == GATYS and img.shape == content.shape and img.dtype == np.uint8


def test_method_choice_and_missing_weights():
    assert method_for(StyleTransferConfig()) == REINHARD
    assert method_for(StyleTransferConfig(vgg19_weights="x.pth")) == GATYS
    with pytest.raises(ConfigError, match="style_transfer.vgg19_weights"):
        method_for(StyleTransferConfig(method="gatys-vgg19"))
    with pytest.raises(ConfigError, match="style_transfer.vgg19_weights: .*missing.pth not found"):
        style_transfer(
            textured((1, 2, 3), n=1)[0],
            textured((1, 2, 3), n=1)[0],
            StyleTransferConfig(vgg19_weights="/nonexistent/missing.pth"),
            RUNTIME,
        )
