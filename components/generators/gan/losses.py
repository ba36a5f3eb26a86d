"""The GAN variants as loss objects with phases (the stylegan2-ada loss-object idea).

A loss owns the optimisation of one variant: ``d_step`` updates D on a real batch, ``g_step``
updates G. The loop only decides how often each phase runs (``n_critic`` D steps per G step) and
never knows which GAN it trains, so a new variant is a new subclass here.

Every phase returns detached scalar tensors keyed by metric name; the loop turns them into
numbers only at logging steps, so no phase forces a GPU sync.
"""

from __future__ import annotations

import abc
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from components.generators.gan.diffaugment import DiffAugment
from components.runtime import Runtime

Logs = dict[str, Tensor]


@dataclass
class GanParts:
    """What a loss operates on; the loop builds it and checkpoints every stateful piece of it."""

    G: nn.Module
    D: nn.Module
    opt_g: torch.optim.Optimizer
    opt_d: torch.optim.Optimizer
    latent_dim: int
    noise: torch.Generator
    """Source of z, DiffAugment and penalty draws: no phase touches torch's global RNG."""
    augment: DiffAugment
    runtime: Runtime


class PhasedLoss(abc.ABC):
    """Shared mechanics; subclasses define :meth:`d_loss` and :meth:`g_loss`."""

    def __init__(self, parts: GanParts) -> None:
        self.p = parts
        self._fake: tuple[Tensor, Tensor | None] | None = None

    # ---- phases the loop calls

    def d_step(self, real: Tensor, labels: Tensor | None) -> Logs:
        """One D update on ``real`` against as many fakes (of the same labels, if conditional)."""
        fake = self.generate(len(real), labels)
        # Kept with its graph for the G phase that follows: G has not changed in between, so
        # reusing it saves one G forward per step (as the PyTorch DCGAN example does).
        self._fake = (fake, labels)
        loss, logs = self.d_loss(real, labels, fake.detach())
        self._update(self.p.opt_d, loss)
        self.after_d_step()
        return logs

    def g_step(self, batch_size: int, labels: Tensor | None) -> Logs:
        """One G update; reuses the last D phase's fakes when there are any."""
        if self._fake is not None and len(self._fake[0]) == batch_size:
            fake, labels = self._fake
        else:
            fake = self.generate(batch_size, labels)
        self._fake = None
        # D's weight gradients are not needed here; freezing D skips computing them.
        self.p.D.requires_grad_(False)
        try:
            loss, logs = self.g_loss(fake, labels)
            self._update(self.p.opt_g, loss)
        finally:
            self.p.D.requires_grad_(True)
        return logs

    # ---- helpers for subclasses

    def generate(self, n: int, labels: Tensor | None) -> Tensor:
        rt = self.p.runtime
        z = torch.randn(n, self.p.latent_dim, generator=self.p.noise, device=rt.device)
        with rt.autocast():
            return self.p.G(z, labels)

    def score(self, x: Tensor) -> tuple[Tensor, Tensor | None]:
        """D on augmented ``x``: (scores, class logits or None), in fp32."""
        rt = self.p.runtime
        x = self.p.augment(x).contiguous(memory_format=rt.memory_format)
        with rt.autocast():
            s, c = self.p.D(x)
        return s.float(), None if c is None else c.float()

    @staticmethod
    def _update(opt: torch.optim.Optimizer, loss: Tensor) -> None:
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    # ---- what a variant defines

    @abc.abstractmethod
    def d_loss(self, real: Tensor, labels: Tensor | None, fake: Tensor) -> tuple[Tensor, Logs]:
        """D's loss on a real batch and a detached fake batch, with its logs."""

    @abc.abstractmethod
    def g_loss(self, fake: Tensor, labels: Tensor | None) -> tuple[Tensor, Logs]:
        """G's loss on a fake batch that still carries G's graph, with its logs."""

    def after_d_step(self) -> None:
        """Hook after each D update (WGAN's weight clipping)."""


def _scores(real_s: Tensor, fake_s: Tensor) -> Logs:
    return {"score/real": real_s.detach().mean(), "score/fake": fake_s.detach().mean()}


class DcganLoss(PhasedLoss):
    """Radford et al. 2016: BCE on logits, non-saturating G loss, one-sided label smoothing."""

    def __init__(self, parts: GanParts, label_smoothing: float = 0.0) -> None:
        super().__init__(parts)
        self.real_target = 1.0 - label_smoothing

    def d_loss(self, real: Tensor, labels: Tensor | None, fake: Tensor) -> tuple[Tensor, Logs]:
        real_s, _ = self.score(real)
        fake_s, _ = self.score(fake)
        loss = F.binary_cross_entropy_with_logits(
            real_s, torch.full_like(real_s, self.real_target)
        ) + F.binary_cross_entropy_with_logits(fake_s, torch.zeros_like(fake_s))
        return loss, {"loss/d": loss.detach(), **_scores(real_s, fake_s)}

    def g_loss(self, fake: Tensor, labels: Tensor | None) -> tuple[Tensor, Logs]:
        fake_s, _ = self.score(fake)
        loss = F.binary_cross_entropy_with_logits(fake_s, torch.ones_like(fake_s))
        return loss, {"loss/g": loss.detach()}


