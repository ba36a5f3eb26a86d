"""DiffAugment: shapes preserved, differentiable, seeded, and each transform does its job."""

from __future__ import annotations

import pytest
import torch

from components.errors import ConfigError
from components.generators.gan.diffaugment import DiffAugment, cutout, translation

POLICY = "color,translation,cutout"


def _seeded(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


@pytest.mark.parametrize("policy", ["color", "translation", "cutout", POLICY])
def test_shape_preserved_and_gradients_reach_the_input(policy: str) -> None:
    x = torch.randn(4, 3, 16, 16, requires_grad=True)
    y = DiffAugment(policy, _seeded())(x)
    assert y.shape == x.shape
    (y * torch.randn_like(y)).sum().backward()
    assert x.grad is not None and x.grad.abs().sum() > 0


def test_same_generator_seed_gives_same_augmentation() -> None:
    x = torch.randn(4, 3, 16, 16)
    a = DiffAugment(POLICY, _seeded(1))(x)
    b = DiffAugment(POLICY, _seeded(1))(x)
    c = DiffAugment(POLICY, _seeded(2))(x)
    assert torch.equal(a, b)
    assert not torch.equal(a, c)


def test_empty_policy_is_identity() -> None:
    x = torch.randn(2, 3, 8, 8)
    assert DiffAugment("", _seeded())(x) is x


def test_translation_moves_content_by_at_most_an_eighth() -> None:
    x = torch.zeros(64, 1, 16, 16)
    x[:, :, 8, 8] = 1.0
    y = translation(x, _seeded())
    assert torch.equal(y.sum(dim=(1, 2, 3)), torch.ones(64))  # the dot never leaves the frame
    rows, cols = (y[:, 0] == 1).nonzero()[:, 1:].T
    assert (rows - 8).abs().max() <= 2 and (cols - 8).abs().max() <= 2
    assert ((rows != 8) | (cols != 8)).any()


def test_cutout_zeroes_at_most_a_half_side_square() -> None:
    x = torch.ones(32, 3, 16, 16)
    y = cutout(x, _seeded())
    zeroed = (y[:, 0] == 0).sum(dim=(1, 2))
    assert zeroed.max() <= 8 * 8 and zeroed.max() == 64
    assert torch.equal(y[:, 0], y[:, 2])  # the same square in every channel


def test_unknown_policy_part_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="gan.diffaugment.*'zoom'"):
        DiffAugment("color, zoom")
