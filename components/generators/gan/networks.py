"""DCGAN-style generator and discriminator for any power-of-two image size (64, 128, ...).

G maps z (and, when conditional, a class label) to an image in [-1, 1] with transposed
convolutions that double the resolution from 4x4; D mirrors it with strided convolutions down to
4x4 and a 4x4 "valid" convolution to one score (plus a class head for AC-GAN). Widths follow
Radford et al. 2016: ``base_channels`` at the full-resolution end, doubling per halving, so
64 px reproduces the paper's 64-128-256-512 and 128 px adds one 1024-wide block.

How D is normalized is what separates the variants: BatchNorm for DCGAN, WGAN and AC-GAN;
layer normalization for WGAN-GP (its gradient penalty is per sample, which BatchNorm's mixing of
samples invalidates, Gulrajani et al. 2017); spectral normalization of every convolution and no
other normalization for SN-GAN (Miyato et al. 2018).
"""

from __future__ import annotations

from typing import Literal

import torch
from torch import nn
from torch.nn.utils import parametrize
from torch.nn.utils.parametrizations import spectral_norm

from components.errors import ConfigError

DNorm = Literal["batch", "layer", "spectral"]
SIZES = (16, 32, 64, 128, 256, 512)


def check_image_size(image_size: int) -> int:
    """Number of resolution doublings between 4x4 and ``image_size``; ConfigError if unsupported."""
    if image_size not in SIZES:
        known = ", ".join(map(str, SIZES))
        raise ConfigError(f"gan.image_size: {image_size} is not supported (one of {known})")
    return image_size.bit_length() - 3


def init_weights(module: nn.Module) -> None:
    """DCGAN initialisation: conv weights N(0, 0.02), norm scales N(1, 0.02), biases 0."""
    if parametrize.is_parametrized(module):
        return  # initialised before spectral norm wrapped it, so its power iteration is current
    if isinstance(module, (nn.Conv2d, nn.ConvTranspose2d)):
        nn.init.normal_(module.weight, 0.0, 0.02)
        if getattr(module, "bias", None) is not None:
            nn.init.zeros_(module.bias)
    elif isinstance(module, (nn.BatchNorm2d, nn.GroupNorm)):
        nn.init.normal_(module.weight, 1.0, 0.02)
        nn.init.zeros_(module.bias)


class ConvGenerator(nn.Module):
    """z (N, latent_dim) [+ labels (N,)] -> images (N, 3, S, S) in [-1, 1]."""

    def __init__(
        self, image_size: int, latent_dim: int, base_channels: int, num_classes: int = 0
    ) -> None:
        super().__init__()
        n_up = check_image_size(image_size)
        self.latent_dim = latent_dim
        # AC-GAN style conditioning (Odena et al.; as in PyTorch-GAN): the label embedding
        # scales z elementwise, so the conditional G has the same input width as the plain one.
        self.embed = nn.Embedding(num_classes, latent_dim) if num_classes else None
        width = base_channels * 2 ** (n_up - 1)
        layers: list[nn.Module] = [
            nn.ConvTranspose2d(latent_dim, width, 4, 1, 0, bias=False),
            nn.BatchNorm2d(width),
            nn.ReLU(True),
        ]
        for _ in range(n_up - 1):
            layers += [
                nn.ConvTranspose2d(width, width // 2, 4, 2, 1, bias=False),
                nn.BatchNorm2d(width // 2),
                nn.ReLU(True),
            ]
            width //= 2
        layers += [nn.ConvTranspose2d(width, 3, 4, 2, 1, bias=False), nn.Tanh()]
        self.net = nn.Sequential(*layers)
        self.apply(init_weights)
        if self.embed is not None:
            # N(0, 0.02) would shrink z fifty-fold; unit-scale embeddings keep z's scale.
            nn.init.normal_(self.embed.weight, 1.0, 0.02)

    def forward(self, z: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        if self.embed is not None:
            if labels is None:
                raise ValueError("this generator is conditional: labels are required")
            z = z * self.embed(labels)
        return self.net(z[:, :, None, None])


class ConvDiscriminator(nn.Module):
    """images (N, 3, S, S) -> (score (N,), class logits (N, num_classes) or None)."""

    def __init__(
        self, image_size: int, base_channels: int, norm: DNorm, num_classes: int = 0
    ) -> None:
        super().__init__()
        n_down = check_image_size(image_size)

        def conv(c_in: int, c_out: int, stride: int, pad: int) -> nn.Module:
            layer = nn.Conv2d(c_in, c_out, 4, stride, pad, bias=norm == "spectral")
            if norm != "spectral":
                return layer
            init_weights(layer)
            return spectral_norm(layer)

        def normalize(c: int) -> list[nn.Module]:
            if norm == "batch":
                return [nn.BatchNorm2d(c)]
            # GroupNorm with one group is layer norm over (C, H, W), per sample.
            return [nn.GroupNorm(1, c)] if norm == "layer" else []

        width = base_channels
        # No normalization on the first layer (Radford et al.): it would erase input statistics.
        layers: list[nn.Module] = [conv(3, width, 2, 1), nn.LeakyReLU(0.2, True)]
        for _ in range(n_down - 1):
            layers += [conv(width, width * 2, 2, 1), *normalize(width * 2), nn.LeakyReLU(0.2, True)]
            width *= 2
        self.features = nn.Sequential(*layers)
        self.score = conv(width, 1, 1, 0)
        self.classes = conv(width, num_classes, 1, 0) if num_classes else None
        self.apply(init_weights)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        h = self.features(x)
        logits = None if self.classes is None else self.classes(h).flatten(1)
        return self.score(h).flatten(), logits
