"""`dogbreeds sample-data`: a generated, learnable stand-in for a dog-breed photo dataset.

No package ships labelled dog photos and nothing may be downloaded, so the tests and the local demo
train on pictures drawn here. Each breed has its own shape, palette and texture, so a small network
learns them in an epoch or two, and every picture gets jitter and noise so it is not trivially so.
The same seed writes byte-identical files: every picture draws from its own random stream, derived
from (seed, breed, index), so nothing depends on the order the files are written in.

A few valid but awkward files (grayscale, PNG with alpha, EXIF-rotated, CMYK, 16-bit) are mixed in,
because real datasets have them and the seed system crashed on one; ``--broken K`` adds files that
must be skipped (truncated JPEG, empty file, text named .jpg).
"""

from __future__ import annotations

import io
import math
import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw
from tqdm import tqdm

BREEDS: tuple[str, ...] = (
    "Chihuahua", "Japanese_spaniel", "Maltese_dog", "Pekinese", "Shih-Tzu", "Blenheim_spaniel",
    "papillon", "toy_terrier", "Rhodesian_ridgeback", "Afghan_hound", "basset", "beagle",
    "bloodhound", "bluetick", "black-and-tan_coonhound", "Walker_hound", "English_foxhound",
    "redbone", "borzoi", "Irish_wolfhound", "Italian_greyhound", "whippet", "Ibizan_hound",
    "Norwegian_elkhound", "otterhound", "Saluki", "Scottish_deerhound", "Weimaraner",
    "Staffordshire_bullterrier", "American_Staffordshire_terrier", "Bedlington_terrier",
    "Border_terrier", "Kerry_blue_terrier", "Irish_terrier", "Norfolk_terrier", "Norwich_terrier",
    "Yorkshire_terrier", "wire-haired_fox_terrier", "Lakeland_terrier", "Sealyham_terrier",
    "Airedale", "cairn", "Australian_terrier", "Dandie_Dinmont", "Boston_bull", "golden_retriever",
    "Labrador_retriever", "German_shepherd", "Siberian_husky", "pug",
    # The rest of the 120 Stanford Dogs breeds, then 13 more: 133, as many as the Udacity set.
    "miniature_schnauzer", "giant_schnauzer", "standard_schnauzer", "Scotch_terrier",
    "Tibetan_terrier", "silky_terrier", "soft-coated_wheaten_terrier",
    "West_Highland_white_terrier", "Lhasa", "flat-coated_retriever", "curly-coated_retriever",
    "Chesapeake_Bay_retriever", "German_short-haired_pointer", "vizsla", "English_setter",
    "Irish_setter", "Gordon_setter", "Brittany_spaniel", "clumber", "English_springer",
    "Welsh_springer_spaniel", "cocker_spaniel", "Sussex_spaniel", "Irish_water_spaniel", "kuvasz",
    "schipperke", "groenendael", "malinois", "briard", "kelpie", "komondor",
    "Old_English_sheepdog", "Shetland_sheepdog", "collie", "Border_collie",
    "Bouvier_des_Flandres", "Rottweiler", "Doberman", "miniature_pinscher",
    "Greater_Swiss_Mountain_dog", "Bernese_mountain_dog", "Appenzeller", "EntleBucher", "boxer",
    "bull_mastiff", "Tibetan_mastiff", "French_bulldog", "Great_Dane", "Saint_Bernard",
    "Eskimo_dog", "malamute", "affenpinscher", "basenji", "Leonberg", "Newfoundland",
    "Great_Pyrenees", "Samoyed", "Pomeranian", "chow", "keeshond", "Brabancon_griffon",
    "Pembroke", "Cardigan", "toy_poodle", "miniature_poodle", "standard_poodle",
    "Mexican_hairless", "dingo", "dhole", "African_hunting_dog", "Akita", "American_eskimo_dog",
    "Anatolian_shepherd_dog", "Australian_cattle_dog", "Australian_shepherd", "Beauceron",
    "Bichon_frise", "Canaan_dog", "Dachshund", "Dalmatian", "Havanese", "Pharaoh_hound",
    "Portuguese_water_dog",
)  # fmt: skip
NAMINGS = ("stanford", "udacity", "plain")
# Valid but unusual files, each placed once (on a different breed) when there are enough images.
ODD_KINDS = ("grayscale", "png_alpha", "exif_rotated", "cmyk", "png16")
BROKEN_KINDS = ("truncated_jpeg", "empty", "text_as_jpeg")
SHAPES = ("ellipse", "rectangle", "triangle", "star", "ring")
JPEG_QUALITY = 90
_SIZE = re.compile(r"^(\d+)x(\d+)$")


