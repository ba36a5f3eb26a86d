"""The SinGAN-Seg polyp study: does synthetic polyp data help a UNet++ segmenter?

The steps, each a function the Prefect flow (``flows/polyp_study.py``) runs as a task and the
tests call directly:

1. :func:`load_study_data`: the validated polyp images. ``train`` + ``val`` splits form the
   *pool* that folds divide and SinGAN-Seg learns from; the ``test`` split is held out: no
   generator, fold or model selection ever sees it, it only scores the final models.
2. :func:`make_folds`: k folds of the pool (groups of one patient stay together).
3. :func:`fit_singan` / :func:`load_singan`: one SinGAN-Seg model per pool image (the flow maps
   groups of K images over tasks); then :func:`synthesize` draws ``synthetic_per_real`` samples
   per model and :func:`stylize` restyles them toward their own real image.
4. :func:`set_report` + :func:`version_set`: mask statistics against the real masks and the
   memorization check go into the set's ``set.json``; the set is written and published with DVC.
5. :func:`evaluate_study`: per fold, every arm trains a UNet++ on its set (the fold's val part
   picks the epoch) and is scored on the test split. A fold's synthetic data comes only from the
   models of that fold's training images, so val images never leak in through their samples.
6. :func:`summarize`, :func:`plot_iou_vs_n`, :func:`write_report`: mean and std over folds, the
   small-data sweep plot, and a markdown + self-contained HTML report.

Arms: ``real``, ``synthetic``, ``synthetic+style`` (the fold's full sets), and per sweep size n
``real-n<n>`` (n real training images) against ``real+synthetic-n<n>`` (the same n images plus
their samples).
"""

from __future__ import annotations

import base64
import contextlib
import html
import io
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from components.config import Config, PolypStudyConfig
from components.errors import DataError
from components.generators.base import ImageSet
from components.io import atomic_dir
from components.runtime import Runtime
from components.segmenter import METRICS, evaluate_segmenter, train_segmenter
from components.tracking import NullReporter, Reporter

if TYPE_CHECKING:
    from matplotlib.figure import Figure

    from components.config import MetricsConfig
    from components.generators.singan_seg.model import SinganSeg
    from components.metrics.memorization import MemorizationReport

KIND = "singan-seg"
FEATURES = "pixels"
"""Memorization feature space: RGB downsampled to ``memorization_pixels`` a side, in [0, 1]."""

ChildRun = Callable[[str, dict[str, str]], contextlib.AbstractContextManager[Reporter]]
"""``child_run(name, tags)``: a context yielding the reporter of one arm/fold's run."""


# --------------------------------------------------------------------------------------------
# data and folds


@dataclass(frozen=True)
class StudyData:
    """The pool (train + val splits) with its table, and the held-out test split."""

    pool: ImageSet
    pool_table: pd.DataFrame
    test: ImageSet
    manifest_sha256: str


def load_study_data(cfg: Config) -> StudyData:
    """The validated polyp images at ``polyp_study.image_size``.

    Raises:
        DataError: validate has not run, the size was not ingested, or a split is empty.
    """
    from components.data.manifest import load_cache, manifest_sha256
    from components.stages import ingest_dir, validated_dir

    table_path = validated_dir(cfg, "polyps") / "dataset.csv"
    if not table_path.is_file():
        raise DataError(
            f"{table_path}: missing; run the 'validate' stage first (synthmed validate)"
        )
    table = pd.read_csv(table_path, dtype=str, keep_default_na=False)
    pool_table = table[table["split"].isin(["train", "val"])].reset_index(drop=True)
    test_ids = table.loc[table["split"] == "test", "image_id"].tolist()
    if pool_table.empty or not test_ids:
        raise DataError(f"{table_path}: needs train/val and test polyp images")
    size = cfg.polyp_study.image_size
    source = ingest_dir(cfg, "polyps")
    return StudyData(
        pool=load_cache(source, size, pool_table["image_id"].tolist()),
        pool_table=pool_table,
        test=load_cache(source, size, test_ids),
        manifest_sha256=manifest_sha256(table_path),
    )


