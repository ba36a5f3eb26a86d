"""GAN training throughput: the platform loop against a plain PyTorch DCGAN loop; data loading.

For each GAN kind and size it trains on the embedded ISIC images through the platform
(``Generator.fit``: its Adam, EMA, loss logging to a real MLflow sqlite run, sample grids and
checkpoints all on, at the config's default intervals) and reports real images through D per
second and G steps (each with its D steps) per second. Beside it runs a plain loop of the same
DCGAN architecture written as in the PyTorch DCGAN example (pytorch/examples, dcgan/main.py),
with no logging and no checkpoints: the bar the platform is held to. Both read minibatches from
the same in-memory tensor and use the same device, precision and memory format, so the ratio
isolates the cost of the loop itself (goal: >= 0.95 for DCGAN at 64 px).

It also times one epoch of data loading both ways: decoding and resizing every JPEG (what a
naive ``ImageFolder`` pipeline does each epoch) against slicing the uint8 cache that ingestion
writes and converting to a float tensor.

    .venv/bin/python bench/gan_training.py [--steps 200] [--batch-size 64] [--sizes 64 128]
        [--kinds dcgan wgan-gp wgan acgan sngan] [--threads N]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch
from PIL import Image
from torch import nn

if TYPE_CHECKING:
    from components.imageset import ImageSet
    from components.runtime import Runtime

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
ISIC = ROOT / "data" / "samples" / "isic-uda1" / "images"
KINDS = ["dcgan", "wgan-gp", "wgan", "acgan", "sngan"]


# ---- the plain loop, as in the PyTorch DCGAN example (generalised to 2^k px)


def weights_init(m: nn.Module) -> None:
    classname = m.__class__.__name__
    if classname.find("Conv") != -1:
        nn.init.normal_(m.weight, 0.0, 0.02)
    elif classname.find("BatchNorm") != -1:
        nn.init.normal_(m.weight, 1.0, 0.02)
        nn.init.zeros_(m.bias)


class PlainG(nn.Module):
    def __init__(self, size: int, nz: int = 100, ngf: int = 64) -> None:
        super().__init__()
        n = size.bit_length() - 3
        c = ngf * 2 ** (n - 1)
        layers = [nn.ConvTranspose2d(nz, c, 4, 1, 0, bias=False), nn.BatchNorm2d(c), nn.ReLU(True)]
        for _ in range(n - 1):
            layers += [nn.ConvTranspose2d(c, c // 2, 4, 2, 1, bias=False)]
            layers += [nn.BatchNorm2d(c // 2), nn.ReLU(True)]
            c //= 2
        layers += [nn.ConvTranspose2d(c, 3, 4, 2, 1, bias=False), nn.Tanh()]
        self.main = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.main(x)


class PlainD(nn.Module):
    def __init__(self, size: int, ndf: int = 64) -> None:
        super().__init__()
        n = size.bit_length() - 3
        c = ndf
        layers = [nn.Conv2d(3, c, 4, 2, 1, bias=False), nn.LeakyReLU(0.2, inplace=True)]
        for _ in range(n - 1):
            layers += [nn.Conv2d(c, c * 2, 4, 2, 1, bias=False)]
            layers += [nn.BatchNorm2d(c * 2), nn.LeakyReLU(0.2, inplace=True)]
            c *= 2
        layers += [nn.Conv2d(c, 1, 4, 1, 0, bias=False), nn.Sigmoid()]
        self.main = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.main(x)


def plain_dcgan(x_all: torch.Tensor, size: int, steps: int, batch: int, runtime: Runtime) -> float:
    """Seconds for ``steps`` iterations of the example's loop (x_all: NCHW in [-1, 1])."""
    device, fmt, nz = runtime.device, runtime.memory_format, 100
    netG = PlainG(size).to(device, memory_format=fmt)
    netD = PlainD(size).to(device, memory_format=fmt)
    netG.apply(weights_init)
    netD.apply(weights_init)
    criterion = nn.BCELoss()
    optimizerD = torch.optim.Adam(netD.parameters(), lr=0.0002, betas=(0.5, 0.999))
    optimizerG = torch.optim.Adam(netG.parameters(), lr=0.0002, betas=(0.5, 0.999))
    real_label, fake_label = 1.0, 0.0
    _sync(device)
    t0 = time.perf_counter()
    for _ in range(steps):
        idx = torch.randint(len(x_all), (batch,), device=device)
        real = x_all[idx].contiguous(memory_format=fmt)
        # (1) Update D: maximize log(D(x)) + log(1 - D(G(z)))
        netD.zero_grad()
        label = torch.full((batch,), real_label, device=device)
        with runtime.autocast():
            output = netD(real).view(-1)
        errD_real = criterion(output.float(), label)  # BCELoss refuses bf16 autocast
        errD_real.backward()
        noise = torch.randn(batch, nz, 1, 1, device=device)
        with runtime.autocast():
            fake = netG(noise)
            output = netD(fake.detach()).view(-1)
        label.fill_(fake_label)
        errD_fake = criterion(output.float(), label)
        errD_fake.backward()
        optimizerD.step()
        # (2) Update G: maximize log(D(G(z)))
        netG.zero_grad()
        label.fill_(real_label)
        with runtime.autocast():
            output = netD(fake).view(-1)
        errG = criterion(output.float(), label)
        errG.backward()
        optimizerG.step()
    _sync(device)
    return time.perf_counter() - t0


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


