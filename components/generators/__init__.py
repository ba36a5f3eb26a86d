"""Generators. Importing this package registers every generator module listed here."""

from components.generators.base import REGISTRY, Generator, ImageSet, get_generator, register

__all__ = ["REGISTRY", "Generator", "ImageSet", "get_generator", "register"]
