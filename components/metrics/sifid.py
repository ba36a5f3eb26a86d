"""SIFID: the single-image FID of SinGAN (Shaham et al. 2019), on the project's offline Inception.

FID compares two *sets* of images through one 2048-d vector per image. A single-image GAN has
one real image, so SIFID compares the *internal* statistics of two images instead: each spatial
position of an early Inception feature map is one sample, a Gaussian is fitted to the positions
of the real image and to those of the generated one, and the Frechet distance between the two
Gaussians is the SIFID of that generated image. Reported values are the mean over samples.

Layer: the output of the first max-pool of the FID Inception-v3 (``pool0``, 64 channels, after
the three stem convs), the layer SinGAN's published SIFID code uses (pytorch-fid's 64-d block);
its receptive field is small, so it measures patch statistics, which is what a single-image GAN
learns. Images are fed at their own size (no resize to 299, as in SinGAN's code), RGB only (the
mask channel is not an image), with the FID protocol's scaling ``(x - 128) / 128``. Values from
this TorchScript differ from SinGAN's pytorch-fid weights in absolute terms; they compare
between synthmed runs and between the two SinGAN-Seg implementations measured here.
"""

from __future__ import annotations

import numpy as np
import torch

from components.errors import DataError
from components.metrics.fid import _plain_torchscript, fid

LAYER = "pool0"
"""The Inception layer whose positions are SIFID's samples."""


def _stem(net: torch.jit.ScriptModule) -> list[torch.nn.Module]:
    """The Inception's layers up to and including :data:`LAYER`."""
    layers = net.net.layers if hasattr(net, "net") else net.layers
    out = []
    for name, layer in layers.named_children():
        out.append(layer)
        if name == LAYER:
            return out
    raise DataError(f"sifid: the Inception network has no layer {LAYER!r}")


@torch.inference_mode()
def position_features(net: torch.jit.ScriptModule, images: np.ndarray) -> list[np.ndarray]:
    """Per image (N x H x W x 3 uint8), its :data:`LAYER` features, one row per position."""
    stem = _stem(net)
    out = []
    for img in images:
        x = torch.from_numpy(np.ascontiguousarray(img)).permute(2, 0, 1)[None].float()
        x = (x - 128) / 128
        with _plain_torchscript():
            for layer in stem:
                x = layer(x)
        out.append(x[0].flatten(1).T.double().numpy())
    return out


def sifid(net: torch.jit.ScriptModule, real: np.ndarray, fakes: np.ndarray) -> float:
    """Mean SIFID of ``fakes`` (N x H x W x 3 uint8) against one ``real`` (H x W x 3 uint8)."""
    (feat_real,) = position_features(net, real[None])
    return float(np.mean([fid(feat_real, feat) for feat in position_features(net, fakes)]))
