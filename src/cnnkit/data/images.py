"""Safe image decoding: one entry point for every image that comes from outside.

:func:`load_image` takes a path or the bytes of a file (a folder of photos, ``cnnkit
predict``, an upload to the web demo) and returns a uint8 array ``(C, H, W)`` with the
requested channels and size. The same rules apply everywhere, so a model sees at
prediction time exactly what it saw in training.

What it guarantees:

- **The format is decided by decoding**, never by the file name; only common raster
  formats are accepted (:data:`FORMATS`), so no exotic decoder (or Ghostscript, for EPS)
  ever runs on foreign bytes.
- **Decompression bombs fail**: an image with more than ``max_pixels`` pixels (Pillow's
  ``Image.MAX_IMAGE_PIXELS``, about 89 megapixels, by default) raises a
  :class:`~cnnkit.errors.DataError` before its pixels are decoded.
- **Truncated files fail** (Pillow's ``LOAD_TRUNCATED_IMAGES`` is never switched on).
- **EXIF orientation is applied**, so a photo taken upright is upright.
- **Every pixel mode becomes uint8 grey or RGB correctly**: ``1`` and ``L`` are grey; a
  palette (``P``) image is expanded through its palette; ``CMYK``, ``YCbCr``, ``LAB`` and
  ``HSV`` are converted to RGB; alpha (``RGBA``, ``LA``, ``PA``, transparent palettes) is
  composited on ``background`` (white by default); 16-bit images (``I;16``, and ``I``
  whose values fit 0..65535) are *scaled* to 0..255 (``round(v / 257)``), never clipped;
  other 32-bit integer and float images are min-max scaled (floats already in 0..1 are
  multiplied by 255).

The size rule (:data:`FIT_MODES`), the same for training data and prediction:

- an image already of the target size is left alone;
- ``"pad"`` (the default): scale the image to fit inside the target, keeping its aspect
  ratio, then centre it on a black canvas (the left/top margin is the smaller one when
  the margins are odd);
- ``"crop"``: scale it to cover the target, keeping its aspect ratio, then cut the
  centre;
- ``"stretch"``: resize to the target, ignoring the aspect ratio.

Resizing uses Pillow's antialiased bilinear filter; large JPEGs are first reduced by the
decoder itself (``draft``), which is faster and gives the same picture within rounding.
Colour images become grey with ITU-R 601-2 luma (``L = 0.299 R + 0.587 G + 0.114 B``);
grey images become RGB by repeating the channel.
"""

from __future__ import annotations

import contextlib
import io
import logging
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from cnnkit.errors import ConfigError, DataError

log = logging.getLogger(__name__)

# What Image.open may decode: common raster formats only (the JPEG plugin also opens the
# multi-picture "MPO" JPEGs many cameras write; PPM covers PBM/PGM/PPM).
FORMATS = ("BMP", "GIF", "JPEG", "PNG", "PPM", "TIFF", "WEBP")
FIT_MODES = ("pad", "crop", "stretch")
DEFAULT_FIT = "pad"
# Pillow's resampling filters by name (resizing is "bilinear" unless a caller asks otherwise)
RESAMPLE = {"nearest": 0, "box": 4, "bilinear": 2, "hamming": 5, "bicubic": 3, "lanczos": 1}
WHITE = (255, 255, 255)

GREY_MODES = frozenset({"1", "L", "LA", "La", "I", "I;16", "I;16L", "I;16B", "I;16N", "F"})
ALPHA_MODES = frozenset({"RGBA", "RGBa", "LA", "La", "PA"})
# EXIF orientation tag values that turn the picture by 90 degrees (width and height swap)
EXIF_ORIENTATION = 0x0112
SWAPPING_ORIENTATIONS = frozenset({5, 6, 7, 8})

ImageSource = str | os.PathLike[str] | bytes


@dataclass(frozen=True)
class ImageInfo:
    """What a file's header says, read without decoding the pixels.

    Attributes:
        format: the format found by decoding (``"PNG"``, ``"JPEG"``, ...).
        width: width in pixels, after EXIF orientation.
        height: height in pixels, after EXIF orientation.
        mode: Pillow's pixel mode of the file (``"L"``, ``"RGB"``, ``"CMYK"``, ``"I;16"``...).
        grey: True when the picture has no colour (grey modes, all-grey palettes).
        orientation: the EXIF orientation tag (1 = upright, absent = 1).
    """

    format: str
    width: int
    height: int
    mode: str
    grey: bool
    orientation: int = 1


