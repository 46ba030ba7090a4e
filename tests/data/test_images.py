"""Safe image decoding: modes, orientation, size rule, and every way a file can be bad."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image, ImageFile

from cnnkit.data.images import decode_image, load_image, probe_image
from cnnkit.errors import ConfigError, DataError
from tests.data import imagefiles as f


def test_png_round_trips_exactly_from_bytes_and_path(tmp_path) -> None:
    picture = f.rgb_array(1)
    path = f.write(tmp_path / "a.png", f.png(picture))
    for source in (path, str(path), path.read_bytes()):
        pixels = load_image(source)
        assert pixels.dtype == np.uint8 and pixels.shape == (3, 16, 16)
        assert np.array_equal(pixels, picture.transpose(2, 0, 1))


def test_grey_stays_grey_and_channels_can_be_forced() -> None:
    grey = (np.arange(64).reshape(8, 8) * 4).astype(np.uint8)
    data = f.png(grey)
    assert load_image(data).shape == (1, 8, 8)
    rgb = load_image(data, channels=3)
    assert rgb.shape == (3, 8, 8) and all(np.array_equal(c, grey) for c in rgb)
    colour = f.png(f.rgb_array(2))
    luma = load_image(colour, channels=1)
    expected = np.asarray(Image.open(__import__("io").BytesIO(colour)).convert("L"))
    assert np.array_equal(luma[0], expected)


def test_format_is_decided_by_content_not_name(tmp_path) -> None:
    path = f.write(tmp_path / "photo.jpg", f.png(f.rgb_array(3)))
    assert probe_image(path).format == "PNG"
    assert np.array_equal(load_image(path), f.rgb_array(3).transpose(2, 0, 1))


def test_cmyk_becomes_the_right_rgb() -> None:
    red = np.zeros((8, 8, 3), np.uint8)
    red[..., 0] = 255
    data = f.cmyk_jpeg(red)
    assert probe_image(data).mode == "CMYK"
    decoded = decode_image(data)
    assert decoded.conversion == "CMYK->RGB"
    r, g, b = decoded.pixels.reshape(3, -1).mean(axis=1)
    assert r > 240 and g < 15 and b < 15


def test_exif_orientation_is_applied() -> None:
    upright = np.zeros((12, 20, 3), np.uint8)
    upright[:, :10] = (255, 0, 0)  # left half red, right half blue
    upright[:, 10:] = (0, 0, 255)
    data = f.exif_rotated_jpeg(upright, orientation=6)
    stored = Image.open(__import__("io").BytesIO(data))
    assert stored.size == (12, 20)  # stored sideways: width 12, height 20
    info = probe_image(data)
    assert (info.width, info.height, info.orientation) == (20, 12, 6)
    pixels = load_image(data)
    assert pixels.shape == (3, 12, 20)
    assert pixels[0, :, :8].mean() > 200 and pixels[2, :, 12:].mean() > 200


def test_sixteen_bit_is_scaled_not_clipped() -> None:
    ramp = np.linspace(0, 65535, 256).astype(np.uint16).reshape(16, 16)
    decoded = decode_image(f.png16(ramp))
    assert decoded.info.mode.startswith("I;16") and decoded.info.grey
    assert decoded.conversion.endswith("->L (scaled)")
    expected = np.rint(ramp / 257.0).astype(np.uint8)
    assert np.array_equal(decoded.pixels[0], expected)
    assert decoded.pixels.max() == 255 and len(np.unique(decoded.pixels)) > 200


def test_alpha_is_composited_on_the_background() -> None:
    colour = np.zeros((4, 4, 3), np.uint8)
    colour[...] = (0, 200, 0)
    alpha = np.zeros((4, 4), np.uint8)
    alpha[:, 2:] = 255
    data = f.rgba_png(colour, alpha)
    pixels = load_image(data)
    assert pixels.shape == (3, 4, 4)
    assert (pixels[:, :, :2] == 255).all()  # transparent -> white
    assert (pixels[:, :, 2:].reshape(3, -1).T == (0, 200, 0)).all()
    black = load_image(data, background=(0, 0, 0))
    assert (black[:, :, :2] == 0).all()


def test_grey_with_alpha_and_grey_palette_stay_grey() -> None:
    la = Image.fromarray(
        np.dstack([np.full((4, 4), 100, np.uint8), np.full((4, 4), 255, np.uint8)])
    )
    assert la.mode == "LA"
    pixels = load_image(f.encode(la, "PNG"))
    assert pixels.shape == (1, 4, 4) and (pixels == 100).all()
    grey_palette = Image.fromarray(np.arange(16, dtype=np.uint8).reshape(4, 4) * 16).convert("P")
    decoded = decode_image(f.encode(grey_palette, "GIF"))
    assert decoded.info.grey and decoded.pixels.shape == (1, 4, 4)


def test_colour_palette_is_expanded() -> None:
    picture = f.rgb_array(4)
    palette = Image.fromarray(picture).convert("P")
    decoded = decode_image(f.encode(palette, "GIF"))
    assert decoded.conversion == "P->RGB" and decoded.pixels.shape == (3, 16, 16)
    assert np.array_equal(decoded.pixels, np.asarray(palette.convert("RGB")).transpose(2, 0, 1))


@pytest.mark.parametrize(
    ("fit", "check"),
    [
        # 8 wide x 4 high red picture into 8x8: pad keeps it whole, black above and below
        ("pad", lambda p: (p[0, 2:6] == 255).all() and (p[:, :2] == 0).all()),
        # crop scales to 16x8 and keeps the centre: all red
        ("crop", lambda p: (p[0] == 255).all()),
        # stretch fills the square: all red
        ("stretch", lambda p: (p[0] == 255).all() and (p[1:] == 0).all()),
    ],
)
def test_fit_rules(fit, check) -> None:
    red = np.zeros((4, 8, 3), np.uint8)
    red[..., 0] = 255
    pixels = load_image(f.png(red), size=(8, 8), fit=fit)
    assert pixels.shape == (3, 8, 8) and check(pixels)


def test_pad_is_centred_with_the_smaller_margin_first() -> None:
    white = np.full((2, 8), 255, np.uint8)
    pixels = load_image(f.png(white), size=(5, 8), fit="pad")[0]
    assert (pixels[0] == 0).all() and (pixels[1:3] == 255).all() and (pixels[3:] == 0).all()


def test_images_of_the_target_size_are_untouched() -> None:
    picture = f.rgb_array(5)
    decoded = decode_image(f.png(picture), size=(16, 16))
    assert not decoded.fitted and np.array_equal(decoded.pixels, picture.transpose(2, 0, 1))


def test_large_jpeg_shrinks_through_the_decoder_draft() -> None:
    big = f.rgb_array(6, 512, 512)
    pixels = load_image(f.jpeg(big), size=(32, 32))
    reference = np.asarray(Image.fromarray(big).resize((32, 32), Image.Resampling.BILINEAR))
    assert pixels.shape == (3, 32, 32)
    assert np.abs(pixels.astype(int) - reference.transpose(2, 0, 1)).mean() < 6


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (f.truncated(f.jpeg(f.rgb_array(7, 64, 64))), "truncated"),
        (f.truncated(f.png(f.rgb_array(7, 64, 64))), "truncated"),
        (b"this is a text file\n", "not a readable image"),
        (b"", "not a readable image"),
        (b"\x89PNG\r\n\x1a\n" + b"\x00" * 40, "header is corrupt"),
    ],
    ids=["truncated-jpeg", "truncated-png", "text", "empty", "broken-png"],
)
def test_bad_files_raise_data_errors(data, message) -> None:
    with pytest.raises(DataError, match=message):
        load_image(data)
    assert ImageFile.LOAD_TRUNCATED_IMAGES is False


def test_decompression_bomb_is_an_error_before_decoding(tmp_path) -> None:
    data = f.png(np.zeros((100, 100), np.uint8))
    with pytest.raises(DataError, match=r"too large .*100x100.*decompression-bomb"):
        load_image(data, max_pixels=5000)
    with pytest.raises(DataError, match="too large"):
        probe_image(data, max_pixels=5000)
    assert load_image(data, max_pixels=10_000).shape == (1, 100, 100)


def test_formats_outside_the_list_are_refused() -> None:
    eps = b"%!PS-Adobe-3.0 EPSF-3.0\n%%BoundingBox: 0 0 10 10\n"
    with pytest.raises(DataError, match="not a readable image"):
        load_image(eps)


def test_missing_file_and_bad_options(tmp_path) -> None:
    with pytest.raises(DataError, match="no such image file"):
        load_image(tmp_path / "nope.png")
    data = f.png(f.rgb_array(8))
    with pytest.raises(ConfigError, match="channels must be 1"):
        load_image(data, channels=2)
    with pytest.raises(ConfigError, match="unknown fit 'squash'"):
        load_image(data, size=(4, 4), fit="squash")
    with pytest.raises(ConfigError, match="image size"):
        load_image(data, size=(0, 4))
