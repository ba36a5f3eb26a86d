"""The generator registry: every GAN kind is registered, unknown names fail helpfully."""

from __future__ import annotations

import pytest

from components.config import Config, GanConfig
from components.errors import ConfigError
from components.generators import REGISTRY, Generator, get_generator, kinds
from components.runtime import make_runtime

GAN_KINDS = kinds("lesion-gan")


def test_the_lesion_gan_zoo_is_what_the_registry_says() -> None:
    assert sorted(GAN_KINDS) == ["acgan", "dcgan", "sngan", "wgan", "wgan-gp"]
    assert "singan-seg" in REGISTRY and "singan-seg" not in GAN_KINDS


@pytest.mark.parametrize("kind", GAN_KINDS)
def test_every_gan_kind_is_registered_under_its_name(kind: str) -> None:
    cls = get_generator(kind)
    assert issubclass(cls, Generator)
    assert cls.kind == kind
    assert REGISTRY[kind] is cls


def test_only_acgan_is_conditional() -> None:
    assert [k for k in GAN_KINDS if get_generator(k).conditional] == ["acgan"]


def test_unknown_kind_raises_config_error_listing_known_kinds() -> None:
    with pytest.raises(ConfigError) as err:
        get_generator("stylegan9")
    message = str(err.value)
    assert "stylegan9" in message and "\n" not in message
    for kind in GAN_KINDS:
        assert kind in message


def test_build_makes_the_configured_architecture_from_the_section() -> None:
    section = GanConfig(kind="sngan", image_size=32, base_channels=8, latent_dim=16)
    gan = get_generator("sngan").build(section, 0, make_runtime("cpu"))
    assert gan.G.latent_dim == 16
    assert gan.D.features[0].parametrizations.weight.original.shape == (8, 3, 4, 4)


@pytest.mark.parametrize(
    ("override", "field"),
    [({"image_size": 100}, "gan.image_size"), ({"diffaugment": "color,zoom"}, "gan.diffaugment")],
)
def test_unusable_settings_raise_one_line_config_errors(override: dict, field: str) -> None:
    cfg = Config(gan=GanConfig(base_channels=8, **override))
    with pytest.raises(ConfigError, match=field):
        get_generator("dcgan").build(cfg.gan, cfg.seed, make_runtime("cpu"))
