"""The registered lesion GANs: one class per variant, all trained by :func:`loop.train`.

A variant is its D normalization, its loss and its default number of D steps per G step:

=========  ===========  ==========================================  ========
kind       D norm       loss                                        n_critic
=========  ===========  ==========================================  ========
dcgan      batch        BCE, non-saturating G, label smoothing      1
wgan       batch        Wasserstein, weight clipping                5
wgan-gp    layer        Wasserstein, gradient penalty               5
acgan      batch        BCE + auxiliary class head (conditional)    1
sngan      spectral     hinge                                       1
=========  ===========  ==========================================  ========

Every kind trains with Adam at ``gan.lr_g``/``lr_d``/``beta1``/``beta2``; the defaults are DCGAN's
(2e-4, 0.5, 0.999). The papers' own settings differ (WGAN-GP: 1e-4, betas 0 and 0.9; WGAN:
RMSprop at 5e-5, here approximated by Adam): set them in the profile that trains those kinds.

Sampling uses the EMA of G's weights when ``gan.ema_decay > 0``. :meth:`state_dict` holds only
those sampling weights plus the architecture; ``workdir/checkpoint.pt`` holds the full training
state.
"""

from __future__ import annotations

import abc
import copy
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import torch

from components.config import GanConfig
from components.errors import ConfigError, DataError
from components.generators.base import Generator, register
from components.generators.gan.diffaugment import parse_policy
from components.generators.gan.loop import ARCH_KEYS, render, train
from components.generators.gan.losses import (
    AcganLoss,
    DcganLoss,
    GanParts,
    HingeLoss,
    PhasedLoss,
    WganLoss,
)
from components.generators.gan.networks import (
    ConvDiscriminator,
    ConvGenerator,
    DNorm,
    check_image_size,
)
from components.imageset import ImageSet
from components.runtime import Runtime
from components.tracking import Reporter

NUM_CLASSES = 2
"""Lesion classes of the conditional GANs: 0 benign, 1 malignant."""
SAMPLE_BATCH = 256