@dataclass(frozen=True)
class Fold:
    """Positions (into the pool) of one fold's training and validation images."""

    index: int
    train: np.ndarray
    val: np.ndarray


def make_folds(pool_table: pd.DataFrame, test_ids: list[str], k: int, seed: int) -> list[Fold]:
    """``k`` folds of the pool; groups (patient, lesion) never straddle train and val.

    Raises:
        DataError: a test image is also in the pool (it would be trained on), or too few images.
    """
    from components.data.splits import kfold

    leaked = sorted(set(pool_table["image_id"]) & set(test_ids))
    if leaked:
        raise DataError(
            f"polyp study: {len(leaked)} test images are in the pool (e.g. {leaked[0]})"
        )
    return [Fold(i, tr, va) for i, (tr, va) in enumerate(kfold(pool_table, k, seed, stratify=None))]


def resize_set(data: ImageSet, size: int) -> ImageSet:
    """``data`` at ``size`` px (bilinear images, nearest masks); unchanged when already there."""
    from components.segmenter import to_tensors

    if data.images.shape[1:3] == (size, size):
        return data
    x, y = to_tensors(data, size)
    return ImageSet(x.permute(0, 2, 3, 1).numpy(), data.labels, y[:, 0].numpy(), data.ids)


def concat(*sets: ImageSet) -> ImageSet:
    """One set of images and masks (labels are dropped: polyps have none)."""
    sets = tuple(s for s in sets if len(s))
    return ImageSet(
        images=np.concatenate([s.images for s in sets]),
        masks=np.concatenate([s.masks for s in sets]),  # type: ignore[misc]
        ids=[i for s in sets for i in (s.ids or [""] * len(s))],
    )


# --------------------------------------------------------------------------------------------
# SinGAN-Seg


def singan_workdir(cfg: Config) -> Path:
    """Checkpoint folder named by the settings, so a resume never mixes SinGAN configs."""
    from components.stages import config_digest

    return cfg.stage_dir("polyp_study") / f"singan-{config_digest(cfg, 'singan', 'data')}"


def singan_groups(ids: list[str], k: int) -> list[list[str]]:
    """``ids`` in chunks of ``k``: one K-at-once training task each."""
    return [ids[i : i + k] for i in range(0, len(ids), k)]


def fit_singan(
    cfg: Config, data: ImageSet, workdir: Path, runtime: Runtime, reporter: Reporter
) -> dict[str, float]:
    """Train (or resume) the SinGAN-Seg models of ``data``'s images, K at once."""
    from components.generators.singan_seg.model import SinganSeg

    return SinganSeg.from_config(cfg, runtime).fit(data, workdir, reporter)


def load_singan(cfg: Config, ids: list[str], workdir: Path, runtime: Runtime) -> SinganSeg:
    """One generator holding the trained models of ``ids`` (written by :func:`fit_singan`)."""
    from components.generators.singan_seg.checkpoint import load_model
    from components.generators.singan_seg.model import CHECKPOINT, SinganSeg

    gen = SinganSeg.from_config(cfg, runtime)
    gen.models = [load_model(workdir / i / CHECKPOINT) for i in ids]
    unfinished = [m.image_id for m in gen.models if not m.complete]
    if unfinished:
        raise DataError(f"{workdir}: SinGAN-Seg models not fully trained: {unfinished[:3]}")
    return gen


def synthesize(gen: SinganSeg, cfg: Config) -> ImageSet:
    """``synthetic_per_real`` samples of every model, at the study's image size."""
    samples = gen.sample(len(gen.models) * cfg.polyp_study.synthetic_per_real, seed=cfg.seed)
    return resize_set(samples, cfg.polyp_study.image_size)


def stylize(
    samples: ImageSet, gen: SinganSeg, cfg: Config, runtime: Runtime
) -> tuple[ImageSet, str]:
    """Each sample restyled toward the real image its model learned; returns (set, method)."""
    from components.style_transfer import stylize_set

    return stylize_set(samples, gen.style_images(samples), cfg.style_transfer, runtime)