@dataclass
class SampleDataSummary:
    """What was written, for the CLI's last line and for tests."""

    out_dir: Path
    class_dirs: list[str]
    images: int = 0
    odd_files: dict[str, str] = field(default_factory=dict)  # kind -> relative path
    broken_files: dict[str, str] = field(default_factory=dict)  # relative path -> kind


@dataclass(frozen=True)
class BreedStyle:
    """What makes one breed recognisable: a shape, two colours and a stripe texture."""

    shape: str
    foreground: tuple[int, int, int]
    background: tuple[int, int, int]
    stripe_angle: float  # radians
    stripe_period: float  # in fractions of the image side


def parse_size(text: str) -> tuple[int, int]:
    """``"64x48"`` -> ``(64, 48)``; anything else is an error saying the expected form."""
    match = _SIZE.match(text.strip().lower())
    if not match or min(int(match.group(1)), int(match.group(2))) < 8:
        raise ValueError(f"size {text!r} must be WIDTHxHEIGHT in pixels, each >= 8, e.g. 64x64")
    return int(match.group(1)), int(match.group(2))


def class_folder_name(index: int, breed: str, naming: str) -> str:
    """The folder name in the Stanford Dogs, Udacity or plain convention."""
    if naming == "stanford":
        return f"n{2085620 + index:08d}-{breed}"
    if naming == "udacity":
        return f"{index + 1:03d}.{breed}"
    if naming == "plain":
        return breed.lower()
    raise ValueError(f"naming {naming!r} is not one of {', '.join(NAMINGS)}")


def breed_style(index: int, count: int) -> BreedStyle:
    """Styles spread evenly over hue and shape, so any ``count`` breeds stay distinguishable."""
    hue = index / count
    shape = SHAPES[index % len(SHAPES)]
    # Background hue offset by a third of the wheel, darker or lighter by breed parity, so two
    # breeds with the same shape still differ in both colours.
    foreground = _hsv_to_rgb(hue, 0.85, 0.95)
    background = _hsv_to_rgb((hue + 0.33) % 1.0, 0.45, 0.35 if index % 2 else 0.75)
    return BreedStyle(
        shape=shape,
        foreground=foreground,
        background=background,
        stripe_angle=math.pi * ((index * 0.381966) % 1.0),
        stripe_period=0.08 + 0.12 * ((index * 0.618034) % 1.0),
    )


def _hsv_to_rgb(h: float, s: float, v: float) -> tuple[int, int, int]:
    i = int(h * 6) % 6
    f = h * 6 - int(h * 6)
    p, q, t = v * (1 - s), v * (1 - f * s), v * (1 - (1 - f) * s)
    r, g, b = [(v, t, p), (q, v, p), (p, v, t), (p, q, v), (t, p, v), (v, p, q)][i]
    return int(r * 255), int(g * 255), int(b * 255)


