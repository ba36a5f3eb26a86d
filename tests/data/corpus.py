"""A bad-input corpus, generated: every supported layout with good rows and one row per defect.

Each ``build_*`` function writes one source folder of tiny images and returns what validation
must make of every image id in it: a substring of the quarantine reason, or ``None`` for a row
that must reach ``dataset.csv``. The pictures are smooth shapes on a gradient (not noise), so a
re-encoded copy stays perceptually close to its original while two seeds are far apart, as with
real photographs.
"""

from __future__ import annotations

import io
import json
import zlib
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

Expected = dict[str, str | None]

GOOD_SIZE = (48, 40)  # above min_side 32, aspect 1.2
POLYP_SIZE = (40, 40)


def picture(seed: int, size: tuple[int, int] = GOOD_SIZE) -> np.ndarray:
    """An RGB picture (H, W, 3 uint8): a coloured gradient with three filled ellipses."""
    rng = np.random.default_rng([8, seed])
    w, h = size
    y, x = np.mgrid[0:h, 0:w] / max(w, h)
    angle = rng.uniform(0, 2 * np.pi)
    img = rng.uniform(60, 200, 3) + (np.cos(angle) * x + np.sin(angle) * y)[..., None] * (
        rng.uniform(-80, 80, 3)
    )
    for _ in range(3):
        cx, cy = rng.uniform(0.1, 0.9) * w / max(w, h), rng.uniform(0.1, 0.9) * h / max(w, h)
        a, b = rng.uniform(0.08, 0.3, 2)
        img[((x - cx) / a) ** 2 + ((y - cy) / b) ** 2 <= 1] = rng.uniform(0, 255, 3)
    img += rng.normal(0, 3, img.shape)
    return np.clip(img, 0, 255).astype(np.uint8)


def ellipse_mask(seed: int, size: tuple[int, int] = POLYP_SIZE) -> np.ndarray:
    """A 0/255 uint8 mask (H, W) holding one ellipse covering roughly 5-30% of the image."""
    rng = np.random.default_rng([9, seed])
    w, h = size
    y, x = np.mgrid[0:h, 0:w]
    cx, cy = rng.uniform(0.35, 0.65) * w, rng.uniform(0.35, 0.65) * h
    a, b = rng.uniform(0.15, 0.3) * w, rng.uniform(0.15, 0.3) * h
    return ((((x - cx) / a) ** 2 + ((y - cy) / b) ** 2 <= 1) * 255).astype(np.uint8)


def save(path: Path, pixels: np.ndarray | Image.Image, fmt: str | None = None, **kw: Any) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    image = pixels if isinstance(pixels, Image.Image) else Image.fromarray(pixels)
    image.save(path, fmt, **kw)
    return path


def encoded(pixels: np.ndarray | Image.Image, fmt: str = "JPEG", **kw: Any) -> bytes:
    buf = io.BytesIO()
    image = pixels if isinstance(pixels, Image.Image) else Image.fromarray(pixels)
    image.save(buf, fmt, **kw)
    return buf.getvalue()


def exif_rotated(pixels: np.ndarray) -> bytes:
    """A JPEG whose EXIF orientation (6) tells viewers to turn it 90 degrees."""
    exif = Image.Exif()
    exif[0x0112] = 6
    return encoded(pixels, "JPEG", exif=exif.tobytes())


def _legacy_json(image_id: str, label: str | None, diagnosis: str | None = "nevus") -> str:
    clinical: dict[str, Any] = {"age_approx": 50, "sex": "male"}
    if label is not None:
        clinical["benign_malignant"] = label
    if diagnosis is not None:
        clinical["diagnosis"] = diagnosis
    return json.dumps({"name": image_id, "meta": {"clinical": clinical}})


def _seed(name: str) -> int:
    """A seed from a name, the same in every process (``hash`` of a str is salted)."""
    return zlib.crc32(name.encode()) % 10_000


def _label(i: int) -> str:
    return "malignant" if i % 3 == 0 else "benign"