def source_ids(samples: ImageSet) -> list[str]:
    """The real image each sample came from (sample ids are ``<image_id>-s<k>``)."""
    return [sid.rsplit("-s", 1)[0] for sid in samples.ids or []]


def samples_of(samples: ImageSet, image_ids: list[str] | np.ndarray) -> ImageSet:
    """The samples whose model was trained on one of ``image_ids``."""
    wanted = set(image_ids)
    return samples.subset([i for i, s in enumerate(source_ids(samples)) if s in wanted])


# --------------------------------------------------------------------------------------------
# mask statistics and memorization


def count_components(mask: np.ndarray) -> int:
    """Connected foreground regions of a 2-D {0, 1} mask (4-connectivity)."""
    try:
        from scipy import ndimage
    except ImportError:
        return _bfs_components(mask)
    return int(ndimage.label(mask > 0)[1])


def _bfs_components(mask: np.ndarray) -> int:
    seen = np.zeros(mask.shape, dtype=bool)
    h, w = mask.shape
    count = 0
    for start in zip(*np.nonzero(mask), strict=True):
        if seen[start]:
            continue
        count += 1
        seen[start] = True
        stack = [start]
        while stack:
            y, x = stack.pop()
            for ny, nx in ((y - 1, x), (y + 1, x), (y, x - 1), (y, x + 1)):
                if 0 <= ny < h and 0 <= nx < w and mask[ny, nx] and not seen[ny, nx]:
                    seen[ny, nx] = True
                    stack.append((ny, nx))
    return count


def mask_statistics(masks: np.ndarray) -> dict[str, float]:
    """Area share and connected components of N x H x W {0, 1} masks, summarized.

    A SinGAN-Seg sample whose mask is empty or splintered into many islands is a bad training
    pair even if its RGB looks right; these numbers say how far the set drifts from real masks.
    """
    area = masks.reshape(len(masks), -1).mean(axis=1)
    comps = np.array([count_components(m) for m in masks], dtype=np.float64)
    return {
        "n": float(len(masks)),
        "area_share_mean": float(area.mean()),
        "area_share_std": float(area.std()),
        "components_mean": float(comps.mean()),
        "components_max": float(comps.max()),
        "empty_share": float((comps == 0).mean()),
        "single_component_share": float((comps == 1).mean()),
    }


def pixel_features(data: ImageSet, pixels: int) -> np.ndarray:
    """N x (pixels * pixels * 3): RGB downsampled (antialiased) to ``pixels`` a side, in [0, 1].

    Raw pixels, not a network's features: SinGAN-Seg copies show up as near-identical layouts and
    colours, which small thumbnails catch, and the check needs no weights.
    """
    import torch
    import torch.nn.functional as F

    x = torch.from_numpy(np.ascontiguousarray(data.images)).permute(0, 3, 1, 2).float() / 255
    x = F.interpolate(x, size=(pixels, pixels), mode="bilinear", antialias=True)
    return x.reshape(len(x), -1).numpy()


def memorization_check(
    synthetic: ImageSet,
    train: ImageSet,
    test: ImageSet,
    study: PolypStudyConfig,
    cfg: MetricsConfig,
) -> MemorizationReport:
    """Nearest-training distances of samples vs those of real test images (pixel features)."""
    from components.metrics.memorization import memorization

    p = study.memorization_pixels
    return memorization(
        pixel_features(synthetic, p), pixel_features(train, p), pixel_features(test, p), cfg
    )


def set_report(
    samples: ImageSet, data: StudyData, cfg: Config
) -> tuple[dict[str, Any], MemorizationReport]:
    """What goes into a synthetic set's ``set.json``: mask statistics and memorization."""
    assert samples.masks is not None and data.pool.masks is not None
    mem = memorization_check(samples, data.pool, data.test, cfg.polyp_study, cfg.metrics)
    report = {
        "mask_stats": {
            "real": mask_statistics(data.pool.masks),
            "synthetic": mask_statistics(samples.masks),
        },
        "memorization": {"features": FEATURES, **mem.as_metrics(prefix="")},
    }
    return report, mem


