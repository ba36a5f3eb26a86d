"""Style transfer of synthetic RGB toward real images; masks are never touched.

SinGAN-Seg's samples get the look of real images by Gatys et al.'s neural style transfer: the
sample's pixels are optimized (Adam) so that VGG19 conv5_1 features stay those of the sample
(content) while the Gram matrices of conv1_1..conv5_1 approach those of a real image (style).
VGG19 is torchvision's architecture with weights loaded from a local file only; nothing is
downloaded. Without weights the fallback is Reinhard et al.'s color transfer (per-channel mean
and standard deviation matched in CIE Lab). Every result names the method that made it, so a
run records which one was used.
"""

from __future__ import annotations

import functools
from pathlib import Path

import numpy as np
import torch
from torch import nn

from components.config import StyleTransferConfig
from components.errors import ConfigError
from components.imageset import ImageSet
from components.runtime import Runtime
from components.train import IMAGENET_MEAN, IMAGENET_STD

GATYS = "gatys-vgg19"
REINHARD = "reinhard-lab"

CONTENT_LAYER = 28
"""Index of conv5_1 in torchvision's ``vgg19().features``."""
STYLE_LAYERS = (0, 5, 10, 19, 28)
"""conv1_1, conv2_1, conv3_1, conv4_1, conv5_1."""
BATCH = 8
"""Images optimized together (each has its own loss, so batching does not change results)."""


def method_for(cfg: StyleTransferConfig) -> str:
    """The method ``cfg`` asks for (auto: Gatys when VGG19 weights are given)."""
    if cfg.method == "auto":
        return GATYS if cfg.vgg19_weights else REINHARD
    if cfg.method == GATYS and not cfg.vgg19_weights:
        raise ConfigError("style_transfer.vgg19_weights: gatys-vgg19 needs a local VGG19 .pth")
    return cfg.method


@functools.lru_cache(maxsize=2)
def vgg19_features(path: str, device: str) -> nn.Module:
    """torchvision's VGG19 feature stack up to conv5_1, weights from the local ``path``.

    Accepts a full ``vgg19`` state_dict or one of its ``features`` only. Frozen, in eval mode.
    """
    from torchvision.models import vgg19

    if not Path(path).is_file():
        raise ConfigError(f"style_transfer.vgg19_weights: {path} not found")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 (pickle/zip errors have many types; one meaning)
        raise ConfigError(
            f"style_transfer.vgg19_weights: {path} is unreadable ({type(exc).__name__})"
        ) from None
    # Built on the meta device: the 140M-parameter random init would be overwritten anyway.
    with torch.device("meta"):
        features = vgg19(weights=None).features
    features = features.to_empty(device="cpu")
    if any(k.startswith("features.") for k in state):
        state = {
            k.removeprefix("features."): v for k, v in state.items() if k.startswith("features.")
        }
    try:
        features.load_state_dict(state)
    except RuntimeError:
        raise ConfigError(
            f"style_transfer.vgg19_weights: {path} is not a torchvision VGG19 state_dict"
        ) from None
    return features[: CONTENT_LAYER + 1].to(device).eval().requires_grad_(False)


def _features(net: nn.Module, x: torch.Tensor) -> dict[int, torch.Tensor]:
    """Conv outputs (before ReLU) at the style and content layers, fp32."""
    mean = x.new_tensor(IMAGENET_MEAN).view(1, 3, 1, 1)
    std = x.new_tensor(IMAGENET_STD).view(1, 3, 1, 1)
    out, h = {}, (x - mean) / std
    for i, layer in enumerate(net):
        h = layer(h)
        if i in STYLE_LAYERS:
            out[i] = h.float()
    return out


def _gram(f: torch.Tensor) -> torch.Tensor:
    n, c, h, w = f.shape
    f = f.reshape(n, c, h * w)
    return f @ f.transpose(1, 2) / (c * h * w)


def _gatys(
    content: torch.Tensor,
    style: torch.Tensor,
    cfg: StyleTransferConfig,
    net: nn.Module,
    runtime: Runtime,
) -> torch.Tensor:
    """Optimize N images (N x 3 x H x W in [0, 1]) from ``content`` toward ``style``."""
    with torch.no_grad(), runtime.autocast():
        target_content = _features(net, content)[CONTENT_LAYER]
        target_grams = {i: _gram(f) for i, f in _features(net, style).items()}
    x = content.clone().requires_grad_(True)
    opt = torch.optim.Adam([x], lr=cfg.lr)
    for _ in range(cfg.steps):
        with runtime.autocast():
            feats = _features(net, x)
        # Per-image means summed over images: each image's gradient is its own (batch-free).
        content_loss = ((feats[CONTENT_LAYER] - target_content) ** 2).flatten(1).mean(1)
        style_loss = sum(
            ((_gram(feats[i]) - g) ** 2).flatten(1).mean(1) for i, g in target_grams.items()
        )
        loss = cfg.content_weight * content_loss + cfg.style_weight * style_loss
        opt.zero_grad(set_to_none=True)
        loss.sum().backward()
        opt.step()
        with torch.no_grad():
            x.clamp_(0, 1)
    return x.detach()