class ConvGan(Generator):
    """A DCGAN-architecture GAN; subclasses pick D's normalization, the loss and n_critic."""

    config_section = "gan"
    family = "lesion-gan"
    modality = "dermoscopy"
    d_norm: ClassVar[DNorm] = "batch"
    default_n_critic: ClassVar[int] = 1

    def __init__(self, cfg: GanConfig, seed: int, runtime: Runtime) -> None:
        check_image_size(cfg.image_size)
        parse_policy(cfg.diffaugment)
        self.cfg, self.seed, self.runtime = cfg, seed, runtime
        classes = NUM_CLASSES if self.conditional else 0
        # A private RNG stream for the initial weights: same seed, same networks, and the
        # caller's global RNG state is left alone.
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            G = ConvGenerator(cfg.image_size, cfg.latent_dim, cfg.base_channels, classes)
            D = ConvDiscriminator(cfg.image_size, cfg.base_channels, self.d_norm, classes)
        fmt = runtime.memory_format
        self.G = G.to(runtime.device, memory_format=fmt)
        self.D = D.to(runtime.device, memory_format=fmt)
        self.G_ema = (
            copy.deepcopy(self.G).eval().requires_grad_(False) if cfg.ema_decay > 0 else None
        )

    @classmethod
    def build(cls, section: GanConfig, seed: int, runtime: Runtime) -> ConvGan:  # type: ignore[override]
        return cls(section, seed, runtime)

    @property
    def sampler(self) -> ConvGenerator:
        """The network that draws samples: the EMA of G when there is one."""
        return self.G_ema if self.G_ema is not None else self.G

    @abc.abstractmethod
    def make_loss(self, parts: GanParts) -> PhasedLoss:
        """The variant's loss object over the parts the loop built."""

    def fit(self, data: ImageSet, workdir: Path, reporter: Reporter) -> dict[str, float]:
        return train(
            self.G,
            self.D,
            self.G_ema,
            self.make_loss,
            data,
            self.cfg,
            kind=self.kind,
            seed=self.seed,
            n_critic=self.cfg.n_critic or self.default_n_critic,
            num_classes=NUM_CLASSES if self.conditional else 0,
            runtime=self.runtime,
            workdir=Path(workdir),
            reporter=reporter,
        )

    def sample(self, n: int, seed: int, labels: np.ndarray | None = None) -> ImageSet:
        """``n`` images from the EMA generator (G when EMA is off); a seed fixes the images.

        Conditional kinds draw each image for its entry of ``labels`` (uniform classes when
        None); the others ignore ``labels`` and return ``labels=None``.
        """
        gen = torch.Generator().manual_seed(seed)
        # z is drawn on the CPU so a seed gives the same latents on any device.
        z = torch.randn(n, self.cfg.latent_dim, generator=gen)
        y = None
        if self.conditional:
            if labels is None:
                y = torch.randint(NUM_CLASSES, (n,), generator=gen)
            else:
                y = torch.as_tensor(np.asarray(labels, dtype=np.int64))
                if len(y) != n or (y < 0).any() or (y >= NUM_CLASSES).any():
                    raise DataError(f"{self.kind}: need {n} labels in 0..{NUM_CLASSES - 1}")
        net = self.sampler
        chunks = []
        for i in range(0, n, SAMPLE_BATCH):
            zi = z[i : i + SAMPLE_BATCH].to(self.runtime.device)
            yi = None if y is None else y[i : i + SAMPLE_BATCH].to(self.runtime.device)
            chunks.append(render(net, zi, yi, self.runtime))
        size = self.cfg.image_size
        images = np.concatenate(chunks) if chunks else np.zeros((0, size, size, 3), np.uint8)
        return ImageSet(images=images, labels=None if y is None else y.numpy())

    def state_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "arch": {k: getattr(self.cfg, k) for k in ARCH_KEYS},
            "generator": self.sampler.state_dict(),
        }

    @classmethod
    def from_state_dict(cls, state: dict[str, Any], runtime: Runtime) -> ConvGan:
        if state.get("kind") != cls.kind:
            raise ConfigError(f"holds a '{state.get('kind')}' generator, not '{cls.kind}'")
        # The saved weights are already the sampling (EMA) weights: no second copy needed.
        cfg = GanConfig(kind=cls.kind, ema_decay=0.0, **state["arch"])
        gan = cls(cfg, seed=0, runtime=runtime)
        gan.G.load_state_dict(state["generator"])
        return gan


@register("dcgan")
class DCGAN(ConvGan):
    """Radford et al. 2016."""

    def make_loss(self, parts: GanParts) -> PhasedLoss:
        return DcganLoss(parts, label_smoothing=self.cfg.label_smoothing)


@register("wgan")
class WGAN(ConvGan):
    """Arjovsky et al. 2017: Wasserstein critic kept Lipschitz by weight clipping."""

    default_n_critic = 5

    def make_loss(self, parts: GanParts) -> PhasedLoss:
        return WganLoss(parts, clip_value=self.cfg.clip_value)


@register("wgan-gp")
class WGANGP(ConvGan):
    """Gulrajani et al. 2017: Wasserstein critic with a gradient penalty, layer-normed D."""

    d_norm = "layer"
    default_n_critic = 5

    def make_loss(self, parts: GanParts) -> PhasedLoss:
        return WganLoss(parts, gp_weight=self.cfg.gp_weight)


@register("acgan")
class ACGAN(ConvGan):
    """Odena et al. 2017: class-conditional G, D with an auxiliary benign/malignant head."""

    conditional = True
    output = "image+label"

    def make_loss(self, parts: GanParts) -> PhasedLoss:
        return AcganLoss(parts, label_smoothing=self.cfg.label_smoothing)


@register("sngan")
class SNGAN(ConvGan):
    """Miyato et al. 2018: spectrally normalized D, hinge loss."""

    d_norm = "spectral"

    def make_loss(self, parts: GanParts) -> PhasedLoss:
        return HingeLoss(parts)