# ---- data


def decode_epoch(paths: list[Path], size: int) -> tuple[np.ndarray, float]:
    """Decode and resize every JPEG (one epoch of a decoding pipeline); (uint8 NHWC, seconds)."""
    t0 = time.perf_counter()
    images = [
        np.asarray(Image.open(p).convert("RGB").resize((size, size), Image.Resampling.BILINEAR))
        for p in paths
    ]
    stacked = np.stack(images)
    torch.from_numpy(stacked).permute(0, 3, 1, 2).float().div(127.5).sub(1)
    return stacked, time.perf_counter() - t0


def cache_epoch(cache: np.ndarray, batch: int) -> float:
    """One epoch of minibatches sliced from the uint8 cache and made float tensors; seconds."""
    t0 = time.perf_counter()
    order = np.random.default_rng(0).permutation(len(cache))
    for i in range(0, len(cache), batch):
        torch.from_numpy(cache[order[i : i + batch]]).permute(0, 3, 1, 2).float().div(127.5).sub(1)
    return time.perf_counter() - t0


def isic_labels(paths: list[Path]) -> np.ndarray:
    names = [json.loads(p.with_suffix(".json").read_text())["meta"]["clinical"] for p in paths]
    return np.array([int(m.get("benign_malignant") == "malignant") for m in names], np.int64)


# ---- the platform


def platform(
    kind: str, data: ImageSet, size: int, steps: int, batch: int, runtime: Runtime, tmp: Path
) -> dict[str, float]:
    """Generator.fit with an MlflowReporter on a sqlite store; returns its figures."""
    import mlflow

    from components.config import Config, GanConfig
    from components.generators import get_generator
    from components.tracking import MlflowReporter

    cfg = Config(gan=GanConfig(kind=kind, image_size=size, batch_size=batch, steps=steps))
    gan = get_generator(kind).build(cfg.gan, cfg.seed, runtime)
    with mlflow.start_run(run_name=f"{kind}-{size}") as run:
        return gan.fit(data, tmp / f"{kind}-{size}", MlflowReporter(run.info.run_id))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--steps", type=int, default=200, help="G steps per measurement")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--sizes", type=int, nargs="+", default=[64, 128])
    parser.add_argument("--kinds", nargs="+", default=KINDS, choices=KINDS)
    parser.add_argument("--threads", type=int, default=None, help="torch intra-op threads")
    args = parser.parse_args()
    os.environ.setdefault("SYNTHMED_PROGRESS", "0")
    os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
    if args.threads:
        torch.set_num_threads(args.threads)

    import mlflow

    from components.imageset import ImageSet
    from components.runtime import make_runtime

    runtime = make_runtime("auto")
    paths = sorted(ISIC.glob("*.jpg"))
    labels = isic_labels(paths)
    print(f"runtime: {runtime.describe()}, torch threads {torch.get_num_threads()}")
    print(f"data: {len(paths)} ISIC images, batch {args.batch_size}, {args.steps} G steps each\n")

    with tempfile.TemporaryDirectory(prefix="bench-gan-") as tmp_name:
        tmp = Path(tmp_name)
        mlflow.set_tracking_uri(f"sqlite:///{tmp / 'mlflow.db'}")
        mlflow.set_experiment("bench-gan")
        rows: list[tuple[str, int, float, float]] = []
        loading: list[str] = []
        for size in args.sizes:
            cache, decode_s = decode_epoch(paths, size)
            cache_s = cache_epoch(cache, args.batch_size)
            loading.append(
                f"  {size:>4} px: decode JPEG + resize {decode_s:7.3f} s, "
                f"uint8 cache {cache_s:7.4f} s ({decode_s / cache_s:,.0f}x faster)"
            )
            x = torch.from_numpy(cache).to(runtime.device).permute(0, 3, 1, 2)
            x = x.float().div(127.5).sub(1)
            plain_dcgan(x, size, 2, args.batch_size, runtime)  # warm-up: CUDA context, cuDNN
            seconds = plain_dcgan(x, size, args.steps, args.batch_size, runtime)
            rows.append(
                ("plain-dcgan", size, args.steps * args.batch_size / seconds, args.steps / seconds)
            )
            data = ImageSet(images=cache, labels=labels)
            for kind in args.kinds:
                fig = platform(kind, data, size, args.steps, args.batch_size, runtime, tmp)
                rows.append((kind, size, fig["images_per_s"], fig["steps_per_s"]))

    print(f"{'loop':<12} {'size':>4} {'images/s':>10} {'steps/s':>9}")
    for name, size, ips, sps in rows:
        print(f"{name:<12} {size:>4} {ips:>10.1f} {sps:>9.2f}")
    by = {(name, size): ips for name, size, ips, _ in rows}
    if ("dcgan", 64) in by:
        print(
            f"\nratio: {by[('dcgan', 64)] / by[('plain-dcgan', 64)]:.2f}"
            "  (platform dcgan-64 images/s / plain images/s; goal >= 0.95)"
        )
    else:
        print("\nratio: n/a (needs --kinds dcgan and --sizes 64)")
    print("\nepoch data loading:")
    print("\n".join(loading))


if __name__ == "__main__":
    main()
