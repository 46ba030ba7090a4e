"""Batched image transforms: one vocabulary for offline files and online training batches.

Every transform works on a whole batch ``(N, C, H, W)`` on any device, in one of two
dtypes, and gives back the same shape and dtype:

- **uint8** (how cnnkit holds images: files, Datasets, the training loop's batches before
  :class:`~cnnkit.data.preprocess.Preprocessing`): the arithmetic is done in float32 and
  the result rounded back, so a transform written to a PNG file is bit for bit what the
  training loop feeds the model;
- **float** on the same 0..255 scale (a :class:`~cnnkit.augment.pipeline.Pipeline` keeps
  its batch in float32 between steps and rounds once at the end); results are clamped to
  0..255.

A transform is a frozen dataclass of settings with two steps, so that what was drawn can
be recorded and replayed exactly:

- ``sample(n, shape, generator)`` draws every random choice for ``n`` images on the CPU
  from an explicit :class:`torch.Generator` and returns them as a dict of tensors (first
  dimension ``n``), including ``apply``: which images the transform acts on (each with
  probability ``p``, as in Augmentor);
- ``apply(images, params)`` is a pure function of the images and those parameters.

Calling a transform does both. Geometric warps use kornia's kernels (``warp_affine``,
``warp_perspective``, ``crop_and_resize``) and torch's ``grid_sample``, bilinear, pixel
centres aligned (``align_corners=True``): a 90 degree rotation moves pixels exactly.
The settings follow Augmentor (``rotate`` max left/right degrees, ``skew`` tilt type and
magnitude, ``distort`` grid and magnitude, ``shear``, ``zoom`` factors, ``crop``, ``flip``).
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Any, ClassVar

import torch
import torch.nn.functional as F

from cnnkit.errors import ConfigError, DataError

Params = dict[str, torch.Tensor]

# how pixels outside the source image are filled by geometric transforms
FILLS = {"black": "zeros", "edge": "border", "reflect": "reflection"}
CROP_FILL = "crop"  # rotate/shear: zoom in until no filled corner is left (Augmentor's way)
PAD_MODES = {"black": "constant", "edge": "replicate", "reflect": "reflect"}


def check_batch(images: torch.Tensor) -> None:
    """Raise unless ``images`` is a ``(N, C, H, W)`` uint8 or floating tensor."""
    if not isinstance(images, torch.Tensor) or images.ndim != 4:
        shape = tuple(images.shape) if isinstance(images, torch.Tensor) else type(images).__name__
        raise DataError(
            f"augmentation takes a batch of images (N, C, H, W), got {shape}; add the batch "
            "dimension with images.unsqueeze(0)"
        )
    if images.dtype != torch.uint8 and not images.is_floating_point():
        raise DataError(
            f"augmentation takes uint8 images or floats on the 0..255 scale, got {images.dtype}"
        )


def to_working(images: torch.Tensor) -> torch.Tensor:
    """The float32 batch transforms compute on (a copy; the caller's tensor is never changed)."""
    return images.to(torch.float32, copy=True)


def from_working(x: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """Back to ``dtype``: uint8 rounded to nearest, floats clamped to 0..255."""
    if dtype == torch.uint8:
        return x.round_().clamp_(0, 255).to(torch.uint8)
    return x.clamp_(0, 255).to(dtype)


@dataclass(frozen=True)
class Transform:
    """Base of every per-image transform: acts on each image with probability ``p``.

    Subclasses set ``name``, declare their settings as dataclass fields, and implement
    :meth:`draw` (the random parameters) and :meth:`transform` (the pixels).

    Attributes:
        p: probability that an image is transformed, 0..1.
    """

    p: float = 1.0

    name: ClassVar[str] = ""
    main: ClassVar[str | None] = None  # the setting a bare value sets: "rotate:25"
    shorthands: ClassVar[dict[str, tuple[str, ...]]] = {}  # "max" -> max_left, max_right

    def __post_init__(self) -> None:
        for f in dataclasses.fields(self):  # Rotate(max_left=5) holds 5.0, as a spec gives
            value = getattr(self, f.name)
            if f.type in ("float", "float | str") and type(value) is int:
                object.__setattr__(self, f.name, float(value))
        if not 0.0 <= float(self.p) <= 1.0:
            raise ConfigError(f"{self.name}: p must be a probability 0..1, got {self.p}")
        self.check()

    def check(self) -> None:
        """Validate the settings (raise ConfigError naming the transform and setting)."""

    def settings(self) -> dict[str, Any]:
        """The settings as plain values, ``{"p": 0.9, "max_left": 25.0, ...}``."""
        return {
            f.name: list(v) if isinstance(v := getattr(self, f.name), tuple) else v
            for f in dataclasses.fields(self)
        }

    def describe(self) -> str:
        """The spec string that rebuilds this transform: ``rotate:p=0.9,max_left=25,...``."""
        parts = []
        for key, value in self.settings().items():
            if value is None:
                continue
            if isinstance(value, list):
                value = "x".join(str(v) for v in value)
            elif isinstance(value, float) and value.is_integer():
                value = int(value)  # 25, not 25.0; read back as a float
            parts.append(f"{key}={value}")
        return f"{self.name}:{','.join(parts)}"

    # -- the two steps -----------------------------------------------------------------

    def sample(self, n: int, shape: tuple[int, int, int], generator: torch.Generator) -> Params:
        """Draw the parameters for ``n`` images of ``shape`` ``(C, H, W)``, on the CPU.

        ``apply`` (bool ``(n,)``) is drawn first, and only when ``0 < p < 1``.
        """
        if self.p >= 1.0:
            apply = torch.ones(n, dtype=torch.bool)
        elif self.p <= 0.0:
            apply = torch.zeros(n, dtype=torch.bool)
        else:
            apply = torch.rand(n, generator=generator) < self.p
        return {"apply": apply, **self.draw(n, shape, generator)}

    def draw(self, n: int, shape: tuple[int, int, int], generator: torch.Generator) -> Params:
        """The transform's own random parameters for ``n`` images (none by default)."""
        return {}

    def apply(self, images: torch.Tensor, params: Params) -> torch.Tensor:
        """Transform the images whose ``params["apply"]`` is set; same shape and dtype."""
        check_batch(images)
        if not bool(params["apply"].any()):
            return images
        return from_working(self.apply_working(to_working(images), params), images.dtype)

    def apply_working(self, x: torch.Tensor, params: Params) -> torch.Tensor:
        """:meth:`apply` on a float32 working batch, which it may change in place."""
        apply = params["apply"]
        if not bool(apply.any()):
            return x
        if bool(apply.all()):
            return self.transform(x, _to(params, x.device))
        index = torch.nonzero(apply).squeeze(1)
        chosen = {key: value[index] for key, value in params.items()}
        x[index.to(x.device)] = self.transform(x[index.to(x.device)], _to(chosen, x.device))
        return x

    def transform(self, x: torch.Tensor, params: Params) -> torch.Tensor:
        """Transform every image of the float32 batch ``x`` with its ``params``."""
        raise NotImplementedError

    def __call__(self, images: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        """Sample parameters and apply them: ``(N, C, H, W)`` -> same shape and dtype."""
        check_batch(images)
        c, h, w = images.shape[1:]
        return self.apply(images, self.sample(len(images), (c, h, w), generator))

    def caption(self, record: dict[str, Any]) -> str:
        """A few words for a preview grid, from one image's recorded parameters."""
        return self.name


def _to(params: Params, device: torch.device) -> Params:
    return {key: value.to(device) for key, value in params.items()}


def _uniform(n: int, low: float, high: float, generator: torch.Generator) -> torch.Tensor:
    return low + (high - low) * torch.rand(n, generator=generator)


def _check_fill(name: str, fill: str, allowed: tuple[str, ...]) -> None:
    if fill not in allowed:
        raise ConfigError(f"{name}: fill must be one of {', '.join(allowed)}, got {fill!r}")


def _check_range(name: str, low_name: str, low: float, high_name: str, high: float) -> None:
    if low > high:
        raise ConfigError(f"{name}: {low_name} ({low}) must not exceed {high_name} ({high})")


def _centre(x: torch.Tensor) -> torch.Tensor:
    """The centre of the images in pixel coordinates ``(x, y)``, one row per image."""
    n, _, h, w = x.shape
    return torch.tensor([(w - 1) / 2, (h - 1) / 2], device=x.device).expand(n, 2)


def _about_centre(linear: torch.Tensor, centre: torch.Tensor) -> torch.Tensor:
    """``(n, 2, 2)`` linear maps acting about ``centre`` ``(n, 2)`` -> ``(n, 2, 3)`` affine."""
    shift = centre - (linear @ centre.unsqueeze(2)).squeeze(2)
    return torch.cat([linear, shift.unsqueeze(2)], dim=2)


def _warp_affine(x: torch.Tensor, matrix: torch.Tensor, fill: str) -> torch.Tensor:
    """Warp by forward maps ``(n, 2, 3)`` (source pixel -> output pixel), bilinear."""
    from kornia.geometry.transform import warp_affine

    mode = FILLS.get(fill, "border")  # crop: corners are covered; border guards rounding
    size = (int(x.shape[2]), int(x.shape[3]))
    return warp_affine(x, matrix, size, padding_mode=mode, align_corners=True)


# -- geometry ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Rotate(Transform):
    """Rotate by a random angle up to ``max_left`` degrees anticlockwise or ``max_right``
    clockwise (uniform over the range). Parameter: ``angle`` in degrees, positive =
    anticlockwise (to the left).

    Attributes:
        max_left: largest anticlockwise angle, degrees.
        max_right: largest clockwise angle, degrees.
        fill: corners left empty are ``black``, repeat the ``edge``, ``reflect`` the
            image, or ``crop``: zoom in until no corner is empty (Augmentor's rotate).
    """

    max_left: float = 25.0
    max_right: float = 25.0
    fill: str = "black"

    name: ClassVar[str] = "rotate"
    main: ClassVar[str | None] = "max"
    shorthands: ClassVar[dict[str, tuple[str, ...]]] = {"max": ("max_left", "max_right")}

    def check(self) -> None:
        if not (0 <= self.max_left <= 180 and 0 <= self.max_right <= 180):
            raise ConfigError(
                f"rotate: max_left and max_right are degrees 0..180, got {self.max_left} and "
                f"{self.max_right}"
            )
        _check_fill(self.name, self.fill, (*FILLS, CROP_FILL))

    def draw(self, n: int, shape: tuple[int, int, int], generator: torch.Generator) -> Params:
        return {"angle": _uniform(n, -self.max_right, self.max_left, generator)}

    def transform(self, x: torch.Tensor, params: Params) -> torch.Tensor:
        from kornia.geometry.transform import get_rotation_matrix2d

        angle = params["angle"].to(torch.float32)
        scale = torch.ones(len(x), 2, device=x.device)
        if self.fill == CROP_FILL:
            h, w = x.shape[2:]
            c, s = torch.cos(torch.deg2rad(angle)).abs(), torch.sin(torch.deg2rad(angle)).abs()
            # the rotated output rectangle's bounding box must fit in the input
            factor = torch.maximum((w * c + h * s) / w, (w * s + h * c) / h)
            scale = factor.unsqueeze(1).expand(-1, 2)
        matrix = get_rotation_matrix2d(_centre(x), angle, scale)
        return _warp_affine(x, matrix, self.fill)

    def caption(self, record: dict[str, Any]) -> str:
        return f"rotate {round(record['angle']):+d}°"


@dataclass(frozen=True)
class Shear(Transform):
    """Shear along x or y by a random angle in ``[-max_left, max_right]`` degrees.

    A positive angle along x moves the bottom of the image right and the top left; along y
    it moves the right side down. Parameters: ``angle`` (degrees), ``axis`` (0 = x, 1 = y).

    Attributes:
        max_left: largest negative angle, degrees (< 90).
        max_right: largest positive angle, degrees (< 90).
        axis: ``x``, ``y`` or ``random`` (either, with equal chance, as Augmentor).
        fill: ``black``, ``edge``, ``reflect`` or ``crop`` (zoom in; Augmentor's shear).
    """

    max_left: float = 10.0
    max_right: float = 10.0
    axis: str = "random"
    fill: str = "black"

    name: ClassVar[str] = "shear"
    main: ClassVar[str | None] = "max"
    shorthands: ClassVar[dict[str, tuple[str, ...]]] = {"max": ("max_left", "max_right")}

    def check(self) -> None:
        if not (0 <= self.max_left < 90 and 0 <= self.max_right < 90):
            raise ConfigError(
                f"shear: max_left and max_right are degrees 0..89, got {self.max_left} and "
                f"{self.max_right}"
            )
        if self.axis not in ("x", "y", "random"):
            raise ConfigError(f"shear: axis must be x, y or random, got {self.axis!r}")
        _check_fill(self.name, self.fill, (*FILLS, CROP_FILL))

    def draw(self, n: int, shape: tuple[int, int, int], generator: torch.Generator) -> Params:
        angle = _uniform(n, -self.max_left, self.max_right, generator)
        if self.axis == "random":
            axis = torch.randint(0, 2, (n,), generator=generator)
        else:
            axis = torch.full((n,), 0 if self.axis == "x" else 1, dtype=torch.int64)
        return {"angle": angle, "axis": axis}

    def transform(self, x: torch.Tensor, params: Params) -> torch.Tensor:
        h, w = x.shape[2:]
        t = torch.tan(torch.deg2rad(params["angle"].to(torch.float32)))
        along_y = params["axis"] == 1
        linear = torch.eye(2, device=x.device).repeat(len(x), 1, 1)
        linear[:, 0, 1] = torch.where(along_y, 0.0, t)
        linear[:, 1, 0] = torch.where(along_y, t, 0.0)
        if self.fill == CROP_FILL:  # zoom so the sheared image covers the frame
            factor = 1 + t.abs() * torch.where(along_y, w / h, h / w)
            linear = linear * factor.view(-1, 1, 1)
        return _warp_affine(x, _about_centre(linear, _centre(x)), self.fill)

    def caption(self, record: dict[str, Any]) -> str:
        return f"shear {'xy'[int(record['axis'])]} {round(record['angle']):+d}°"


@dataclass(frozen=True)
class Zoom(Transform):
    """Scale about the centre by a random factor in ``[min_factor, max_factor]``; > 1 zooms
    in (Augmentor's zoom), < 1 zooms out and fills the border. Parameter: ``factor``.

    Attributes:
        min_factor: smallest scale factor (> 0).
        max_factor: largest scale factor.
        fill: ``black``, ``edge`` or ``reflect`` (seen only when zooming out).
    """

    min_factor: float = 1.1
    max_factor: float = 1.5
    fill: str = "black"

    name: ClassVar[str] = "zoom"
    main: ClassVar[str | None] = "max_factor"

    def check(self) -> None:
        if self.min_factor <= 0:
            raise ConfigError(f"zoom: min_factor must be positive, got {self.min_factor}")
        _check_range(self.name, "min_factor", self.min_factor, "max_factor", self.max_factor)
        _check_fill(self.name, self.fill, tuple(FILLS))

    def draw(self, n: int, shape: tuple[int, int, int], generator: torch.Generator) -> Params:
        return {"factor": _uniform(n, self.min_factor, self.max_factor, generator)}

    def transform(self, x: torch.Tensor, params: Params) -> torch.Tensor:
        factor = params["factor"].to(torch.float32)
        linear = torch.eye(2, device=x.device) * factor.view(-1, 1, 1)
        return _warp_affine(x, _about_centre(linear, _centre(x)), self.fill)

    def caption(self, record: dict[str, Any]) -> str:
        return f"zoom {record['factor']:.2f}"


# Augmentor's twelve skews, as the outward displacement of the corners (top-left, top-right,
# bottom-right, bottom-left), each (x, y), in units of the skew amount.
_SKEWS = torch.tensor(
    [
        [[0, -1], [0, 0], [0, 0], [0, 1]],  # 0 tilt left: the left edge grows
        [[0, 0], [0, -1], [0, 1], [0, 0]],  # 1 tilt right
        [[-1, 0], [1, 0], [0, 0], [0, 0]],  # 2 tilt forward: the top edge grows
        [[0, 0], [0, 0], [1, 0], [-1, 0]],  # 3 tilt backward
        [[-1, 0], [0, 0], [0, 0], [0, 0]],  # 4..11: one corner, along x or y
        [[0, -1], [0, 0], [0, 0], [0, 0]],
        [[0, 0], [1, 0], [0, 0], [0, 0]],
        [[0, 0], [0, -1], [0, 0], [0, 0]],
        [[0, 0], [0, 0], [1, 0], [0, 0]],
        [[0, 0], [0, 0], [0, 1], [0, 0]],
        [[0, 0], [0, 0], [0, 0], [-1, 0]],
        [[0, 0], [0, 0], [0, 0], [0, 1]],
    ],
    dtype=torch.float32,
)
SKEW_TYPES = {
    "tilt": (0, 4),
    "tilt_left_right": (0, 2),
    "tilt_top_bottom": (2, 4),
    "corner": (4, 12),
    "all": (0, 12),
}


@dataclass(frozen=True)
class Skew(Transform):
    """Perspective skew, Augmentor's: one edge or corner is pulled outwards by up to
    ``magnitude`` times the image's longer side. Parameter: ``corners``, the displacement
    ``(4, 2)`` of the top-left, top-right, bottom-right and bottom-left corners in pixels
    ``(x, y)``.

    Attributes:
        magnitude: largest displacement as a fraction of the longer side (0..1).
        type: ``tilt`` (left, right, forward or backward), ``tilt_left_right``,
            ``tilt_top_bottom``, ``corner`` (one of the 8 corner directions) or ``all``.
        fill: ``black``, ``edge`` or ``reflect``.
    """

    magnitude: float = 0.3
    type: str = "tilt"
    fill: str = "black"

    name: ClassVar[str] = "skew"
    main: ClassVar[str | None] = "magnitude"

    def check(self) -> None:
        if not 0 <= self.magnitude <= 1:
            raise ConfigError(f"skew: magnitude must be 0..1, got {self.magnitude}")
        if self.type not in SKEW_TYPES:
            raise ConfigError(
                f"skew: type must be one of {', '.join(SKEW_TYPES)}, got {self.type!r}"
            )
        _check_fill(self.name, self.fill, tuple(FILLS))

    def draw(self, n: int, shape: tuple[int, int, int], generator: torch.Generator) -> Params:
        low, high = SKEW_TYPES[self.type]
        direction = torch.randint(low, high, (n,), generator=generator)
        amount = torch.rand(n, generator=generator) * self.magnitude * max(shape[1:])
        return {"corners": _SKEWS[direction] * amount.view(-1, 1, 1)}

    def transform(self, x: torch.Tensor, params: Params) -> torch.Tensor:
        from kornia.geometry.transform import get_perspective_transform, warp_perspective

        h, w = x.shape[2:]
        frame = torch.tensor(
            [[0, 0], [w - 1, 0], [w - 1, h - 1], [0, h - 1]], dtype=torch.float32, device=x.device
        ).expand(len(x), 4, 2)
        matrix = get_perspective_transform(frame, frame + params["corners"].to(torch.float32))
        return warp_perspective(
            x, matrix, (h, w), padding_mode=FILLS[self.fill], align_corners=True
        )

    def caption(self, record: dict[str, Any]) -> str:
        return "skew"


@dataclass(frozen=True)
class Distort(Transform):
    """Elastic distortion, Augmentor's: a ``grid_width`` x ``grid_height`` grid is laid over
    the image, each inner grid point moves by up to ``magnitude`` pixels in x and y, and the
    image follows, bilinearly between grid points (the border stays put). Parameter:
    ``offsets`` ``(grid_height - 1, grid_width - 1, 2)``, pixels ``(x, y)``.

    Attributes:
        grid_width: tiles across (>= 2); more tiles, finer distortions.
        grid_height: tiles down (>= 2).
        magnitude: largest move of a grid point, pixels.
        fill: ``black``, ``edge`` or ``reflect`` (rarely seen: the border stays put).
    """

    grid_width: int = 4
    grid_height: int = 4
    magnitude: float = 2.0
    fill: str = "edge"

    name: ClassVar[str] = "distort"
    main: ClassVar[str | None] = "magnitude"
    shorthands: ClassVar[dict[str, tuple[str, ...]]] = {"grid": ("grid_width", "grid_height")}

    def check(self) -> None:
        if self.grid_width < 2 or self.grid_height < 2:
            raise ConfigError(
                f"distort: grid_width and grid_height must be at least 2 (the grid needs an "
                f"inner point), got {self.grid_width} and {self.grid_height}"
            )
        if self.magnitude < 0:
            raise ConfigError(f"distort: magnitude is pixels >= 0, got {self.magnitude}")
        _check_fill(self.name, self.fill, tuple(FILLS))

    def draw(self, n: int, shape: tuple[int, int, int], generator: torch.Generator) -> Params:
        size = (n, self.grid_height - 1, self.grid_width - 1, 2)
        offsets = (torch.rand(size, generator=generator) * 2 - 1) * self.magnitude
        return {"offsets": offsets}

    def transform(self, x: torch.Tensor, params: Params) -> torch.Tensor:
        n, _, h, w = x.shape
        # displacement at every grid point (zero on the border), bilinear in between
        points = torch.zeros(n, 2, self.grid_height + 1, self.grid_width + 1, device=x.device)
        points[:, :, 1:-1, 1:-1] = params["offsets"].to(torch.float32).permute(0, 3, 1, 2)
        flow = F.interpolate(points, size=(h, w), mode="bilinear", align_corners=True)
        ys, xs = torch.meshgrid(
            torch.arange(h, device=x.device, dtype=torch.float32),
            torch.arange(w, device=x.device, dtype=torch.float32),
            indexing="ij",
        )
        # each output pixel reads the source at its position plus the displacement
        grid = torch.stack(
            [
                (xs + flow[:, 0]) * (2 / max(w - 1, 1)) - 1,
                (ys + flow[:, 1]) * (2 / max(h - 1, 1)) - 1,
            ],
            dim=3,
        )
        return F.grid_sample(
            x, grid, mode="bilinear", padding_mode=FILLS[self.fill], align_corners=True
        )

    def caption(self, record: dict[str, Any]) -> str:
        return "distort"


def _shift(
    x: torch.Tensor, dy: torch.Tensor, dx: torch.Tensor, pad: int, fill: str
) -> torch.Tensor:
    """Move each image by whole pixels (``dy`` down, ``dx`` right, each within ``±pad``):
    one pad and two gathers, exact."""
    if pad == 0:
        return x
    n, c, h, w = x.shape
    padded = F.pad(x, (pad,) * 4, mode=PAD_MODES[fill])
    rows = (torch.arange(h, device=x.device) + (pad - dy).view(n, 1)).view(n, 1, h, 1)
    cols = (torch.arange(w, device=x.device) + (pad - dx).view(n, 1)).view(n, 1, 1, w)
    out = padded.gather(2, rows.expand(n, c, h, w + 2 * pad))
    return out.gather(3, cols.expand(n, c, h, w))


@dataclass(frozen=True)
class Translate(Transform):
    """Move the image by a random whole number of pixels, up to ``pixels`` along each axis
    (exact: no resampling). Parameters: ``dx`` (right), ``dy`` (down), pixels.

    Attributes:
        pixels: largest shift, pixels.
        fill: uncovered pixels are ``black``, repeat the ``edge`` or ``reflect``.
    """

    pixels: int = 2
    fill: str = "black"

    name: ClassVar[str] = "translate"
    main: ClassVar[str | None] = "pixels"

    def check(self) -> None:
        if self.pixels < 0:
            raise ConfigError(f"translate: pixels must be a whole number >= 0, got {self.pixels}")
        _check_fill(self.name, self.fill, tuple(FILLS))

    def draw(self, n: int, shape: tuple[int, int, int], generator: torch.Generator) -> Params:
        if self.fill == "reflect" and self.pixels >= min(shape[1:]):
            raise ConfigError(
                f"translate: reflecting needs pixels ({self.pixels}) below the image size "
                f"{shape[1]}x{shape[2]}; use fill=black or edge"
            )
        shifts = self.pixels - torch.randint(0, 2 * self.pixels + 1, (2, n), generator=generator)
        return {"dy": shifts[0], "dx": shifts[1]}

    def transform(self, x: torch.Tensor, params: Params) -> torch.Tensor:
        return _shift(x, params["dy"], params["dx"], self.pixels, self.fill)

    def caption(self, record: dict[str, Any]) -> str:
        return f"shift {record['dx']:+d},{record['dy']:+d}"


@dataclass(frozen=True)
class Crop(Transform):
    """A random crop, resized back to the image size so batches keep their shape.

    The crop is ``size`` pixels or ``fraction`` of each side, placed anywhere in the image
    enlarged by ``padding`` pixels on every side. ``fraction=1`` with padding is the
    classic pad-and-crop (an exact shift); a smaller crop zooms into a random region
    (Augmentor's crop_random + resize). Parameters: ``top``, ``left`` (pixels, may be
    negative inside the padding).

    Attributes:
        size: crop ``(height, width)`` in pixels (``24`` or ``24x20``); overrides fraction.
        fraction: crop side as a fraction of the image side, 0..1.
        padding: pixels added around the image before cropping.
        fill: the padding is ``black``, repeats the ``edge`` or ``reflect``s the image.
    """

    size: tuple[int, int] | None = None
    fraction: float = 0.8
    padding: int = 0
    fill: str = "black"

    name: ClassVar[str] = "crop"
    main: ClassVar[str | None] = "fraction"

    def check(self) -> None:
        if self.size is not None and (len(self.size) != 2 or min(self.size) < 1):
            raise ConfigError(f"crop: size must be positive pixels HxW, got {self.size}")
        if not 0 < self.fraction <= 1:
            raise ConfigError(f"crop: fraction must be in (0, 1], got {self.fraction}")
        if self.padding < 0:
            raise ConfigError(f"crop: padding must be >= 0, got {self.padding}")
        _check_fill(self.name, self.fill, tuple(FILLS))

    def crop_size(self, height: int, width: int) -> tuple[int, int]:
        if self.size is not None:
            ch, cw = self.size
        else:
            ch, cw = max(1, round(height * self.fraction)), max(1, round(width * self.fraction))
        if ch > height + 2 * self.padding or cw > width + 2 * self.padding:
            raise ConfigError(
                f"crop: a {ch}x{cw} crop does not fit in {height}x{width} images with "
                f"padding {self.padding}"
            )
        return ch, cw

    def draw(self, n: int, shape: tuple[int, int, int], generator: torch.Generator) -> Params:
        _, h, w = shape
        ch, cw = self.crop_size(h, w)
        top = torch.randint(0, h + 2 * self.padding - ch + 1, (n,), generator=generator)
        left = torch.randint(0, w + 2 * self.padding - cw + 1, (n,), generator=generator)
        return {"top": top - self.padding, "left": left - self.padding}

    def transform(self, x: torch.Tensor, params: Params) -> torch.Tensor:
        h, w = x.shape[2:]
        ch, cw = self.crop_size(h, w)
        top, left = params["top"], params["left"]
        if (ch, cw) == (h, w):  # pad-and-crop: an exact whole-pixel shift
            return _shift(x, -top, -left, self.padding, self.fill)
        # the crop's first and last pixel centres go to the output's: scale, then shift
        sx, sy = (w - 1) / max(cw - 1, 1), (h - 1) / max(ch - 1, 1)
        matrix = torch.zeros(len(x), 2, 3, device=x.device)
        matrix[:, 0, 0], matrix[:, 1, 1] = sx, sy
        matrix[:, 0, 2] = -left.to(torch.float32) * sx
        matrix[:, 1, 2] = -top.to(torch.float32) * sy
        return _warp_affine(x, matrix, self.fill)

    def caption(self, record: dict[str, Any]) -> str:
        return f"crop {record['top']},{record['left']}"


@dataclass(frozen=True)
class _Flip(Transform):
    """Mirror along the image axis ``axis`` of ``(N, C, H, W)``, with probability ``p``."""

    p: float = 0.5

    main: ClassVar[str | None] = "p"
    axis: ClassVar[int]
    arrow: ClassVar[str]  # the caption's picture of the flip

    def transform(self, x: torch.Tensor, params: Params) -> torch.Tensor:
        return x.flip(self.axis)

    def caption(self, record: dict[str, Any]) -> str:
        return f"flip {self.arrow}"


@dataclass(frozen=True)
class FlipLR(_Flip):
    """Mirror left-right (Augmentor's flip_left_right), with probability ``p``."""

    name: ClassVar[str] = "flip_lr"
    axis, arrow = 3, "↔"


@dataclass(frozen=True)
class FlipTB(_Flip):
    """Mirror top-bottom (Augmentor's flip_top_bottom), with probability ``p``."""

    name: ClassVar[str] = "flip_tb"
    axis, arrow = 2, "↕"


# -- intensity ----------------------------------------------------------------------------


@dataclass(frozen=True)
class _Enhance(Transform):
    """An intensity change by a random ``factor`` in ``[min_factor, max_factor]`` (>= 0)."""

    min_factor: float = 0.7
    max_factor: float = 1.3

    def check(self) -> None:
        if self.min_factor < 0:
            raise ConfigError(f"{self.name}: min_factor must be >= 0, got {self.min_factor}")
        _check_range(self.name, "min_factor", self.min_factor, "max_factor", self.max_factor)

    def draw(self, n: int, shape: tuple[int, int, int], generator: torch.Generator) -> Params:
        return {"factor": _uniform(n, self.min_factor, self.max_factor, generator)}


@dataclass(frozen=True)
class Brightness(_Enhance):
    """Multiply the pixels by a random factor in ``[min_factor, max_factor]`` (Pillow's
    ImageEnhance.Brightness, as Augmentor's random_brightness). Parameter: ``factor``.
    """

    name: ClassVar[str] = "brightness"

    def transform(self, x: torch.Tensor, params: Params) -> torch.Tensor:
        return (x * params["factor"].to(torch.float32).view(-1, 1, 1, 1)).clamp_(0, 255)

    def caption(self, record: dict[str, Any]) -> str:
        return f"bright {record['factor']:.2f}"


LUMA = (0.299, 0.587, 0.114)  # ITU-R 601-2, as Pillow's RGB -> L


@dataclass(frozen=True)
class Contrast(_Enhance):
    """Scale the distance of each pixel from the image's mean grey level by a random factor
    in ``[min_factor, max_factor]`` (Pillow's ImageEnhance.Contrast, as Augmentor's
    random_contrast). Parameter: ``factor``.
    """

    name: ClassVar[str] = "contrast"

    def transform(self, x: torch.Tensor, params: Params) -> torch.Tensor:
        if x.shape[1] == 3:
            weights = torch.tensor(LUMA, device=x.device).view(1, 3, 1, 1)
            grey = (x * weights).sum(1, keepdim=True)
        else:
            grey = x.mean(1, keepdim=True)
        mean = grey.mean(dim=(1, 2, 3), keepdim=True)
        factor = params["factor"].to(torch.float32).view(-1, 1, 1, 1)
        return (mean + factor * (x - mean)).clamp_(0, 255)

    def caption(self, record: dict[str, Any]) -> str:
        return f"contrast {record['factor']:.2f}"


# -- occlusion ----------------------------------------------------------------------------


def _noise(seed: torch.Tensor, shape: tuple[int, int, int], device: torch.device) -> torch.Tensor:
    """Uniform 0..255 noise ``(n, C, H, W)`` from one seed per image: an integer hash of
    (seed, channel, row, column) that gives the same values on every device."""
    c, h, w = shape
    index = torch.arange(c * h * w, device=device, dtype=torch.int64).view(1, c, h, w)
    state = (seed.to(device).view(-1, 1, 1, 1) * 2654435761 + index * 40503) & 0x7FFFFFFF
    for _ in range(3):  # xorshift-multiply rounds; every product stays below 2**62
        state = state ^ (state >> 15)
        state = (state * 0x2C1B3C6D) & 0x7FFFFFFF
    return (state >> 23).to(torch.float32)  # the high 8 of 31 bits


def _fill_boxes(
    x: torch.Tensor, box: torch.Tensor, value: float | str, seed: torch.Tensor
) -> torch.Tensor:
    """Fill one rectangle per image (``box`` rows ``top, left, height, width``, clipped to
    the image) with ``value`` (0..255) or ``"noise"``."""
    n, c, h, w = x.shape
    top, left, height, width = (box[:, i].view(n, 1, 1, 1) for i in range(4))
    rows = torch.arange(h, device=x.device).view(1, 1, h, 1)
    cols = torch.arange(w, device=x.device).view(1, 1, 1, w)
    inside = (rows >= top) & (rows < top + height) & (cols >= left) & (cols < left + width)
    fill = (
        _noise(seed, (c, h, w), x.device)
        if value == "noise"
        else torch.tensor(float(value), device=x.device)
    )
    return torch.where(inside, fill, x)


def _check_value(name: str, value: float | str) -> None:
    if value == "noise":
        return
    if isinstance(value, str) or not 0 <= value <= 255:
        raise ConfigError(f"{name}: value must be a grey level 0..255 or noise, got {value!r}")


@dataclass(frozen=True)
class Erase(Transform):
    """Random erasing (Zhong et al.; Augmentor's random_erasing): a rectangle of a random
    area in ``[min_area, max_area]`` (fraction of the image) and aspect ratio (height /
    width) in ``[min_ratio, max_ratio]`` is filled with ``value`` or random noise.
    Parameters: ``box`` ``(top, left, height, width)`` pixels and ``seed`` (the noise).

    Attributes:
        min_area: smallest rectangle, fraction of the image area.
        max_area: largest rectangle, fraction of the image area.
        min_ratio: smallest height / width.
        max_ratio: largest height / width.
        value: grey level 0..255, or ``noise``.
    """

    min_area: float = 0.02
    max_area: float = 0.25
    min_ratio: float = 0.3
    max_ratio: float = 3.3
    value: float | str = 0.0

    name: ClassVar[str] = "erase"
    main: ClassVar[str | None] = "max_area"

    def check(self) -> None:
        if not 0 < self.min_area <= self.max_area <= 1:
            raise ConfigError(
                f"erase: need 0 < min_area <= max_area <= 1, got {self.min_area} and "
                f"{self.max_area}"
            )
        if not 0 < self.min_ratio <= self.max_ratio:
            raise ConfigError(
                f"erase: need 0 < min_ratio <= max_ratio, got {self.min_ratio} and {self.max_ratio}"
            )
        _check_value(self.name, self.value)

    def draw(self, n: int, shape: tuple[int, int, int], generator: torch.Generator) -> Params:
        _, h, w = shape
        area = _uniform(n, self.min_area, self.max_area, generator) * h * w
        log_ratio = _uniform(n, math.log(self.min_ratio), math.log(self.max_ratio), generator)
        ratio = log_ratio.exp()
        height = (area * ratio).sqrt().round().clamp(1, h).long()
        width = (area / ratio).sqrt().round().clamp(1, w).long()
        top = (torch.rand(n, generator=generator) * (h - height + 1)).floor().long()
        left = (torch.rand(n, generator=generator) * (w - width + 1)).floor().long()
        seed = torch.randint(0, 2**31 - 1, (n,), generator=generator)
        return {"box": torch.stack([top, left, height, width], dim=1), "seed": seed}

    def transform(self, x: torch.Tensor, params: Params) -> torch.Tensor:
        return _fill_boxes(x, params["box"], self.value, params["seed"])

    def caption(self, record: dict[str, Any]) -> str:
        return "erase"


@dataclass(frozen=True)
class Cutout(Transform):
    """Cutout (DeVries & Taylor): a square-ish hole of ``size`` times each side, centred
    anywhere in the image (so it may stick out), filled with ``value`` or noise.
    Parameters: ``box`` ``(top, left, height, width)`` pixels and ``seed``.

    Attributes:
        size: hole side as a fraction of the image side, 0..1.
        value: grey level 0..255, or ``noise``.
    """

    size: float = 0.5
    value: float | str = 0.0

    name: ClassVar[str] = "cutout"
    main: ClassVar[str | None] = "size"

    def check(self) -> None:
        if not 0 < self.size <= 1:
            raise ConfigError(f"cutout: size must be in (0, 1], got {self.size}")
        _check_value(self.name, self.value)

    def draw(self, n: int, shape: tuple[int, int, int], generator: torch.Generator) -> Params:
        _, h, w = shape
        height, width = max(1, round(h * self.size)), max(1, round(w * self.size))
        centre_y = torch.randint(0, h, (n,), generator=generator)
        centre_x = torch.randint(0, w, (n,), generator=generator)
        seed = torch.randint(0, 2**31 - 1, (n,), generator=generator)
        box = torch.stack(
            [
                centre_y - height // 2,
                centre_x - width // 2,
                torch.full((n,), height),
                torch.full((n,), width),
            ],
            dim=1,
        )
        return {"box": box, "seed": seed}

    def transform(self, x: torch.Tensor, params: Params) -> torch.Tensor:
        return _fill_boxes(x, params["box"], self.value, params["seed"])

    def caption(self, record: dict[str, Any]) -> str:
        return "cutout"


PER_IMAGE: tuple[type[Transform], ...] = (
    Rotate,
    Skew,
    Distort,
    Shear,
    Zoom,
    Crop,
    Translate,
    FlipLR,
    FlipTB,
    Brightness,
    Contrast,
    Erase,
    Cutout,
)
