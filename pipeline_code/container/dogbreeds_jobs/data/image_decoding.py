"""Turn untrusted image bytes into an RGB picture the same way everywhere.

Preprocessing, training-data validation, the serving handler and the monitors all decode through
``decode_image`` so that a grayscale, CMYK, 16-bit, paletted, transparent or EXIF-rotated file is
seen identically at training time and at inference time (the seed system crashed on grayscale
images). Every failure is an ``ImageDecodeError`` with a short machine-readable ``reason`` and a
human message, so callers can count skipped files by reason or map them to an HTTP status.

Both entry points take the bytes or a seekable binary file: from a file, PIL reads the header and
then only what decoding needs, so validating a huge file does not load it into memory.
"""

from __future__ import annotations

import io
import os
import warnings
from dataclasses import dataclass
from typing import BinaryIO

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

# 40 megapixels is larger than any camera photo we expect (a 7,300 x 5,500 frame), and far below
# what would exhaust memory once decoded to RGB (40e6 * 3 bytes = 120 MB).
DEFAULT_MAX_PIXELS = 40_000_000

# Formats a user may send; anything else PIL happens to open (EPS, ICO, ...) is refused.
ALLOWED_FORMATS = ("JPEG", "PNG", "WEBP", "BMP", "GIF", "TIFF", "MPO")


class ImageDecodeError(ValueError):
    """The bytes are not a usable image. ``reason`` is one of the REASONS keys."""

    REASONS = {
        "empty": "the file is empty",
        "not_an_image": "the bytes are not an image in a supported format",
        "unsupported_format": "the image format is not supported",
        "truncated": "the image data is truncated or corrupt",
        "too_many_pixels": "the image has more pixels than allowed",
    }

    def __init__(self, reason: str, detail: str = "", *, image_format: str | None = None) -> None:
        if reason not in self.REASONS:
            raise ValueError(f"unknown decode failure reason {reason!r}")
        self.reason = reason
        self.detail = detail
        self.image_format = image_format  # the container format, where the header was readable
        message = self.REASONS[reason]
        super().__init__(f"{message}: {detail}" if detail else message)


class ImageTooLargeError(ImageDecodeError):
    """Raised for decompression bombs and oversized images (maps to HTTP 413, not 400)."""

    def __init__(self, detail: str = "") -> None:
        super().__init__("too_many_pixels", detail)


@dataclass(frozen=True)
class DecodedImage:
    """An image as RGB, upright, plus what the original file looked like."""

    image: Image.Image  # mode "RGB", EXIF orientation applied, fully loaded
    format: str  # the container format PIL detected, e.g. "JPEG"
    original_mode: str  # the mode before conversion, e.g. "CMYK" or "I;16"
    num_bytes: int


def decode_image(
    data: bytes | BinaryIO,
    *,
    max_pixels: int = DEFAULT_MAX_PIXELS,
    allowed_formats: tuple[str, ...] = ALLOWED_FORMATS,
    draft_size: tuple[int, int] | None = None,
) -> DecodedImage:
    """Decode ``data`` into an upright RGB image or raise ``ImageDecodeError``.

    ``draft_size`` (width, height) is a promise by the caller that it will shrink the image to at
    most that size afterwards: a JPEG is then decoded at a reduced DCT scale (1/2, 1/4 or 1/8) that
    still leaves both sides at least as large as asked: the inverse DCT, colour conversion and
    the later resize then work on a fraction of the pixels (the entropy decoding of the whole file
    remains). Other formats ignore it.
    """
    return open_image(data, max_pixels=max_pixels, allowed_formats=allowed_formats).decode(
        draft_size=draft_size
    )