def build_legacy(root: Path, good: int = 8) -> Expected:
    """ISIC archive layout (ISIC_nnnnnnn.jpg + .json) with every image and JSON defect."""
    expected: Expected = {}

    def add(image_id: str, image: bytes | None, meta: str | None, want: str | None) -> None:
        if image is not None:
            (root / f"{image_id}.jpg").write_bytes(image)
        if meta is not None:
            (root / f"{image_id}.json").write_text(meta)
        expected[image_id] = want

    root.mkdir(parents=True)
    for i in range(1, good + 1):
        add(f"ISIC_{i:07d}", encoded(picture(i)), _legacy_json(f"ISIC_{i:07d}", _label(i)), None)
    ok = _legacy_json("x", "benign")
    add("ISIC_0000101", encoded(picture(101))[:300], ok, "undecodable image: OSError: Truncated")
    add("ISIC_0000102", b"", ok, "cannot identify image file 'ISIC_0000102.jpg'")
    add(
        "ISIC_0000103",
        b"<html>not a jpeg</html>",
        ok,
        "cannot identify image file 'ISIC_0000103.jpg'",
    )
    add("ISIC_0000104", encoded(picture(104), "PNG"), ok, None)  # PNG bytes under .jpg: fine
    add(
        "ISIC_0000105",
        encoded(Image.fromarray(picture(105)).convert("CMYK")),
        ok,
        "mode CMYK, expected RGB",
    )
    add(
        "ISIC_0000106",
        encoded(Image.fromarray(picture(106)).convert("L")),
        ok,
        "mode L, expected RGB",
    )
    add("ISIC_0000107", encoded(picture(107, (1, 1))), ok, "image 1x1, smaller than min_side 32")
    add("ISIC_0000108", encoded(picture(108, (320, 32))), ok, "aspect ratio 10.0 above")
    add("ISIC_0000109", exif_rotated(picture(109)), ok, None)  # kept as stored: 48x40
    add("ISIC_0000110", encoded(picture(110)), '{"meta": {"clinical": {"benign_', "malformed JSON")
    add("ISIC_0000111", encoded(picture(111)), _legacy_json("x", "benign", diagnosis=None), None)
    add("ISIC_0000112", encoded(picture(112)), _legacy_json("x", None), "missing label")
    add(
        "ISIC_0000113",
        encoded(picture(113)),
        _legacy_json("x", "indeterminate"),
        "label 'indeterminate' not in [benign, malignant]",
    )
    first = (root / "ISIC_0000001.jpg").read_bytes()
    add("ISIC_0000114", first, ok, "duplicate of ISIC_0000001 (same bytes)")
    second = Image.open(root / "ISIC_0000002.jpg")
    add("ISIC_0000115", encoded(second, "PNG"), ok, "duplicate of ISIC_0000002 (same pixels)")
    third = Image.open(root / "ISIC_0000003.jpg")
    add("ISIC_0000116", encoded(third, "JPEG", quality=70), ok, "near-duplicate of ISIC_0000003")
    add("photo", encoded(picture(117)), ok, "image_id 'photo' is not an ISIC id")
    add("ISIC_0000118", encoded(picture(118)), None, "missing label: image without metadata")
    add("ISIC_0000119", None, ok, "no image")
    add("ISIC_0000120", encoded(picture(120)), "[1, 2]", "top level is not an object")
    add(
        "ISIC_0000121",
        encoded(Image.fromarray(picture(121)[..., 0].astype(np.uint16) * 200), "PNG"),
        ok,
        "mode I;16, expected RGB",
    )
    # One id, two files: neither can be trusted to be the one the metadata describes.
    add("ISIC_0000122", encoded(picture(122)), ok, "duplicate image_id")
    save(root / "extra" / "ISIC_0000122.png", picture(123))
    return expected


_CSV_HEADER = "isic_id,attribution,copyright_license,benign_malignant,diagnosis_1,patient_id\n"