@dataclass(frozen=True)
class DecodedImage:
    """The pixels of one image and what was done to get them.

    Attributes:
        pixels: uint8 ``(C, H, W)``.
        info: the header facts of the original file.
        conversion: how the pixel mode was turned into grey/RGB, e.g. ``"CMYK->RGB"``,
            ``"I;16->L (scaled)"``, ``"RGBA->RGB (on background)"``; empty when none.
        fitted: True when the image was resized, padded or cropped to the target size.
    """

    pixels: np.ndarray
    info: ImageInfo
    conversion: str
    fitted: bool


def load_image(
    source: ImageSource,
    *,
    channels: int | None = None,
    size: tuple[int, int] | None = None,
    fit: str = DEFAULT_FIT,
    background: tuple[int, int, int] = WHITE,
    max_pixels: int | None = None,
    name: str | None = None,
) -> np.ndarray:
    """Decode an image file (path or bytes) into uint8 pixels ``(C, H, W)``.

    Args:
        source: a file path, or the bytes of an image file.
        channels: 1 (grey) or 3 (RGB); ``None`` keeps grey images grey and makes every
            other image RGB.
        size: target ``(height, width)``; ``None`` keeps the image's own size.
        fit: how an image of another size is brought to ``size``: ``"pad"``, ``"crop"``
            or ``"stretch"`` (see the module docstring).
        background: RGB colour transparent pixels are composited on.
        max_pixels: refuse images with more pixels than this (default: Pillow's
            decompression-bomb limit, ``PIL.Image.MAX_IMAGE_PIXELS``; Pillow itself
            refuses anything above twice its limit).
        name: what error messages call the image (default: the path, or ``<image bytes>``).

    Returns:
        uint8 array ``(C, H, W)``.

    Raises:
        DataError: the file is missing, not an image in an accepted format, truncated,
            corrupt, or too large.
        ConfigError: ``channels``, ``size`` or ``fit`` is invalid.
    """
    return decode_image(
        source,
        channels=channels,
        size=size,
        fit=fit,
        background=background,
        max_pixels=max_pixels,
        name=name,
    ).pixels


def probe_image(
    source: ImageSource, *, max_pixels: int | None = None, name: str | None = None
) -> ImageInfo:
    """Read only the header of an image: format, size (after EXIF orientation), mode.

    Raises:
        DataError: as :func:`load_image`, except that truncated pixel data is only found
            by decoding.
    """
    name = name or _name(source)
    with _opened(source, name, max_pixels) as image:
        return _info(image)


def decode_image(
    source: ImageSource,
    *,
    channels: int | None = None,
    size: tuple[int, int] | None = None,
    fit: str = DEFAULT_FIT,
    background: tuple[int, int, int] = WHITE,
    max_pixels: int | None = None,
    name: str | None = None,
    resample: str = "bilinear",
) -> DecodedImage:
    """:func:`load_image`, also saying what the file was and what was done to it
    (``resample``: the resizing filter, a name in :data:`RESAMPLE`)."""
    if channels not in (None, 1, 3):
        raise ConfigError(f"channels must be 1 (grey) or 3 (RGB), got {channels!r}")
    if fit not in FIT_MODES:
        raise ConfigError(f"unknown fit {fit!r}; choose one of {', '.join(FIT_MODES)}")
    if size is not None and (len(size) != 2 or min(size) < 1):
        raise ConfigError(f"image size must be (height, width) of positive ints, got {size}")
    if resample not in RESAMPLE:
        raise ConfigError(f"unknown resample {resample!r}; choose one of {', '.join(RESAMPLE)}")
    name = name or _name(source)
    with _opened(source, name, max_pixels) as image:
        info = _info(image)
        try:
            return _decode(image, info, channels, size, fit, background, resample)
        except (DataError, ConfigError):
            raise
        except Exception as exc:  # Pillow's decoders raise many types on bad data
            raise DataError(f"{name}: cannot decode the image ({_reason(exc)})") from exc


# -- internals ---------------------------------------------------------------------------


def _name(source: ImageSource) -> str:
    return "<image bytes>" if isinstance(source, bytes | bytearray) else str(source)