def render_image(
    style: BreedStyle, width: int, height: int, rng: np.random.Generator
) -> Image.Image:
    """One picture of a breed: striped background, a jittered shape in the breed's colour, noise."""
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32) / max(width, height)
    angle = style.stripe_angle + rng.normal(0, 0.15)
    phase = (xx * math.cos(angle) + yy * math.sin(angle)) / style.stripe_period
    stripes = np.sin(2 * math.pi * phase + rng.uniform(0, 2 * math.pi))[..., None]
    background = np.array(style.background, dtype=np.float32) * rng.uniform(0.8, 1.2)
    canvas = background + 35.0 * stripes
    image = Image.fromarray(canvas.clip(0, 255).astype(np.uint8), "RGB")

    draw = ImageDraw.Draw(image)
    side = min(width, height)
    radius = side * rng.uniform(0.22, 0.4)
    cx = width * rng.uniform(0.35, 0.65)
    cy = height * rng.uniform(0.35, 0.65)
    colour = tuple(
        int(c) for c in np.clip(np.array(style.foreground) + rng.normal(0, 18, 3), 0, 255)
    )
    _draw_shape(draw, style.shape, cx, cy, radius, rng.uniform(0, 2 * math.pi), colour)

    pixels = np.asarray(image, dtype=np.float32) + rng.normal(0, 10, (height, width, 3))
    return Image.fromarray(pixels.clip(0, 255).astype(np.uint8), "RGB")


def _draw_shape(
    draw: ImageDraw.ImageDraw,
    shape: str,
    cx: float,
    cy: float,
    r: float,
    turn: float,
    colour: tuple[int, ...],
) -> None:
    box = (cx - r, cy - r * 0.75, cx + r, cy + r * 0.75)
    if shape == "ellipse":
        draw.ellipse(box, fill=colour)
    elif shape == "rectangle":
        corners = [(-1, -0.6), (1, -0.6), (1, 0.6), (-1, 0.6)]
        draw.polygon(_turned(corners, cx, cy, r, turn), fill=colour)
    elif shape == "triangle":
        corners = [(math.cos(a), math.sin(a)) for a in (0, 2.094, 4.189)]
        draw.polygon(_turned(corners, cx, cy, r, turn), fill=colour)
    elif shape == "star":
        corners = [
            ((1.0 if k % 2 == 0 else 0.45) * math.cos(k * math.pi / 5),
             (1.0 if k % 2 == 0 else 0.45) * math.sin(k * math.pi / 5))
            for k in range(10)
        ]  # fmt: skip
        draw.polygon(_turned(corners, cx, cy, r, turn), fill=colour)
    else:  # ring
        draw.ellipse((cx - r, cy - r, cx + r, cy + r), outline=colour, width=max(2, int(r / 3)))


def _turned(
    points: list[tuple[float, float]], cx: float, cy: float, r: float, turn: float
) -> list[tuple[float, float]]:
    cos, sin = math.cos(turn), math.sin(turn)
    return [(cx + r * (x * cos - y * sin), cy + r * (x * sin + y * cos)) for x, y in points]