@dataclass(frozen=True)
class OpenedImage:
    """An image whose header has been read and checked, but whose pixels are not decoded yet.

    Splitting the two lets a server refuse a bomb or an unsupported format cheaply while reading
    the request, and decode later once it knows the size it needs (``decode(draft_size=...)``).
    """

    _image: Image.Image
    format: str
    size: tuple[int, int]  # (width, height) as stored, before EXIF orientation
    num_bytes: int

    def decode(self, *, draft_size: tuple[int, int] | None = None) -> DecodedImage:
        """Decode the pixels into an upright RGB image (see ``decode_image`` for ``draft_size``)."""
        image = self._image
        original_mode = image.mode
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", Image.DecompressionBombWarning)
                if draft_size is not None and self.format in ("JPEG", "MPO"):
                    _check_draft_size(draft_size)
                    # A square request keeps the guarantee whatever the EXIF orientation is.
                    side = max(draft_size)
                    image.draft("RGB" if image.mode == "RGB" else None, (side, side))
                image.load()
                image = ImageOps.exif_transpose(image)
                rgb = to_rgb(image)
        except Image.DecompressionBombError as error:
            raise ImageTooLargeError(str(error)) from error
        except (OSError, SyntaxError, ValueError, TypeError) as error:
            raise ImageDecodeError("truncated", str(error), image_format=self.format) from error
        return DecodedImage(
            image=rgb, format=self.format, original_mode=original_mode, num_bytes=self.num_bytes
        )


def _check_draft_size(draft_size: tuple[int, int]) -> None:
    if len(draft_size) != 2 or any(int(side) < 1 for side in draft_size):
        raise ValueError(f"draft_size must be (width, height) of positive ints, got {draft_size!r}")


def open_image(
    data: bytes | BinaryIO,
    *,
    max_pixels: int = DEFAULT_MAX_PIXELS,
    allowed_formats: tuple[str, ...] = ALLOWED_FORMATS,
) -> OpenedImage:
    """Read and check the header of ``data`` (format, pixel count) without decoding pixels.

    ``data`` is the bytes or a seekable binary file, read from its current position; a file must
    stay open until the image is decoded.
    """
    if isinstance(data, (bytes, bytearray, memoryview)):
        num_bytes = len(data)
        stream: BinaryIO = io.BytesIO(data)
    else:
        stream = data
        start = stream.tell()
        num_bytes = stream.seek(0, os.SEEK_END) - start
        stream.seek(start)
    if not num_bytes:
        raise ImageDecodeError("empty")
    try:
        with warnings.catch_warnings():
            # PIL warns (then errors) on large images by its own global limit; ours is explicit.
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            image = Image.open(stream)
    except Image.DecompressionBombError as error:
        raise ImageTooLargeError(str(error)) from error
    except UnidentifiedImageError as error:
        # PIL's message ends with the repr of the file object (<_io.BytesIO object at 0x...>).
        raise ImageDecodeError("not_an_image", "cannot identify image file") from error
    except (OSError, SyntaxError, ValueError) as error:
        raise ImageDecodeError("not_an_image", str(error)) from error

    image_format = str(image.format)
    if image_format not in allowed_formats:
        raise ImageDecodeError(
            "unsupported_format", f"{image_format}; allowed: {', '.join(allowed_formats)}"
        )
    width, height = image.size
    # Checked from the header, before any pixel is decoded, so a bomb costs nothing.
    if width * height > max_pixels:
        raise ImageTooLargeError(f"{width}x{height} is over the limit of {max_pixels} pixels")
    if width == 0 or height == 0:
        raise ImageDecodeError("truncated", f"size {width}x{height}", image_format=image_format)
    return OpenedImage(_image=image, format=image_format, size=(width, height), num_bytes=num_bytes)


def to_rgb(image: Image.Image) -> Image.Image:
    """Convert any PIL mode to 8-bit RGB; transparency is flattened onto white."""
    mode = image.mode
    if mode == "RGB":
        return image
    if mode in ("I;16", "I;16B", "I;16L", "I;16N", "I", "F"):
        # 16-bit and float images: scale the actual range to 0..255 rather than clipping,
        # so a 16-bit PNG does not turn white.
        array = np.asarray(image, dtype=np.float64)
        low, high = float(array.min()), float(array.max())
        scale = 255.0 / (high - low) if high > low else 0.0
        gray = ((array - low) * scale).clip(0, 255).astype(np.uint8)
        return Image.fromarray(gray, mode="L").convert("RGB")
    if mode == "P":
        image = image.convert("RGBA")
        mode = "RGBA"
    if mode in ("RGBA", "LA", "PA", "RGBa", "La"):
        rgba = image.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(background, rgba).convert("RGB")
    return image.convert("RGB")