def build_isic_csv(root: Path, good: int = 8) -> Expected:
    """``isic image download`` layout: images + metadata.csv (here with a UTF-8 BOM)."""
    expected: Expected = {}
    rows = []
    root.mkdir(parents=True)
    for i in range(1, good + 1):
        image_id = f"ISIC_{i:07d}"
        save(root / f"{image_id}.jpg", picture(200 + i))
        rows.append(f"{image_id},Clinic,CC-BY,{_label(i)},,IP_{i // 2}")
        expected[image_id] = None

    def add(image_id: str, want: str | None, *csv_rows: str, image: bool = True) -> None:
        if image:
            save(root / f"{image_id}.jpg", picture(_seed(image_id) + 300))
        rows.extend(csv_rows)
        expected[image_id] = want

    add(
        "ISIC_0000201",
        "isic_id listed 2 times in metadata.csv",
        "ISIC_0000201,Clinic,CC-BY,benign,,IP_90",
        "ISIC_0000201,Clinic,CC-BY,benign,,IP_90",
    )
    add(
        "../../etc/passwd",
        "image_id '../../etc/passwd' is not an ISIC id",
        "../../etc/passwd,Clinic,CC-BY,benign,,IP_91",
        image=False,
    )
    add("ISIC_0000203", "no image", "ISIC_0000203,Clinic,CC-BY,benign,,IP_92", image=False)
    add("ISIC_0000204", "image without metadata")
    add("ISIC_0000205", "label 'indeterminate'", "ISIC_0000205,Clinic,CC-BY,,Indeterminate,IP_93")
    add("ISIC_0000206", None, "ISIC_0000206,Clinic,CC-BY,,Malignant,IP_94")  # diagnosis_1 label
    add("ISIC_0000207", "missing label", "ISIC_0000207,Clinic,CC-BY,,,IP_95")
    add("photo", "image_id 'photo' is not an ISIC id", "photo,Clinic,CC-BY,benign,,IP_96")
    (root / "metadata.csv").write_text("\ufeff" + _CSV_HEADER + "\n".join(rows) + "\n")
    return expected


def build_challenge(root: Path, good: int = 8) -> Expected:
    """Challenge layout: train/ images + train.csv of image_name, patient_id, target."""
    expected: Expected = {}
    rows = []
    for i in range(1, good + 1):
        image_id = f"ISIC_{i:07d}"
        save(root / "train" / f"{image_id}.jpg", picture(400 + i))
        rows.append(f"{image_id},IP_{i // 2},{int(_label(i) == 'malignant')}")
        expected[image_id] = None
    for n, target, want in ((301, "2", "label '2' not in"), (302, "", "missing label")):
        save(root / "train" / f"ISIC_{n:07d}.jpg", picture(n))
        rows.append(f"ISIC_{n:07d},IP_80,{target}")
        expected[f"ISIC_{n:07d}"] = want
    (root / "train" / "ISIC_0000303.jpg").write_bytes(encoded(picture(303))[:250])
    rows.append("ISIC_0000303,IP_81,0")
    expected["ISIC_0000303"] = "undecodable image: OSError: Truncated"
    save(root / "train" / "ISIC_0000304.jpg", picture(304))
    expected["ISIC_0000304"] = "image without metadata"
    # A name written with its extension: the row has no image, the image has no row.
    save(root / "train" / "ISIC_0000305.jpg", picture(305))
    rows.append("ISIC_0000305.jpg,IP_82,0")
    expected["ISIC_0000305"] = "image without metadata"
    expected["ISIC_0000305.jpg"] = "is not an ISIC id"
    (root / "train.csv").write_text("image_name,patient_id,target\n" + "\n".join(rows) + "\n")
    return expected


def _polyp_pair(
    images: Path, masks: Path, name: str, seed: int, ext: str = "jpg", **mask_kw: Any
) -> None:
    save(images / f"{name}.{ext}", picture(seed, POLYP_SIZE))
    kw = {"quality": 100, "subsampling": 0} if ext == "jpg" else {}
    save(masks / f"{name}.{ext}", ellipse_mask(seed), **(kw | mask_kw))


