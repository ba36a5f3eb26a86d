"""Per-scale generator and patch discriminator of SinGAN, for one model or K stacked models.

Both nets are the original's (``GeneratorConcatSkip2CleanAdd`` and ``WDiscriminator``): a
3x3 conv + BatchNorm + LeakyReLU(0.2) head, ``num_layer - 2`` such body blocks and a 3x3 conv
tail, all ``nfc`` wide, no padding inside (the generator zero-pads its input once by
``num_layer`` px, the discriminator scores valid patches only).

K independent models run as one net with grouped convolutions: model k owns output channels
``k*C:(k+1)*C`` of every layer and sees only its own input channels, so a forward over a
1 x (K*C) x H x W tensor is K separate forwards. BatchNorm over K*C channels with batch 1
normalizes each channel on its own, which is exactly K per-model BatchNorms. A stacked
state_dict is the K single-model state_dicts concatenated along dim 0 (:func:`stack_states`).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from components.config import SinganConfig

KERNEL = 3
"""Kernel size of every conv (the original's ``ker_size``)."""


def nfc_at(cfg: SinganConfig, scale: int) -> int:
    """Width of scale ``scale``'s nets: doubles every 4 scales, capped (original ``train``)."""
    return min(cfg.nfc * 2 ** (scale // 4), cfg.nfc_max)


def _block(cin: int, cout: int, k: int) -> nn.Sequential:
    # No conv bias before BatchNorm (the original has one): BN cancels it, so its exact
    # gradient is zero and it only moved by rounding noise that Adam scales up to +-lr per
    # step, which made results depend on the conv algorithm (K stacked vs one by one).
    return nn.Sequential(
        nn.Conv2d(cin * k, cout * k, KERNEL, groups=k, bias=False),
        nn.BatchNorm2d(cout * k),
        nn.LeakyReLU(0.2),
    )


def _body(channels: int, nfc: int, num_layer: int, k: int) -> list[nn.Module]:
    return [_block(channels, nfc, k)] + [_block(nfc, nfc, k) for _ in range(num_layer - 2)]


class ScaleGenerator(nn.Module):
    """G_n(x, prev) = tanh(convs(pad(x))) + prev, with x = noise_amp * z + prev."""

    def __init__(self, channels: int, nfc: int, num_layer: int, k: int = 1) -> None:
        super().__init__()
        self.k, self.pad = k, (KERNEL - 1) * num_layer // 2
        self.net = nn.Sequential(
            *_body(channels, nfc, num_layer, k),
            nn.Conv2d(nfc * k, channels * k, KERNEL, groups=k),
            nn.Tanh(),
        )

    def forward(self, x: torch.Tensor, prev: torch.Tensor) -> torch.Tensor:
        # Padding x once equals the original's separate zero-padding of noise and image
        # (both pads are zeros), and the residual adds the unpadded prev (its centre crop).
        return self.net(F.pad(x, [self.pad] * 4)) + prev


class PatchDiscriminator(nn.Module):
    """WGAN critic: one score per (receptive-field) patch, 1 x K x (H-10) x (W-10) for K models."""

    def __init__(self, channels: int, nfc: int, num_layer: int, k: int = 1) -> None:
        super().__init__()
        self.k = k
        self.net = nn.Sequential(
            *_body(channels, nfc, num_layer, k), nn.Conv2d(nfc * k, k, KERNEL, groups=k)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


def build(
    kind: str, channels: int, nfc: int, num_layer: int, k: int, device: torch.device
) -> nn.Module:
    """An uninitialized ``kind`` ("G" or "D") net on ``device`` (load a state_dict into it)."""
    cls = ScaleGenerator if kind == "G" else PatchDiscriminator
    # Built on the meta device: no memory, no draw from the global RNG; weights come from
    # fresh_state or a checkpoint.
    with torch.device("meta"):
        net = cls(channels, nfc, num_layer, k)
    return net.to_empty(device=device)


@torch.no_grad()
def fresh_state(
    kind: str, channels: int, nfc: int, num_layer: int, gen: torch.Generator
) -> dict[str, torch.Tensor]:
    """A newly initialized single-model state_dict, drawn only from ``gen``.

    The original's ``weights_init``: conv weights N(0, 0.02), BatchNorm weights N(1, 0.02),
    BatchNorm biases 0; the tail conv's bias keeps PyTorch's default U(+-1/sqrt(fan_in)).
    """
    net = build(kind, channels, nfc, num_layer, 1, torch.device("cpu"))
    for m in net.modules():
        if isinstance(m, nn.Conv2d):
            m.weight.normal_(0.0, 0.02, generator=gen)
            if m.bias is not None:
                bound = 1 / math.sqrt(m.weight[0].numel())
                m.bias.uniform_(-bound, bound, generator=gen)
        elif isinstance(m, nn.BatchNorm2d):
            m.weight.normal_(1.0, 0.02, generator=gen)
            m.bias.zero_()
            m.reset_running_stats()
    return net.state_dict()


def stack_states(states: list[dict[str, torch.Tensor]]) -> dict[str, torch.Tensor]:
    """K single-model state_dicts -> one state_dict of the K-grouped net."""
    return {
        key: states[0][key] if states[0][key].ndim == 0 else torch.cat([s[key] for s in states])
        for key in states[0]
    }


def unstack_state(state: dict[str, torch.Tensor], k: int) -> list[dict[str, torch.Tensor]]:
    """Inverse of :func:`stack_states` (copies, so the K results own their memory)."""
    return [
        {
            key: value.clone() if value.ndim == 0 else value.chunk(k)[i].clone()
            for key, value in state.items()
        }
        for i in range(k)
    ]