def encode(image: Image.Image, kind: str | None) -> tuple[bytes, str]:
    """Encode a picture as a normal JPEG or one of the odd kinds; returns (bytes, extension)."""
    buffer = io.BytesIO()
    if kind is None:
        image.save(buffer, "JPEG", quality=JPEG_QUALITY)
        return buffer.getvalue(), ".jpg"
    if kind == "grayscale":
        image.convert("L").save(buffer, "JPEG", quality=JPEG_QUALITY)
        return buffer.getvalue(), ".jpg"
    if kind == "cmyk":
        image.convert("CMYK").save(buffer, "JPEG", quality=JPEG_QUALITY)
        return buffer.getvalue(), ".jpg"
    if kind == "exif_rotated":
        # Stored turned a quarter anticlockwise with Orientation=6 ("rotate 90 CW to display"),
        # so a decoder that honours EXIF shows the picture upright, like a phone photo.
        exif = Image.Exif()
        exif[0x0112] = 6
        image.transpose(Image.Transpose.ROTATE_90).save(
            buffer, "JPEG", quality=JPEG_QUALITY, exif=exif.tobytes()
        )
        return buffer.getvalue(), ".jpg"
    if kind == "png_alpha":
        rgba = image.convert("RGBA")
        alpha = np.full((image.height, image.width), 255, np.uint8)
        alpha[:, : image.width // 6] = 0  # a transparent band, flattened onto white when decoded
        rgba.putalpha(Image.fromarray(alpha, "L"))
        rgba.save(buffer, "PNG")
        return buffer.getvalue(), ".png"
    if kind == "png16":
        gray = np.asarray(image.convert("L"), dtype=np.uint16) * 257
        Image.fromarray(gray.astype("<u2")).save(buffer, "PNG")
        return buffer.getvalue(), ".png"
    raise ValueError(f"odd kind {kind!r} is not one of {', '.join(ODD_KINDS)}")


def broken_bytes(kind: str, rng: np.random.Generator) -> bytes:
    """Bytes that preprocess must skip with a reason, never crash on."""
    if kind == "truncated_jpeg":
        picture = Image.fromarray(rng.integers(0, 255, (48, 48, 3), dtype=np.uint8), "RGB")
        data, _ = encode(picture, None)
        return data[: len(data) // 2]
    if kind == "empty":
        return b""
    if kind == "text_as_jpeg":
        return b"this is a text file that was named like a photo\n"
    raise ValueError(f"broken kind {kind!r} is not one of {', '.join(BROKEN_KINDS)}")


def generate(
    out_dir: str | Path,
    *,
    breeds: int,
    per_breed: int,
    size: tuple[int, int],
    seed: int,
    naming: str = "plain",
    broken: int = 0,
    odd: bool = True,
    progress: bool = True,
) -> SampleDataSummary:
    """Write ``breeds`` class folders of ``per_breed`` pictures each (plus ``broken`` bad files)."""
    if not 2 <= breeds <= len(BREEDS):
        raise ValueError(f"breeds must be between 2 and {len(BREEDS)}, got {breeds}")
    if per_breed < 1:
        raise ValueError(f"per-breed must be at least 1, got {per_breed}")
    if broken < 0:
        raise ValueError(f"broken must be 0 or more, got {broken}")
    class_folder_name(0, BREEDS[0], naming)  # validates naming before anything is written
    width, height = size
    out_dir = Path(out_dir)
    folders = [class_folder_name(i, BREEDS[i], naming) for i in range(breeds)]
    summary = SampleDataSummary(out_dir=out_dir, class_dirs=folders)
    # The last picture of breed k is odd kind k (cycling over breeds), if the breed has >= 2.
    odd_slots = {}
    if odd and per_breed >= 2:
        odd_slots = {(k % breeds, per_breed - 1 - k // breeds): kind for k, kind in
                     enumerate(ODD_KINDS) if per_breed - 1 - k // breeds >= 1}  # fmt: skip

    with tqdm(total=breeds * per_breed + broken, desc="sample-data", disable=not progress) as bar:
        for b, folder in enumerate(folders):
            style = breed_style(b, breeds)
            class_dir = out_dir / folder
            class_dir.mkdir(parents=True, exist_ok=True)
            stem = BREEDS[b].lower()
            for i in range(per_breed):
                rng = np.random.default_rng([seed, b, i])
                # Sizes vary around WxH (0.8x..1.25x each side), as real photos do.
                w = max(8, round(width * rng.uniform(0.8, 1.25)))
                h = max(8, round(height * rng.uniform(0.8, 1.25)))
                kind = odd_slots.get((b, i))
                data, extension = encode(render_image(style, w, h, rng), kind)
                path = class_dir / f"{stem}_{i:04d}{extension}"
                path.write_bytes(data)
                summary.images += 1
                if kind:
                    summary.odd_files[kind] = path.relative_to(out_dir).as_posix()
                bar.update()
        for k in range(broken):
            kind = BROKEN_KINDS[k % len(BROKEN_KINDS)]
            path = out_dir / folders[k % breeds] / f"broken_{k:03d}.jpg"
            path.write_bytes(broken_bytes(kind, np.random.default_rng([seed, 1_000_003, k])))
            summary.broken_files[path.relative_to(out_dir).as_posix()] = kind
            bar.update()
    return summary

