"""Shapes and ranges of every GAN kind's G and D at 64 and 128 px (tiny widths)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import torch

from components.config import GanConfig
from components.generators import get_generator
from components.runtime import make_runtime, torch_threads

KINDS = ["dcgan", "wgan-gp", "wgan", "acgan", "sngan"]


@pytest.fixture(autouse=True)
def one_thread() -> Iterator[None]:
    # The test machine is shared: more threads than cores slows convolutions many-fold.
    with torch_threads(1):
        yield


@pytest.mark.parametrize("size", [64, 128])
@pytest.mark.parametrize("kind", KINDS)
def test_generator_and_discriminator_shapes(kind: str, size: int) -> None:
    cfg = GanConfig(kind=kind, image_size=size, base_channels=8, latent_dim=16)
    gan = get_generator(kind)(cfg, seed=0, runtime=make_runtime("cpu"))
    labels = torch.tensor([0, 1, 1]) if gan.conditional else None
    with torch.no_grad():
        x = gan.G(torch.randn(3, 16), labels)
        scores, logits = gan.D(x)
    assert x.shape == (3, 3, size, size)
    assert x.min() >= -1 and x.max() <= 1 and x.std() > 0
    assert scores.shape == (3,)
    if kind == "acgan":
        assert logits is not None and logits.shape == (3, 2)
    else:
        assert logits is None


def test_conditional_generator_requires_labels() -> None:
    cfg = GanConfig(kind="acgan", image_size=64, base_channels=8, latent_dim=16)
    gan = get_generator("acgan")(cfg, seed=0, runtime=make_runtime("cpu"))
    with pytest.raises(ValueError, match="labels"):
        gan.G(torch.randn(2, 16))


def test_initial_weights_depend_on_seed_only_and_leave_global_rng_alone() -> None:
    cfg = GanConfig(image_size=64, base_channels=8)
    torch.manual_seed(123)
    expected_draw = torch.rand(1)
    torch.manual_seed(123)
    a = get_generator("dcgan")(cfg, seed=7, runtime=make_runtime("cpu"))
    assert torch.equal(torch.rand(1), expected_draw)
    b = get_generator("dcgan")(cfg, seed=7, runtime=make_runtime("cpu"))
    c = get_generator("dcgan")(cfg, seed=8, runtime=make_runtime("cpu"))
    wa, wb, wc = (g.G.net[0].weight for g in (a, b, c))
    assert torch.equal(wa, wb)
    assert not torch.equal(wa, wc)