def build_kvasir(root: Path, good: int = 8) -> Expected:
    """Kvasir-SEG layout (images/, masks/, JPEG) with every mask defect."""
    images, masks = root / "images", root / "masks"
    expected: Expected = {}
    for i in range(1, good + 1):
        _polyp_pair(images, masks, f"k{i}", 500 + i)
        expected[f"k{i}"] = None

    def image(name: str, pixels: np.ndarray | Image.Image | None = None) -> None:
        save(
            images / f"{name}.jpg",
            picture(_seed(name) + 600, POLYP_SIZE) if pixels is None else pixels,
        )

    image("no_mask")
    expected["no_mask"] = "missing mask"
    image("small_mask")
    save(masks / "small_mask.jpg", ellipse_mask(1, (20, 30)))
    expected["small_mask"] = "mask 20x30, image 40x40"
    image("grey_mask")
    save(masks / "grey_mask.jpg", np.tile((np.arange(40) * 6).astype(np.uint8), (40, 1)))
    expected["grey_mask"] = "mask not binary"
    image("empty_mask")
    save(masks / "empty_mask.jpg", np.zeros((40, 40), np.uint8))
    expected["empty_mask"] = "mask empty (no foreground)"
    image("full_mask")
    save(masks / "full_mask.jpg", np.full((40, 40), 255, np.uint8))
    expected["full_mask"] = "mask full (no background)"
    image("rgb_mask")  # Kvasir's own masks are 3-channel JPEGs: grey RGB is fine
    save(masks / "rgb_mask.jpg", np.repeat(ellipse_mask(2)[..., None], 3, axis=2), quality=100)
    expected["rgb_mask"] = None
    image("red_mask")  # a coloured overlay is not a mask: red is grey 76 once converted
    red = np.zeros((40, 40, 3), np.uint8)
    red[..., 0] = ellipse_mask(3)
    save(masks / "red_mask.jpg", red, quality=100, subsampling=0)
    expected["red_mask"] = "mask not binary"
    image("bad_mask")
    (masks / "bad_mask.jpg").write_bytes(b"GIF89a broken")
    expected["bad_mask"] = (
        "undecodable mask: UnidentifiedImageError: cannot identify image file 'masks/bad_mask.jpg'"
    )
    rgba = np.dstack([picture(4, POLYP_SIZE), np.full((40, 40), 255, np.uint8)])
    save(images / "rgba_image.png", rgba)
    save(masks / "rgba_image.png", ellipse_mask(4))
    expected["rgba_image"] = "mode RGBA, expected RGB"
    _polyp_pair(images, masks, "a\\..\\..\\evil", 5)  # a path on Windows
    expected["a\\..\\..\\evil"] = "is not a safe file name"
    (images / "rotated.jpg").write_bytes(exif_rotated(picture(6, POLYP_SIZE)))
    save(masks / "rotated.jpg", ellipse_mask(6), quality=100, subsampling=0)
    expected["rotated"] = "EXIF orientation 6 on the image, 1 on the mask"
    return expected


def build_cvc(root: Path, good: int = 8) -> Expected:
    """CVC-ClinicDB layout (Original/, Ground Truth/, TIFF)."""
    images, masks = root / "Original", root / "Ground Truth"
    expected: Expected = {}
    for i in range(1, good + 1):
        _polyp_pair(images, masks, str(i), 700 + i, ext="tif")
        expected[str(i)] = None
    save(images / "101.tif", picture(801, POLYP_SIZE))
    save(masks / "101.tif", np.zeros((40, 40), np.uint8))
    expected["101"] = "mask empty (no foreground)"
    save(images / "102.tif", picture(802, POLYP_SIZE))
    save(masks / "102.tif", ellipse_mask(802, (36, 40)))
    expected["102"] = "mask 36x40, image 40x40"
    save(images / "103.tif", picture(803, POLYP_SIZE))
    expected["103"] = "missing mask"
    return expected


def build_rgba(root: Path, good: int = 8) -> Expected:
    """RGBA layout: each PNG's alpha channel is its mask."""
    expected: Expected = {}

    def add(name: str, seed: int, alpha: np.ndarray | None, want: str | None) -> None:
        rgb = picture(seed, POLYP_SIZE)
        save(root / f"{name}.png", rgb if alpha is None else np.dstack([rgb, alpha]))
        expected[name] = want

    for i in range(1, good + 1):
        add(f"r{i}", 900 + i, ellipse_mask(900 + i), None)
    add("no_alpha", 950, None, "no alpha channel for the mask (mode RGB)")
    add("opaque", 951, np.full((40, 40), 255, np.uint8), "mask full (no background)")
    add("transparent", 952, np.zeros((40, 40), np.uint8), "mask empty (no foreground)")
    add(
        "soft_alpha", 953, np.tile((np.arange(40) * 6).astype(np.uint8), (40, 1)), "mask not binary"
    )
    la = np.dstack([picture(954, POLYP_SIZE)[..., 0], ellipse_mask(954)])
    save(root / "grey.png", Image.fromarray(la, "LA"))
    expected["grey"] = "mode L, expected RGB"
    return expected


LESION_LAYOUTS = {"isic_legacy": build_legacy, "isic_csv": build_isic_csv,
                  "challenge_csv": build_challenge}  # fmt: skip
POLYP_LAYOUTS = {"kvasir": build_kvasir, "cvc": build_cvc, "rgba": build_rgba}