def version_set(
    samples: ImageSet, variant: str, cfg: Config, meta: dict[str, Any], root: Path
) -> dict[str, Any]:
    """Write ``samples`` as a set named ``<variant>-<size>-<profile>-<digest>`` and publish it.

    Returns the record (name, DVC md5, whether pushed) for the report and MLflow tags.
    """
    from components.synthetic import content_digest, set_name, write_set
    from components.versioning import publish_set

    name = set_name(variant, cfg.polyp_study.image_size, cfg.profile, content_digest(samples))
    set_dir = Path(root) / cfg.versioning.sets_dir / name
    write_set(samples, set_dir, meta)
    version = publish_set(root, set_dir, cfg.versioning, record={"generator_kind": KIND})
    return {
        "name": name,
        "md5": version.md5,
        "pushed": version.pushed,
        "remote": version.remote_url,
    }


# --------------------------------------------------------------------------------------------
# the segmentation arms


def arm_sets(
    data: StudyData,
    fold: Fold,
    synthetic: ImageSet,
    styled: ImageSet,
    cfg: PolypStudyConfig,
    seed: int,
) -> dict[str, ImageSet]:
    """Every arm's training set for one fold (sweep sizes above the fold's size are skipped)."""
    train = data.pool.subset(fold.train)
    ids = train.ids or []
    full = {
        "real": train,
        "synthetic": samples_of(synthetic, ids),
        "synthetic+style": samples_of(styled, ids),
    }
    sets = {arm: full[arm] for arm in cfg.arms}
    rng = np.random.default_rng([seed, fold.index])
    order = rng.permutation(len(train))
    for n in cfg.sweep_sizes:
        if n > len(train):
            continue
        # Nested: the n=4 images include the n=2 ones, so the sweep varies size alone.
        real_n = train.subset(np.sort(order[:n]))
        sets[f"real-n{n}"] = real_n
        sets[f"real+synthetic-n{n}"] = concat(real_n, samples_of(synthetic, real_n.ids or []))
    return sets


@dataclass
class ArmResult:
    """One arm on one fold: sizes, selection and test metrics."""

    arm: str
    fold: int
    train_images: int
    best_epoch: int
    val_iou: float
    test: dict[str, float]
    run_id: str | None = None
    state_dict: dict[str, Any] | None = field(default=None, repr=False)


def _null_run(name: str, tags: dict[str, str]) -> contextlib.AbstractContextManager[Reporter]:
    return contextlib.nullcontext(NullReporter())


def evaluate_study(
    data: StudyData,
    folds: list[Fold],
    synthetic: ImageSet,
    styled: ImageSet,
    cfg: Config,
    runtime: Runtime,
    child_run: ChildRun = _null_run,
) -> list[ArmResult]:
    """Train and test every arm on every fold, each in its own ``child_run``.

    Only the best-val fold model of each arm keeps its weights (``state_dict``), so memory holds
    one model per arm, not one per fold.
    """
    from components.progress import track

    study = cfg.polyp_study
    results: list[ArmResult] = []
    best: dict[str, ArmResult] = {}
    jobs = [
        (fold, arm, s)
        for fold in folds
        for arm, s in arm_sets(data, fold, synthetic, styled, study, cfg.seed).items()
    ]
    for fold, arm, train in track(jobs, "polyp study arms"):
        val = data.pool.subset(fold.val)
        tags = {"synthmed.arm": arm, "synthmed.fold": str(fold.index)}
        with child_run(f"{arm}-fold{fold.index}", tags) as rep:
            if len(train) == 0:
                raise DataError(
                    f"polyp study: arm '{arm}' has no training images in fold {fold.index}"
                )
            trained = train_segmenter(train, val, study, runtime, rep, seed=cfg.seed + fold.index)
            test = evaluate_segmenter(trained.model, data.test, study, runtime)
            for name, value in test.items():
                rep.metric(f"test.{name}", value)
            rep.metric("train_images", len(train))
            result = ArmResult(
                arm,
                fold.index,
                len(train),
                trained.best_epoch,
                trained.best_val_iou,
                test,
                getattr(rep, "run_id", None),
            )
        results.append(result)
        if arm not in best or result.val_iou > best[arm].val_iou:
            if arm in best:
                best[arm].state_dict = None
            result.state_dict = {
                k: v.detach().cpu().clone() for k, v in trained.model.state_dict().items()
            }
            best[arm] = result
    return results