@contextlib.contextmanager
def _opened(source: ImageSource, name: str, max_pixels: int | None) -> Iterator[Any]:
    """Open an image lazily (header only), refusing unknown formats and bombs."""
    from PIL import Image

    limit = Image.MAX_IMAGE_PIXELS if max_pixels is None else max_pixels
    if isinstance(source, bytes | bytearray):
        stream: Any = io.BytesIO(source)
    else:
        stream = Path(source)
        if not stream.is_file():
            raise DataError(f"{stream}: no such image file")
    try:
        image = Image.open(stream, formats=FORMATS)
    except Image.DecompressionBombError as exc:
        raise DataError(_bomb(name, str(exc), limit)) from exc
    except Image.UnidentifiedImageError as exc:
        raise DataError(
            f"{name}: not a readable image (not {'/'.join(FORMATS)}, or its header is "
            "corrupt); convert it to PNG or JPEG, or remove it"
        ) from exc
    except Exception as exc:
        raise DataError(f"{name}: cannot read the image ({_reason(exc)})") from exc
    with image:
        width, height = image.size
        if limit is not None and width * height > limit:
            raise DataError(_bomb(name, f"{width}x{height} pixels", limit))
        if width < 1 or height < 1:
            raise DataError(f"{name}: the image has no pixels ({width}x{height})")
        yield image


def _bomb(name: str, what: str, limit: int | None) -> str:
    return (
        f"{name}: image is too large ({what}; the limit is {limit} pixels, Pillow's "
        "decompression-bomb limit); shrink the image, or pass a larger max_pixels if you "
        "trust the file"
    )


def _reason(exc: BaseException) -> str:
    text = str(exc).strip() or type(exc).__name__
    return text if len(text) < 200 else text[:200] + "..."


def _orientation(image: Any) -> int:
    try:
        value = image.getexif().get(EXIF_ORIENTATION, 1)
        return int(value) if int(value) in range(1, 9) else 1
    except Exception:  # a broken EXIF block must not make the picture unreadable
        return 1


def _palette_is_grey(image: Any) -> bool:
    try:
        palette = image.getpalette()
    except Exception:
        return False
    if not palette:
        return False
    rgb = np.asarray(palette, dtype=np.int64).reshape(-1, 3)
    return bool((rgb[:, 0] == rgb[:, 1]).all() and (rgb[:, 1] == rgb[:, 2]).all())


def _info(image: Any) -> ImageInfo:
    width, height = image.size
    orientation = _orientation(image)
    if orientation in SWAPPING_ORIENTATIONS:
        width, height = height, width
    mode = str(image.mode)
    grey = mode in GREY_MODES or (mode in ("P", "PA") and _palette_is_grey(image))
    return ImageInfo(
        format=str(image.format or "unknown"),
        width=int(width),
        height=int(height),
        mode=mode,
        grey=grey,
        orientation=orientation,
    )


def _decode(
    image: Any,
    info: ImageInfo,
    channels: int | None,
    size: tuple[int, int] | None,
    fit: str,
    background: tuple[int, int, int],
    resample: str = "bilinear",
) -> DecodedImage:
    from PIL import ImageOps

    if size is not None and info.format in ("JPEG", "MPO") and info.mode in ("L", "RGB"):
        # let the JPEG decoder shrink by 1/2, 1/4 or 1/8 while staying >= the target
        image.draft(info.mode, _draft_size(info, size))
    image.load()  # decodes the pixels; truncated data raises here
    if info.orientation != 1:
        try:
            image = ImageOps.exif_transpose(image)
        except Exception:
            log.warning("could not apply the EXIF orientation of an image; using it as stored")
    image, conversion = _to_grey_or_rgb(image, background, info.grey)
    want = channels or (1 if image.mode == "L" else 3)
    if want == 1 and image.mode != "L":
        image = image.convert("L")
        conversion = _join(conversion, "RGB->L")
    elif want == 3 and image.mode != "RGB":
        image = image.convert("RGB")
        conversion = _join(conversion, "L->RGB")
    fitted = False
    if size is not None and (image.height, image.width) != tuple(size):
        image = fit_image(image, size, fit, resample)
        fitted = True
    pixels = np.asarray(image, dtype=np.uint8)
    pixels = pixels[None] if pixels.ndim == 2 else pixels.transpose(2, 0, 1)
    return DecodedImage(np.ascontiguousarray(pixels), info, conversion, fitted)


