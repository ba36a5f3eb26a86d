"""Behaviour of the GAN losses and the one training loop, on tiny synthetic images (CPU, 32 px)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import torch

from components.config import GanConfig
from components.errors import ConfigError, DataError
from components.generators import get_generator
from components.generators.gan.loop import CHECKPOINT, LOSS_CURVE, build_parts, ema_update
from components.generators.gan.zoo import ConvGan
from components.imageset import ImageSet
from components.runtime import make_runtime, torch_threads
from components.tracking import NullReporter

KINDS = ["dcgan", "wgan-gp", "wgan", "acgan", "sngan"]
CPU = make_runtime("cpu")
RED, BLUE = (200, 40, 40), (40, 40, 200)


@pytest.fixture(autouse=True)
def one_thread() -> Iterator[None]:
    # The test machine is shared: more threads than cores slows convolutions many-fold.
    with torch_threads(1):
        yield


def two_colors(n: int = 16, size: int = 32) -> ImageSet:
    """An easy set: noisy red images are benign (0), noisy blue ones malignant (1)."""
    rng = np.random.default_rng(0)
    images = np.zeros((n, size, size, 3), dtype=np.int64)
    images[: n // 2], images[n // 2 :] = RED, BLUE
    images += rng.integers(-10, 11, images.shape)
    labels = np.array([0] * (n // 2) + [1] * (n - n // 2), dtype=np.int64)
    return ImageSet(images=images.clip(0, 255).astype(np.uint8), labels=labels)


def tiny(kind: str = "dcgan", **override: object) -> GanConfig:
    settings: dict[str, object] = {
        "kind": kind,
        "image_size": 32,
        "base_channels": 8,
        "latent_dim": 16,
        "batch_size": 8,
        "steps": 4,
        "log_every": 2,
        "sample_every": 2,
        "checkpoint_every": 2,
        "ema_start_step": 0,
    }
    return GanConfig(**{**settings, **override})


def build(cfg: GanConfig, seed: int = 0) -> ConvGan:
    return get_generator(cfg.kind)(cfg, seed=seed, runtime=CPU)


class Recorder(NullReporter):
    """Keeps every report; optionally crashes at a step, like a killed job."""

    def __init__(self, crash_at: int | None = None) -> None:
        super().__init__()
        self.crash_at = crash_at
        self.metrics: list[tuple[str, int | None]] = []
        self.images: list[tuple[str, tuple[int, ...], int | None]] = []
        self.artifacts: list[Path] = []

    def metric(self, name: str, value: float, step: int | None = None) -> None:
        if self.crash_at is not None and step == self.crash_at:
            raise KeyboardInterrupt("simulated crash")
        super().metric(name, value, step)
        self.metrics.append((name, step))

    def image(self, name: str, image: np.ndarray, step: int | None = None) -> None:
        self.images.append((name, image.shape, step))

    def artifact(self, path: str | os.PathLike[str], subdir: str | None = None) -> None:
        self.artifacts.append(Path(path))


def _real_batch() -> torch.Tensor:
    data = two_colors(8)
    return torch.from_numpy(data.images).permute(0, 3, 1, 2).float() / 127.5 - 1


# ---- each variant's phases make progress


@pytest.mark.parametrize("kind", KINDS)
def test_d_phase_separates_real_from_fake_and_g_phase_fools_d(kind: str) -> None:
    cfg = tiny(kind, lr_d=1e-3, lr_g=1e-3)
    gan = build(cfg)
    loss = gan.make_loss(build_parts(gan.G, gan.D, cfg, seed=0, runtime=CPU))
    real = _real_batch()
    labels = torch.tensor([0, 1] * 4) if gan.conditional else None
    z = torch.randn(8, cfg.latent_dim, generator=torch.Generator().manual_seed(1))

    def scores() -> tuple[float, float]:
        with torch.no_grad():
            fake = gan.G(z, labels)
            return gan.D(real)[0].mean().item(), gan.D(fake)[0].mean().item()

    real_before, fake_before = scores()
    for _ in range(5):
        loss.d_step(real, labels)
    real_mid, fake_mid = scores()
    assert real_mid - fake_mid > real_before - fake_before
    assert real_mid > fake_mid
    for _ in range(5):
        logs = loss.g_step(8, labels)
    assert scores()[1] > fake_mid
    assert torch.isfinite(logs["loss/g"])


def test_wgan_clips_critic_weights_and_wgan_gp_reports_its_penalty() -> None:
    real = _real_batch()
    cfg = tiny("wgan", clip_value=0.005)
    gan = build(cfg)
    gan.make_loss(build_parts(gan.G, gan.D, cfg, 0, CPU)).d_step(real, None)
    assert max(p.abs().max().item() for p in gan.D.parameters()) <= 0.005
    cfg = tiny("wgan-gp")
    gan = build(cfg)
    logs = gan.make_loss(build_parts(gan.G, gan.D, cfg, 0, CPU)).d_step(real, None)
    assert logs["gp"] > 0
    assert max(p.abs().max().item() for p in gan.D.parameters()) > 0.5  # not clipped


# ---- the loop


def test_fit_reports_checkpoints_and_returns_throughput(tmp_path: Path) -> None:
    rec = Recorder()
    figures = build(tiny(steps=3)).fit(two_colors(), tmp_path, rec)
    assert {step for name, step in rec.metrics if name == "loss/d"} == {2, 3}
    assert [(name, step) for name, _, step in rec.images] == [("samples", 2), ("samples", 3)]
    assert rec.images[0][1] == (8 * 32, 8 * 32, 3)
    assert rec.artifacts == [tmp_path / LOSS_CURVE]
    assert (tmp_path / LOSS_CURVE).read_bytes().startswith(b"\x89PNG")
    state = torch.load(tmp_path / CHECKPOINT, weights_only=True)
    assert state["step"] == 3 and {"G", "D", "G_ema", "opt_g", "opt_d", "noise_rng"} <= set(state)
    assert figures["images_per_s"] > 0 and figures["steps_per_s"] > 0
    assert np.isfinite(figures["loss/g"])


def test_resumed_run_ends_bit_identical_to_uninterrupted(tmp_path: Path) -> None:
    cfg = tiny(
        steps=6,
        log_every=1,
        checkpoint_every=3,
        ema_decay=0.9,
        diffaugment="color,translation,cutout",
    )
    straight = build(cfg)
    straight.fit(two_colors(), tmp_path / "straight", NullReporter())

    crashed = build(cfg)
    with pytest.raises(KeyboardInterrupt):
        crashed.fit(two_colors(), tmp_path / "resumed", Recorder(crash_at=5))
    assert torch.load(tmp_path / "resumed" / CHECKPOINT, weights_only=True)["step"] == 3
    resumed = build(cfg)  # a fresh process would start from fresh networks
    rec = Recorder()
    resumed.fit(two_colors(), tmp_path / "resumed", rec)
    assert min(step for _, step in rec.metrics if step is not None) == 4

    for a, b in [(straight.G, resumed.G), (straight.D, resumed.D), (straight.G_ema, resumed.G_ema)]:
        for (name, ta), tb in zip(a.state_dict().items(), b.state_dict().values(), strict=True):
            assert torch.equal(ta, tb), name


def test_resume_refuses_a_checkpoint_of_another_architecture(tmp_path: Path) -> None:
    build(tiny(steps=2)).fit(two_colors(), tmp_path, NullReporter())
    with pytest.raises(ConfigError, match="checkpoint.pt"):
        build(tiny(steps=4, base_channels=16)).fit(two_colors(), tmp_path, NullReporter())


def test_fit_rejects_images_of_the_wrong_size_and_acgan_without_labels(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="gan.image_size"):
        build(tiny()).fit(two_colors(size=64), tmp_path, NullReporter())
    unlabelled = ImageSet(images=two_colors().images)
    with pytest.raises(DataError, match="acgan"):
        build(tiny("acgan")).fit(unlabelled, tmp_path, NullReporter())


def test_ema_update_is_the_exponential_average() -> None:
    a, b = torch.nn.Linear(3, 2), torch.nn.Linear(3, 2)
    expected = 0.75 * a.weight.detach() + 0.25 * b.weight.detach()
    ema_update(a, b, decay=0.75)
    assert torch.allclose(a.weight, expected)


def test_ema_weights_differ_from_g_and_are_what_sample_uses(tmp_path: Path) -> None:
    gan = build(tiny(steps=3, ema_decay=0.9))
    gan.fit(two_colors(), tmp_path, NullReporter())
    assert not torch.equal(gan.G_ema.net[0].weight, gan.G.net[0].weight)
    before = gan.sample(4, seed=3).images
    with torch.no_grad():
        for p in gan.G.parameters():
            p.zero_()
    assert np.array_equal(gan.sample(4, seed=3).images, before)  # G itself is not sampled
    with torch.no_grad():
        gan.G_ema.net[0].weight.mul_(-1)
    assert not np.array_equal(gan.sample(4, seed=3).images, before)


# ---- sampling, saving, AC-GAN


@pytest.mark.parametrize("kind", ["dcgan", "acgan"])
def test_save_load_roundtrip_gives_identical_samples(kind: str, tmp_path: Path) -> None:
    gan = build(tiny(kind, steps=2))
    gan.fit(two_colors(), tmp_path, NullReporter())
    gan.save(tmp_path / "g.pt")
    assert set(torch.load(tmp_path / "g.pt", weights_only=True)) == {"kind", "arch", "generator"}
    loaded = type(gan).load(tmp_path / "g.pt", CPU)
    labels = np.array([1, 0, 1, 1, 0]) if gan.conditional else None
    a, b = gan.sample(5, seed=11, labels=labels), loaded.sample(5, seed=11, labels=labels)
    assert a.images.shape == (5, 32, 32, 3) and a.images.dtype == np.uint8
    assert np.array_equal(a.images, b.images)
    assert not np.array_equal(a.images, loaded.sample(5, seed=12, labels=labels).images)


def test_load_refuses_another_kind_and_a_missing_file(tmp_path: Path) -> None:
    build(tiny()).save(tmp_path / "g.pt")
    with pytest.raises(ConfigError, match="'dcgan'"):
        get_generator("sngan").load(tmp_path / "g.pt", CPU)
    with pytest.raises(DataError, match="not found"):
        get_generator("dcgan").load(tmp_path / "missing.pt", CPU)


def test_unconditional_sample_ignores_labels() -> None:
    out = build(tiny()).sample(3, seed=0, labels=np.array([1, 1, 1]))
    assert out.labels is None and len(out) == 3


def test_acgan_sample_returns_the_requested_labels() -> None:
    gan = build(tiny("acgan"))
    requested = np.array([1] * 6 + [0] * 14)
    out = gan.sample(20, seed=0, labels=requested)
    assert np.array_equal(out.labels, requested)
    assert out.labels.mean() == pytest.approx(0.3)
    drawn = gan.sample(40, seed=0).labels
    assert drawn is not None and set(drawn) == {0, 1}
    with pytest.raises(DataError, match="labels"):
        gan.sample(2, seed=0, labels=np.array([0, 2]))


def test_acgan_class_head_learns_the_classes(tmp_path: Path) -> None:
    data = two_colors()
    gan = build(tiny("acgan", steps=8, lr_d=1e-3, log_every=1))
    rec = Recorder()
    gan.fit(data, tmp_path, rec)
    real = torch.from_numpy(data.images).permute(0, 3, 1, 2).float() / 127.5 - 1
    with torch.no_grad():
        _, logits = gan.D(real)
    accuracy = (logits.argmax(1).numpy() == data.labels).mean()
    assert accuracy == 1.0
    assert rec.last["acc/real_class"] == 1.0