def summarize(results: list[ArmResult]) -> list[dict[str, Any]]:
    """One row per arm: mean and std over folds of every test metric, in arm order."""
    rows = []
    for arm in dict.fromkeys(r.arm for r in results):
        mine = [r for r in results if r.arm == arm]
        row: dict[str, Any] = {
            "arm": arm,
            "folds": len(mine),
            "train_images": float(np.mean([r.train_images for r in mine])),
        }
        for name in METRICS:
            values = np.array([r.test[name] for r in mine])
            row[f"{name}_mean"] = float(values.mean())
            # Population std (ddof 0): with 3 folds it describes the folds, it estimates nothing.
            row[f"{name}_std"] = float(values.std())
        rows.append(row)
    return rows


def best_model(results: list[ArmResult], metric: str) -> ArmResult:
    """The arm with the best mean test ``metric``; of its folds, the model kept (best val IoU)."""
    rows = {r["arm"]: r[f"{metric}_mean"] for r in summarize(results)}
    arm = max(rows, key=lambda a: rows[a])
    return next(r for r in results if r.arm == arm and r.state_dict is not None)


def sweep_points(rows: list[dict[str, Any]]) -> dict[str, list[tuple[int, float, float]]]:
    """(n, IoU mean, IoU std) per sweep series: ``real`` and ``real+synthetic``."""
    points: dict[str, list[tuple[int, float, float]]] = {"real": [], "real+synthetic": []}
    for row in rows:
        series, _, n = row["arm"].rpartition("-n")
        if series in points and n.isdigit():
            points[series].append((int(n), row["iou_mean"], row["iou_std"]))
    return {k: sorted(v) for k, v in points.items()}


