"""The transforms: shape, dtype, range, probability 0, seeds, records, and their geometry."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from cnnkit.augment import (
    Brightness,
    Contrast,
    Crop,
    CutMix,
    Cutout,
    Distort,
    Erase,
    FlipLR,
    FlipTB,
    Mixup,
    Pipeline,
    Rotate,
    Shear,
    Skew,
    Translate,
    Zoom,
)
from cnnkit.augment.transforms import Transform
from cnnkit.errors import ConfigError, DataError

# every transform, with settings that make it act visibly on small images
TRANSFORMS = [
    Rotate(max_left=30, max_right=30),
    Rotate(fill="crop"),
    Rotate(fill="reflect"),
    Skew(magnitude=0.3, type="all"),
    Distort(grid_width=3, grid_height=3, magnitude=2),
    Shear(max_left=20, max_right=20),
    Shear(axis="y", fill="crop"),
    Zoom(min_factor=0.7, max_factor=1.4, fill="edge"),
    Crop(fraction=0.7),
    Crop(size=(10, 12)),
    Crop(fraction=1.0, padding=2, fill="reflect"),
    Translate(pixels=3),
    Translate(pixels=2, fill="edge"),
    FlipLR(p=0.5),
    FlipTB(p=0.5),
    Brightness(),
    Contrast(),
    Erase(value="noise"),
    Erase(value=128),
    Cutout(size=0.4),
]
IDS = [t.describe() for t in TRANSFORMS]
SHAPE = (3, 14, 16)


def images(n: int = 16, channels: int = 3, seed: int = 0) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    return torch.randint(0, 256, (n, channels, *SHAPE[1:]), generator=generator, dtype=torch.uint8)


def marked(height: int = 5, width: int = 5, row: int = 0, col: int = 0) -> torch.Tensor:
    """A black grey image (1, 1, H, W) with one white pixel."""
    image = torch.zeros(1, 1, height, width, dtype=torch.uint8)
    image[0, 0, row, col] = 255
    return image


def where_white(image: torch.Tensor) -> tuple[int, int]:
    flat = int(image[0, 0].flatten().argmax())
    return divmod(flat, image.shape[-1])


def run(transform: Transform, image: torch.Tensor, **params: object) -> torch.Tensor:
    """Apply ``transform`` with exactly these parameters to every image of the batch."""
    n = len(image)
    full = {"apply": torch.ones(n, dtype=torch.bool)}
    full.update(
        {k: torch.as_tensor(v).expand(n, *torch.as_tensor(v).shape) for k, v in params.items()}
    )
    return transform.apply(image, full)


# -- what every transform guarantees ------------------------------------------------------


@pytest.mark.parametrize("transform", TRANSFORMS, ids=IDS)
@pytest.mark.parametrize("channels", [1, 3])
def test_keeps_shape_dtype_and_range_for_uint8(transform: Transform, channels: int) -> None:
    x = images(channels=channels)
    y = transform(x, torch.Generator().manual_seed(1))
    assert y.shape == x.shape and y.dtype == torch.uint8
    assert not torch.equal(y, x)  # it did something to 16 images
    assert torch.equal(x, images(channels=channels))  # the input is left alone


@pytest.mark.parametrize("transform", TRANSFORMS, ids=IDS)
def test_float_batches_stay_float_in_0_255(transform: Transform) -> None:
    x = images().float()
    y = transform(x, torch.Generator().manual_seed(1))
    assert y.shape == x.shape and y.dtype == torch.float32
    assert float(y.min()) >= 0 and float(y.max()) <= 255


@pytest.mark.parametrize("transform", TRANSFORMS, ids=IDS)
@pytest.mark.parametrize("dtype", [torch.uint8, torch.float32])
def test_probability_zero_is_the_identity(transform: Transform, dtype: torch.dtype) -> None:
    x = images().to(dtype)
    never = type(transform)(**{**transform.settings(), "p": 0.0})
    assert torch.equal(never(x, torch.Generator().manual_seed(1)), x)


@pytest.mark.parametrize("transform", TRANSFORMS, ids=IDS)
def test_reproducible_from_the_seed(transform: Transform) -> None:
    x = images()
    a = transform(x, torch.Generator().manual_seed(7))
    b = transform(x, torch.Generator().manual_seed(7))
    c = transform(x, torch.Generator().manual_seed(8))
    assert torch.equal(a, b)
    assert not torch.equal(a, c)


@pytest.mark.parametrize("transform", TRANSFORMS, ids=IDS)
def test_each_image_depends_only_on_its_own_parameters(transform: Transform) -> None:
    """What makes a manifest replayable: an image alone gives what it gave in its batch."""
    x = images(n=6)
    params = transform.sample(6, SHAPE, torch.Generator().manual_seed(3))
    together = transform.apply(x, params)
    for i in range(6):
        alone = transform.apply(x[i : i + 1], {k: v[i : i + 1] for k, v in params.items()})
        assert torch.equal(alone[0], together[i])


def test_probability_acts_on_about_that_share_of_images() -> None:
    params = Rotate(p=0.3).sample(10_000, SHAPE, torch.Generator().manual_seed(0))
    assert 0.27 < params["apply"].float().mean() < 0.33


def test_batches_of_another_shape_or_type_are_refused() -> None:
    with pytest.raises(DataError, match=r"\(N, C, H, W\).*unsqueeze"):
        FlipLR()(torch.zeros(3, 5, 5, dtype=torch.uint8), torch.Generator())
    with pytest.raises(DataError, match="uint8 images or floats"):
        FlipLR()(torch.zeros(1, 3, 5, 5, dtype=torch.int32), torch.Generator())


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda: Rotate(p=1.5), "p must be a probability"),
        (lambda: Rotate(max_left=200), "degrees 0..180"),
        (lambda: Rotate(fill="blue"), "fill must be one of black, edge, reflect, crop"),
        (lambda: Shear(max_right=90), "degrees 0..89"),
        (lambda: Shear(axis="z"), "axis must be x, y or random"),
        (lambda: Zoom(min_factor=2, max_factor=1), "min_factor .* must not exceed max_factor"),
        (lambda: Zoom(min_factor=0), "min_factor must be positive"),
        (lambda: Skew(magnitude=2), "magnitude must be 0..1"),
        (lambda: Skew(type="twist"), "type must be one of tilt"),
        (lambda: Distort(grid_width=1), "at least 2"),
        (lambda: Distort(magnitude=-1), "magnitude is pixels >= 0"),
        (lambda: Translate(pixels=-1), "pixels must be a whole number >= 0"),
        (lambda: Crop(fraction=0), r"fraction must be in \(0, 1\]"),
        (lambda: Crop(size=(0, 4)), "size must be positive"),
        (lambda: Crop(padding=-2), "padding must be >= 0"),
        (lambda: Brightness(min_factor=-1), "min_factor must be >= 0"),
        (lambda: Contrast(min_factor=1.5, max_factor=1.2), "must not exceed"),
        (lambda: Erase(min_area=0.5, max_area=0.1), "min_area <= max_area"),
        (lambda: Erase(min_ratio=0), "min_ratio"),
        (lambda: Erase(value=300), "grey level 0..255 or noise"),
        (lambda: Cutout(size=1.5), r"size must be in \(0, 1\]"),
        (lambda: Mixup(alpha=0), "alpha must be positive"),
    ],
)
def test_bad_settings_name_the_transform_and_setting(make, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        make()


def test_sizes_that_do_not_fit_the_images_are_refused() -> None:
    with pytest.raises(ConfigError, match="crop: a 20x20 crop does not fit in 14x16"):
        Crop(size=(20, 20))(images(), torch.Generator())
    with pytest.raises(ConfigError, match="reflecting needs pixels"):
        Translate(pixels=20, fill="reflect")(images(), torch.Generator())


# -- geometry on a known image --------------------------------------------------------------


def test_rotate_90_degrees_left_and_right_moves_a_pixel_exactly() -> None:
    image = marked(5, 5, row=0, col=0)  # top-left corner
    assert where_white(run(Rotate(max_left=90), image, angle=90.0)) == (4, 0)  # anticlockwise
    assert where_white(run(Rotate(max_right=90), image, angle=-90.0)) == (0, 4)  # clockwise
    turned = run(Rotate(max_left=90), image, angle=90.0)
    assert int(turned.max()) == 255 and int(turned.sum()) == 255  # moved, not smeared


def test_rotate_crop_zooms_until_no_corner_is_empty() -> None:
    white = torch.full((1, 1, 20, 30), 200, dtype=torch.uint8)
    assert int(run(Rotate(), white, angle=25.0).min()) == 0  # black corners
    assert int(run(Rotate(fill="crop"), white, angle=25.0).min()) == 200  # none left


def test_flips_mirror_the_right_axis() -> None:
    image = marked(4, 6, row=1, col=0)
    assert where_white(run(FlipLR(), image)) == (1, 5)
    assert where_white(run(FlipTB(), image)) == (2, 0)


def test_translate_and_padded_crop_shift_by_whole_pixels() -> None:
    image = marked(6, 6, row=2, col=2)
    moved = run(Translate(pixels=2), image, dx=2, dy=-1)
    assert where_white(moved) == (1, 4) and int(moved.sum()) == 255
    # the crop window starts 1 row above and 2 columns right of the image's corner
    cropped = run(Crop(fraction=1.0, padding=2), image, top=-1, left=2)
    assert where_white(cropped) == (3, 0) and int(cropped.sum()) == 255
    edge = run(
        Translate(pixels=1, fill="edge"), torch.full((1, 1, 4, 4), 9, dtype=torch.uint8), dx=1, dy=1
    )
    assert int(edge.min()) == 9  # the uncovered row and column repeat the edge


def test_a_smaller_crop_is_stretched_over_the_whole_image() -> None:
    crop = Crop(size=(3, 3))
    assert where_white(run(crop, marked(5, 5, row=1, col=2), top=1, left=1)) == (0, 2)
    assert where_white(run(crop, marked(5, 5, row=3, col=3), top=1, left=1)) == (4, 4)


def test_zoom_scales_about_the_centre() -> None:
    image = marked(5, 5, row=1, col=1)
    assert where_white(run(Zoom(min_factor=2, max_factor=2), image, factor=2.0)) == (0, 0)


def test_shear_moves_rows_in_proportion_to_their_distance_from_the_centre() -> None:
    image = marked(5, 5, row=4, col=1)
    # 45 degrees along x: a row 2 below the centre moves 2 pixels right
    assert where_white(run(Shear(max_right=45), image, angle=45.0, axis=0)) == (4, 3)
    image = marked(5, 5, row=1, col=4)
    assert where_white(run(Shear(max_right=45), image, angle=45.0, axis=1)) == (3, 4)


def homography(src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    """The 3x3 projective map taking the four ``src`` points to ``dst`` (direct solve)."""
    rows, rhs = [], []
    for (x, y), (u, v) in zip(src, dst, strict=True):
        rows.append([x, y, 1, 0, 0, 0, -u * x, -u * y])
        rows.append([0, 0, 0, x, y, 1, -v * x, -v * y])
        rhs += [u, v]
    h = np.linalg.solve(np.array(rows, float), np.array(rhs, float))
    return np.append(h, 1).reshape(3, 3)


def test_skew_moves_points_as_the_perspective_of_its_corners() -> None:
    h, w = 24, 24
    corners = np.array([[-6.0, -3.0], [0, 0], [2.0, 5.0], [0, 0]])  # TL and BR pulled out
    frame = np.array([[0, 0], [w - 1, 0], [w - 1, h - 1], [0, h - 1]], float)
    mapping = homography(frame, frame + corners)
    for row, col in [(8, 10), (16, 6), (5, 18)]:
        u, v, s = mapping @ np.array([col, row, 1.0])
        image = torch.zeros(1, 1, h, w, dtype=torch.uint8)
        image[0, 0, row - 1 : row + 2, col - 1 : col + 2] = 255  # a 3x3 dot
        out = run(Skew(magnitude=0.5), image, corners=torch.tensor(corners, dtype=torch.float32))
        weights = out[0, 0].double()
        ys, xs = torch.meshgrid(torch.arange(h), torch.arange(w), indexing="ij")
        centre = (
            float((weights * ys).sum() / weights.sum()),
            float((weights * xs).sum() / weights.sum()),
        )
        assert abs(centre[0] - v / s) < 0.35 and abs(centre[1] - u / s) < 0.35


def test_distort_moves_the_image_with_its_grid_points() -> None:
    image = torch.zeros(1, 1, 9, 9, dtype=torch.uint8)
    image[0, 0, :, 5] = 255  # a vertical line one right of the centre column
    still = run(Distort(grid_width=2, grid_height=2), image, offsets=torch.zeros(1, 1, 2))
    assert torch.equal(still, image)
    # the centre grid point reads one pixel to its right: the line arrives at the centre
    moved = run(Distort(grid_width=2, grid_height=2), image, offsets=torch.tensor([[[1.0, 0.0]]]))
    assert int(moved[0, 0, 4].argmax()) == 4
    assert torch.equal(moved[0, 0, 0], image[0, 0, 0])  # the border stays put


def test_brightness_and_contrast_follow_pillow() -> None:
    image = torch.tensor([[[[100, 200]]]], dtype=torch.uint8)
    assert run(Brightness(), image, factor=0.5).flatten().tolist() == [50, 100]
    assert run(Brightness(), image, factor=2.0).flatten().tolist() == [200, 255]  # clipped
    assert run(Contrast(), image, factor=0.0).flatten().tolist() == [150, 150]  # all mean grey
    assert run(Contrast(), image, factor=2.0).flatten().tolist() == [50, 250]


def test_erase_fills_exactly_its_box_and_cutout_is_clipped_to_the_image() -> None:
    image = torch.full((1, 1, 6, 6), 50, dtype=torch.uint8)
    out = run(Erase(value=200), image, box=torch.tensor([1, 2, 3, 2]), seed=0)
    expected = image.clone()
    expected[0, 0, 1:4, 2:4] = 200
    assert torch.equal(out, expected)
    out = run(Cutout(), image, box=torch.tensor([-2, 4, 4, 4]), seed=0)
    assert int((out == 0).sum()) == 2 * 2  # rows 0..1, columns 4..5
    noisy = run(Erase(value="noise"), image, box=torch.tensor([0, 0, 6, 6]), seed=5)
    again = run(Erase(value="noise"), image, box=torch.tensor([0, 0, 6, 6]), seed=5)
    assert torch.equal(noisy, again) and len(noisy.unique()) > 10


# -- mixing ---------------------------------------------------------------------------------


def test_mixup_blends_images_and_labels_with_one_weight() -> None:
    x = images(n=8)
    labels = torch.arange(8) % 4
    mixed, mixing = Pipeline([Mixup(alpha=0.4)]).augment_batch(
        x, labels, torch.Generator().manual_seed(0)
    )
    assert mixing is not None and mixed.dtype == torch.uint8
    w = mixing.weight.view(-1, 1, 1, 1)
    expected = (w * x.float() + (1 - w) * x[mixing.partner].float()).round()
    assert (mixed.float() - expected).abs().max() <= 1
    targets = mixing.targets(4)
    assert targets.shape == (8, 4) and torch.allclose(targets.sum(1), torch.ones(8))
    for i in range(8):
        assert targets[i, labels[i]] >= mixing.weight[i] - 1e-6


def test_cutmix_pastes_a_box_and_weights_labels_by_area() -> None:
    x = images(n=8)
    labels = torch.arange(8)
    mixed, mixing = Pipeline([CutMix()]).augment_batch(x, labels, torch.Generator().manual_seed(2))
    assert mixing is not None
    changed = (mixed != x).any(1).flatten(1).float().sum(1)
    from_partner = (mixed == x[mixing.partner]).all(1).flatten(1).float().sum(1)
    area = SHAPE[1] * SHAPE[2]
    kept = mixing.weight * area
    assert torch.all(changed <= area - kept + 1e-3)  # nothing outside the box changed
    assert torch.all(from_partner >= area - kept - 1e-3)  # the box comes from the partner
    assert torch.allclose(mixing.targets(8).sum(1), torch.ones(8))


def test_mixing_at_probability_zero_changes_nothing() -> None:
    x = images(n=8)
    for mixer in (Mixup(p=0.0), CutMix(p=0.0)):
        mixed, mixing = Pipeline([mixer]).augment_batch(x, torch.arange(8), torch.Generator())
        assert torch.equal(mixed, x) and mixing is not None
        assert torch.equal(mixing.targets(8), torch.eye(8))


def test_mixing_needs_labels_and_the_last_place() -> None:
    with pytest.raises(ConfigError, match="only in training"):
        Mixup()(images(), torch.Generator())
    with pytest.raises(ConfigError, match="put it last"):
        Pipeline([Mixup(), FlipLR()])
    with pytest.raises(ConfigError, match="not a transform"):
        Pipeline(["flip"])  # type: ignore[list-item]


# -- pipelines --------------------------------------------------------------------------------


def test_a_pipeline_equals_its_steps_in_order_and_rounds_once() -> None:
    x = images()
    steps = [Rotate(max_left=20, max_right=20), Translate(pixels=2), FlipLR()]
    pipeline = Pipeline(steps)
    params = pipeline.sample(len(x), SHAPE, torch.Generator().manual_seed(4))
    by_pipeline = pipeline.apply(x, params)
    by_steps = x.float()
    for step, step_params in zip(steps, params, strict=True):
        by_steps = step.apply(by_steps, step_params)
    assert torch.equal(by_pipeline, by_steps.round().clamp(0, 255).to(torch.uint8))


def test_records_replay_exactly_and_name_only_what_acted() -> None:
    pipeline = Pipeline([Rotate(p=0.5), Distort(p=0.5), Erase(p=0.5, value="noise"), FlipTB(p=0.5)])
    x = images()
    params = pipeline.sample(len(x), SHAPE, torch.Generator().manual_seed(9))
    records = [pipeline.records(params, i) for i in range(len(x))]
    for i, image_records in enumerate(records):
        acted = [k for k, p in enumerate(params) if p["apply"][i]]
        assert [r["step"] for r in image_records] == acted
    import json

    replayed = pipeline.params_from_records(json.loads(json.dumps(records)), SHAPE)
    assert torch.equal(pipeline.apply(x, replayed), pipeline.apply(x, params))


def test_records_of_another_pipeline_are_refused() -> None:
    pipeline = Pipeline([Rotate()])
    with pytest.raises(ConfigError, match="belongs to another pipeline"):
        pipeline.params_from_records([[{"step": 0, "op": "zoom", "factor": 1.2}]], SHAPE)
    with pytest.raises(ConfigError, match="names no step"):
        pipeline.params_from_records([[{"step": 3, "op": "rotate", "angle": 1.0}]], SHAPE)
    with pytest.raises(ConfigError, match="lacks the parameter 'angle'"):
        pipeline.params_from_records([[{"step": 0, "op": "rotate"}]], SHAPE)