def _join(first: str, second: str) -> str:
    return f"{first}, {second}" if first else second


def _draft_size(info: ImageInfo, size: tuple[int, int]) -> tuple[int, int]:
    height, width = size
    if info.orientation in SWAPPING_ORIENTATIONS:  # draft works on the stored orientation
        height, width = width, height
    return width, height


def _to_grey_or_rgb(image: Any, background: tuple[int, int, int], grey: bool) -> tuple[Any, str]:
    """Turn any Pillow mode into ``L`` or ``RGB``; returns the image and what was done.

    ``grey`` says the picture has no colour (a grey mode or an all-grey palette): it stays
    grey when its transparent parts are composited on a grey (or white/black) background.
    """
    from PIL import Image

    mode = image.mode
    if mode in ("L", "RGB"):
        return image, ""
    if mode == "1":
        return image.convert("L"), "1->L"
    if mode.startswith("I;16") or mode in ("I", "F"):
        return Image.fromarray(_scale_to_uint8(np.asarray(image), mode)), f"{mode}->L (scaled)"
    if mode == "P" and "transparency" in image.info:
        image, mode = image.convert("RGBA"), "P (transparent)"
    elif mode == "P":
        rgb = image.convert("RGB")
        return (rgb.convert("L"), "P->L") if grey else (rgb, "P->RGB")
    if image.mode in ALPHA_MODES:
        rgba = image.convert("RGBA")
        canvas = Image.new("RGBA", rgba.size, (*background, 255))
        out = Image.alpha_composite(canvas, rgba).convert("RGB")
        if grey and background[0] == background[1] == background[2]:
            return out.convert("L"), f"{mode}->L (on background)"
        return out, f"{mode}->RGB (on background)"
    return image.convert("RGB"), f"{mode}->RGB"


def _scale_to_uint8(values: np.ndarray, mode: str) -> np.ndarray:
    """16-bit, 32-bit and float pixels to 0..255: scaled, never clipped."""
    if values.ndim != 2:
        raise DataError(f"unsupported {mode} image of shape {values.shape}")
    if mode.startswith("I;16"):
        wide = values.astype(np.uint32)
        return ((wide * 255 + 32767) // 65535).astype(np.uint8)
    data = values.astype(np.float64)
    finite = np.isfinite(data)
    if not finite.all():
        data = np.where(finite, data, 0.0)
    low, high = (float(data.min()), float(data.max())) if data.size else (0.0, 0.0)
    if mode == "I" and low >= 0 and high <= 65535:
        scaled = data * (255.0 / 65535.0)
    elif mode == "F" and low >= 0 and high <= 1:
        scaled = data * 255.0
    elif high > low:
        scaled = (data - low) * (255.0 / (high - low))
    else:
        scaled = np.zeros_like(data)
    return np.rint(scaled).astype(np.uint8)


def fit_image(
    image: Any, size: tuple[int, int], fit: str = DEFAULT_FIT, resample: str = "bilinear"
) -> Any:
    """Bring a Pillow image to ``size`` = ``(height, width)`` by the rule ``fit``.

    ``"pad"`` keeps the aspect ratio and centres the picture on black; ``"crop"`` keeps the
    aspect ratio and cuts the centre; ``"stretch"`` ignores the aspect ratio. ``resample``
    names the filter (:data:`RESAMPLE`).
    """
    from PIL import Image

    height, width = size
    chosen = Image.Resampling(RESAMPLE[resample])
    if fit == "stretch":
        return image.resize((width, height), chosen)
    scale_w, scale_h = width / image.width, height / image.height
    scale = min(scale_w, scale_h) if fit == "pad" else max(scale_w, scale_h)
    new_w = max(1, round(image.width * scale))
    new_h = max(1, round(image.height * scale))
    if fit == "pad":
        new_w, new_h = min(new_w, width), min(new_h, height)
    else:
        new_w, new_h = max(new_w, width), max(new_h, height)
    resized = image.resize((new_w, new_h), chosen)
    if fit == "pad":
        canvas = Image.new(image.mode, (width, height), 0)
        canvas.paste(resized, ((width - new_w) // 2, (height - new_h) // 2))
        return canvas
    left, top = (new_w - width) // 2, (new_h - height) // 2
    return resized.crop((left, top, left + width, top + height))