def plot_iou_vs_n(rows: list[dict[str, Any]]) -> Figure:
    """Test IoU (mean +- std over folds) against the number of real training images."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=(5, 3.5), dpi=100)
    ax = fig.add_subplot()
    for series, pts in sweep_points(rows).items():
        if pts:
            n, mean, std = map(np.array, zip(*pts, strict=True))
            ax.errorbar(n, mean, yerr=std, marker="o", capsize=3, label=series)
    ax.set_xlabel("real training images (n)")
    ax.set_ylabel("test IoU")
    ax.set_title("Small-data sweep")
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    return fig


# --------------------------------------------------------------------------------------------
# report


def pairs_grid(data: ImageSet, n: int) -> np.ndarray:
    """Up to ``n`` rows of [image | mask] side by side, H*rows x 2W x 3 uint8."""
    assert data.masks is not None
    rows = [
        np.concatenate([im, np.repeat(m[..., None] * 255, 3, -1)], 1)
        for im, m in zip(data.images[:n], data.masks[:n], strict=True)
    ]
    return np.concatenate(rows, 0).astype(np.uint8)


def _png(array: np.ndarray) -> bytes:
    from components.tracking import png_bytes

    return png_bytes(array)


def _fig_png(fig: Figure) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    return buf.getvalue()


def table_markdown(rows: list[dict[str, Any]]) -> str:
    """The results table: mean +- std over folds of each metric, one row per arm."""
    head = "| arm | train images | " + " | ".join(METRICS) + " |"
    sep = "|---|---:|" + "---:|" * len(METRICS)
    body = [
        f"| {r['arm']} | {r['train_images']:.0f} | "
        + " | ".join(f"{r[f'{m}_mean']:.3f} ± {r[f'{m}_std']:.3f}" for m in METRICS)
        + " |"
        for r in rows
    ]
    return "\n".join([head, sep, *body])


def write_report(
    out_dir: Path,
    rows: list[dict[str, Any]],
    samples: dict[str, ImageSet],
    facts: dict[str, Any],
    cfg: Config,
) -> Path:
    """Write ``report.md`` (+ PNGs) and a self-contained ``report.html`` into ``out_dir``.

    ``samples``: titled sets whose first image/mask pairs are shown (real, synthetic, styled).
    ``facts``: JSON-like sections (mask statistics, memorization, sets, timings) shown as given.
    """
    import json

    images = {
        f"samples_{i}.png": (title, _png(pairs_grid(s, cfg.polyp_study.report_samples)))
        for i, (title, s) in enumerate(samples.items())
        if len(s)
    }
    plot = _fig_png(plot_iou_vs_n(rows))
    table = table_markdown(rows)
    intro = (
        f"Profile `{cfg.profile}`: UNet++ ({cfg.polyp_study.encoder}) at "
        f"{cfg.polyp_study.image_size} px, {cfg.polyp_study.folds}-fold cross-validation on the "
        "train+val polyp images, metrics on the held-out test split (micro-averaged, threshold "
        f"{cfg.polyp_study.threshold}). Memorization features: {FEATURES} "
        f"({cfg.polyp_study.memorization_pixels}x{cfg.polyp_study.memorization_pixels} RGB)."
    )
    facts_json = json.dumps(facts, indent=2, sort_keys=True, default=str)
    md = [
        f"# Polyp segmentation study\n\n{intro}\n\n## Test metrics (mean ± std over folds)\n",
        table,
        "\n## IoU vs number of real images\n\n![IoU vs n](iou_vs_n.png)\n",
        "## Sample image/mask pairs\n",
    ]
    md += [f"### {title}\n\n![{title}]({name})\n" for name, (title, _) in images.items()]
    md += ["## Synthetic sets, mask statistics, memorization\n", f"```json\n{facts_json}\n```\n"]

    def img(data: bytes, alt: str) -> str:
        return f'<img alt="{html.escape(alt)}" src="data:image/png;base64,{base64.b64encode(data).decode()}">'

    cells = "".join(
        f"<tr><td>{html.escape(r['arm'])}</td><td>{r['train_images']:.0f}</td>"
        + "".join(f"<td>{r[f'{m}_mean']:.3f} ± {r[f'{m}_std']:.3f}</td>" for m in METRICS)
        + "</tr>"
        for r in rows
    )
    page = (
        "<!doctype html><html><head><meta charset='utf-8'><title>Polyp study</title><style>"
        "body{font-family:sans-serif;max-width:1100px;margin:auto}td,th{padding:2px 8px;"
        "border-bottom:1px solid #ddd;text-align:right}img{image-rendering:pixelated;margin:4px}"
        "</style></head><body><h1>Polyp segmentation study</h1>"
        f"<p>{html.escape(intro)}</p><h2>Test metrics (mean ± std over folds)</h2><table><tr>"
        "<th>arm</th><th>train images</th>"
        + "".join(f"<th>{m}</th>" for m in METRICS)
        + f"</tr>{cells}</table><h2>IoU vs number of real images</h2>{img(plot, 'IoU vs n')}"
        "<h2>Sample image/mask pairs</h2>"
        + "".join(f"<h3>{html.escape(t)}</h3>{img(b, t)}" for t, b in images.values())
        + f"<h2>Synthetic sets, mask statistics, memorization</h2><pre>{html.escape(facts_json)}"
        "</pre></body></html>"
    )
    with atomic_dir(out_dir) as tmp:
        (tmp / "report.md").write_text("\n".join(md), encoding="utf-8")
        (tmp / "report.html").write_text(page, encoding="utf-8")
        (tmp / "iou_vs_n.png").write_bytes(plot)
        for name, (_, data) in images.items():
            (tmp / name).write_bytes(data)
    return Path(out_dir)
