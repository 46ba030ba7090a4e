"""Image files written by the tests: every kind of file a real folder of pictures holds."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
from PIL import Image

EXIF_ORIENTATION = 0x0112


def rgb_array(seed: int, height: int = 16, width: int = 16) -> np.ndarray:
    """A distinct, smooth-ish RGB picture ``(H, W, 3)`` uint8 (smooth so JPEG keeps it close)."""
    rng = np.random.default_rng(seed)
    base = rng.integers(0, 256, size=(4, 4, 3)).astype(np.uint8)
    return np.asarray(Image.fromarray(base).resize((width, height), Image.Resampling.BILINEAR))


def encode(image: Image.Image, fmt: str, **options) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, fmt, **options)
    return buffer.getvalue()


def png(array: np.ndarray) -> bytes:
    return encode(Image.fromarray(array), "PNG")


def jpeg(array: np.ndarray, quality: int = 95) -> bytes:
    return encode(Image.fromarray(array), "JPEG", quality=quality)


def cmyk_jpeg(array: np.ndarray) -> bytes:
    return encode(Image.fromarray(array).convert("CMYK"), "JPEG", quality=95)


def exif_rotated_jpeg(array: np.ndarray, orientation: int = 6) -> bytes:
    """A JPEG stored sideways with an EXIF tag saying how to turn it upright.

    ``array`` is the upright picture; orientation 6 means "rotate 90 degrees clockwise to
    view", so the stored pixels are the upright picture turned 90 degrees anticlockwise.
    """
    stored = np.rot90(array, k=1) if orientation == 6 else array
    exif = Image.Exif()
    exif[EXIF_ORIENTATION] = orientation
    return encode(Image.fromarray(np.ascontiguousarray(stored)), "JPEG", quality=95, exif=exif)


def png16(array16: np.ndarray) -> bytes:
    """A 16-bit grey PNG of a uint16 ``(H, W)`` array."""
    return encode(Image.fromarray(array16.astype(np.uint16)), "PNG")


def rgba_png(array: np.ndarray, alpha: np.ndarray) -> bytes:
    return encode(Image.fromarray(np.dstack([array, alpha]).astype(np.uint8), "RGBA"), "PNG")


def truncated(data: bytes) -> bytes:
    return data[: len(data) // 2]


def write(path: Path, data: bytes) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


def planted_folder(root: Path) -> Path:
    """A train/ test/ folder of 16x16 pictures with every problem the health check finds.

    train/cat: 6 good PNGs, a CMYK JPEG, a sideways JPEG with an EXIF orientation tag
    (12x16 stored), a 16-bit grey PNG, a PNG named .jpg, an exact copy of cat/00.png,
    a corrupt file, a truncated JPEG, a hidden file and a text file.
    train/dog: 6 good PNGs, an RGBA PNG, a palette GIF, a JPEG re-encoding of dog/00.png
    (a near duplicate). train/fish: empty. train/.cache: a hidden folder.
    test/cat, test/dog: 2 good PNGs each, plus a copy of train/dog/01.png (a leak).
    """
    train, test = root / "train", root / "test"
    for c, cls in enumerate(("cat", "dog")):
        for i in range(6):
            write(train / cls / f"{i:02d}.png", png(rgb_array(100 * c + i)))
        for i in range(2):
            write(test / cls / f"t{i}.png", png(rgb_array(1000 + 100 * c + i)))
    cat, dog = train / "cat", train / "dog"
    write(cat / "cmyk.jpg", cmyk_jpeg(rgb_array(7)))
    write(cat / "rotated.jpg", exif_rotated_jpeg(rgb_array(8, 16, 12)))
    ramp = (np.arange(16 * 16).reshape(16, 16) * 257).astype(np.uint16)
    write(cat / "deep.png", png16(ramp))
    write(cat / "really_png.jpg", png(rgb_array(9)))
    write(cat / "copy_of_00.png", (cat / "00.png").read_bytes())
    write(cat / "corrupt.png", b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 4)
    write(cat / "truncated.jpg", truncated(jpeg(rgb_array(10, 64, 64))))
    write(cat / ".DS_Store", b"\x00\x00\x00\x01Bud1")
    write(cat / "notes.txt", b"these are cats\n")
    alpha = np.full((16, 16), 255, np.uint8)
    alpha[:, :8] = 0
    write(dog / "alpha.png", rgba_png(rgb_array(11), alpha))
    write(dog / "palette.gif", encode(Image.fromarray(rgb_array(12)).convert("P"), "GIF"))
    write(dog / "near_00.jpg", jpeg(np.asarray(Image.open(dog / "00.png")), quality=98))
    (train / "fish").mkdir()
    write(train / ".cache" / "thumb.png", png(rgb_array(13)))
    write(test / "dog" / "leak.png", (dog / "01.png").read_bytes())
    return root
