"""Generators. Importing this package registers every generator module listed here."""

import components.generators.gan.zoo  # noqa: F401  (registers the lesion GAN zoo)
import components.generators.singan_seg.model  # noqa: F401  (registers "singan-seg")
from components.generators.base import REGISTRY, Generator, get_generator, kinds, register

__all__ = ["REGISTRY", "Generator", "get_generator", "kinds", "register"]