# sRGB (D65) <-> CIE Lab, the standard formulas.
_RGB2XYZ = np.array(
    [[0.412453, 0.357580, 0.180423], [0.212671, 0.715160, 0.072169], [0.019334, 0.119193, 0.950227]]
)
_WHITE = np.array([0.950456, 1.0, 1.088754])


def rgb_to_lab(rgb: np.ndarray) -> np.ndarray:
    """uint8 ... x 3 sRGB -> float64 ... x 3 CIE Lab."""
    c = rgb.astype(np.float64) / 255.0
    lin = np.where(c > 0.04045, ((c + 0.055) / 1.055) ** 2.4, c / 12.92)
    xyz = lin @ _RGB2XYZ.T / _WHITE
    f = np.where(xyz > 0.008856, np.cbrt(xyz), 7.787 * xyz + 16 / 116)
    return np.stack(
        [116 * f[..., 1] - 16, 500 * (f[..., 0] - f[..., 1]), 200 * (f[..., 1] - f[..., 2])], -1
    )


def lab_to_rgb(lab: np.ndarray) -> np.ndarray:
    """Inverse of :func:`rgb_to_lab`, clipped to uint8."""
    fy = (lab[..., 0] + 16) / 116
    f = np.stack([fy + lab[..., 1] / 500, fy, fy - lab[..., 2] / 200], -1)
    xyz = np.where(f > 0.206893, f**3, (f - 16 / 116) / 7.787) * _WHITE
    lin = np.clip(xyz @ np.linalg.inv(_RGB2XYZ).T, 0, 1)
    c = np.where(lin > 0.0031308, 1.055 * lin ** (1 / 2.4) - 0.055, 12.92 * lin)
    return np.clip(np.round(c * 255), 0, 255).astype(np.uint8)


def reinhard(content_rgb: np.ndarray, style_rgb: np.ndarray) -> np.ndarray:
    """Reinhard color transfer: each Lab channel of ``content`` gets ``style``'s mean and std."""
    src, ref = rgb_to_lab(content_rgb), rgb_to_lab(style_rgb)
    mu_s, sd_s = src.reshape(-1, 3).mean(0), src.reshape(-1, 3).std(0)
    mu_r, sd_r = ref.reshape(-1, 3).mean(0), ref.reshape(-1, 3).std(0)
    return lab_to_rgb((src - mu_s) / np.maximum(sd_s, 1e-6) * sd_r + mu_r)


def _to_tensor(images: np.ndarray, device: torch.device) -> torch.Tensor:
    return torch.tensor(images, device=device).permute(0, 3, 1, 2).float() / 255


def _stylize(
    content: np.ndarray, style: np.ndarray, cfg: StyleTransferConfig, runtime: Runtime
) -> tuple[np.ndarray, str]:
    """N x H x W x 3 uint8 content and style (one style per content image) -> stylized, method."""
    method = method_for(cfg)
    if method == REINHARD:
        return np.stack([reinhard(c, s) for c, s in zip(content, style, strict=True)]), method
    net = vgg19_features(str(cfg.vgg19_weights), str(runtime.device))
    out = []
    for i in range(0, len(content), BATCH):
        x = _gatys(
            _to_tensor(content[i : i + BATCH], runtime.device),
            _to_tensor(style[i : i + BATCH], runtime.device),
            cfg,
            net,
            runtime,
        )
        out.append(
            (x * 255).round().clamp(0, 255).to(torch.uint8).permute(0, 2, 3, 1).cpu().numpy()
        )
    return np.concatenate(out), method


def style_transfer(
    content_rgb: np.ndarray, style_rgb: np.ndarray, cfg: StyleTransferConfig, runtime: Runtime
) -> tuple[np.ndarray, str]:
    """One H x W x 3 uint8 image restyled toward ``style_rgb`` (any size); returns (image, method)."""
    out, method = _stylize(content_rgb[None], style_rgb[None], cfg, runtime)
    return out[0], method


def stylize_set(
    samples: ImageSet, style_images: np.ndarray, cfg: StyleTransferConfig, runtime: Runtime
) -> tuple[ImageSet, str]:
    """Restyle every sample's RGB; masks, labels and ids are kept as they are.

    ``style_images``: one N x H' x W' x 3 uint8 style image per sample (e.g. the real image its
    SinGAN was trained on: ``SinganSeg.style_images``), or a single 1 x H' x W' x 3 for all.
    """
    if style_images.ndim != 4 or len(style_images) not in (1, len(samples)):
        raise ValueError(
            f"style_transfer: need 1 or {len(samples)} style images, got shape {style_images.shape}"
        )
    style = np.broadcast_to(style_images, (len(samples), *style_images.shape[1:]))
    images, method = _stylize(samples.images, style, cfg, runtime)
    return ImageSet(
        images=images, labels=samples.labels, masks=samples.masks, ids=samples.ids
    ), method