class AcganLoss(DcganLoss):
    """Odena et al. 2017: DCGAN plus a class head on D, trained on real and fake labels.

    D learns to classify real images and to assign fakes the class they were drawn for; G is
    rewarded when D recognises the requested class, which makes G honour its label input.
    """

    def d_loss(self, real: Tensor, labels: Tensor | None, fake: Tensor) -> tuple[Tensor, Logs]:
        real_s, real_c = self.score(real)
        fake_s, fake_c = self.score(fake)
        adv = F.binary_cross_entropy_with_logits(
            real_s, torch.full_like(real_s, self.real_target)
        ) + F.binary_cross_entropy_with_logits(fake_s, torch.zeros_like(fake_s))
        cls = F.cross_entropy(real_c, labels) + F.cross_entropy(fake_c, labels)
        loss = adv + cls
        logs = {
            "loss/d": loss.detach(),
            "loss/d_class": cls.detach(),
            "acc/real_class": (real_c.detach().argmax(1) == labels).float().mean(),
            **_scores(real_s, fake_s),
        }
        return loss, logs

    def g_loss(self, fake: Tensor, labels: Tensor | None) -> tuple[Tensor, Logs]:
        fake_s, fake_c = self.score(fake)
        cls = F.cross_entropy(fake_c, labels)
        loss = F.binary_cross_entropy_with_logits(fake_s, torch.ones_like(fake_s)) + cls
        return loss, {"loss/g": loss.detach(), "loss/g_class": cls.detach()}


class WganLoss(PhasedLoss):
    """Wasserstein critic loss; Lipschitz by gradient penalty (WGAN-GP) or weight clipping (WGAN).

    ``gp_weight > 0``: Gulrajani et al. 2017, penalty (|grad D(x_hat)| - 1)^2 on random
    interpolates of real and fake. ``clip_value``: Arjovsky et al. 2017, D's weights clamped to
    +-clip_value after every update. Exactly one of the two is normally on.
    """

    def __init__(self, parts: GanParts, gp_weight: float = 0.0, clip_value: float = 0.0) -> None:
        super().__init__(parts)
        self.gp_weight = gp_weight
        self.clip_value = clip_value

    def d_loss(self, real: Tensor, labels: Tensor | None, fake: Tensor) -> tuple[Tensor, Logs]:
        real_s, _ = self.score(real)
        fake_s, _ = self.score(fake)
        distance = real_s.mean() - fake_s.mean()
        loss = -distance
        logs = {"wasserstein": distance.detach(), **_scores(real_s, fake_s)}
        if self.gp_weight > 0:
            gp = self.gradient_penalty(real, fake)
            loss = loss + self.gp_weight * gp
            logs["gp"] = gp.detach()
        logs["loss/d"] = loss.detach()
        return loss, logs

    def gradient_penalty(self, real: Tensor, fake: Tensor) -> Tensor:
        eps = torch.rand(
            len(real), 1, 1, 1, generator=self.p.noise, device=real.device, dtype=real.dtype
        )
        x_hat = torch.lerp(fake.to(real.dtype), real, eps).requires_grad_(True)
        s, _ = self.score(x_hat)
        (grad,) = torch.autograd.grad(s.sum(), x_hat, create_graph=True)
        return (grad.float().flatten(1).norm(dim=1) - 1).square().mean()

    def g_loss(self, fake: Tensor, labels: Tensor | None) -> tuple[Tensor, Logs]:
        fake_s, _ = self.score(fake)
        loss = -fake_s.mean()
        return loss, {"loss/g": loss.detach()}

    @torch.no_grad()
    def after_d_step(self) -> None:
        if self.clip_value > 0:
            for p in self.p.D.parameters():
                p.clamp_(-self.clip_value, self.clip_value)


class HingeLoss(PhasedLoss):
    """SN-GAN (Miyato et al. 2018): hinge loss for D, -D(fake) for G; D is spectrally normed."""

    def d_loss(self, real: Tensor, labels: Tensor | None, fake: Tensor) -> tuple[Tensor, Logs]:
        real_s, _ = self.score(real)
        fake_s, _ = self.score(fake)
        loss = F.relu(1 - real_s).mean() + F.relu(1 + fake_s).mean()
        return loss, {"loss/d": loss.detach(), **_scores(real_s, fake_s)}

    def g_loss(self, fake: Tensor, labels: Tensor | None) -> tuple[Tensor, Logs]:
        fake_s, _ = self.score(fake)
        loss = -fake_s.mean()
        return loss, {"loss/g": loss.detach()}
