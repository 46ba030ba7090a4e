"""Modern fast nets for 28x28 and 32x32 images: BatchNorm, residual blocks, global pooling.

In the spirit of KellerJordan/cifar10-airbench and the ResNet-9 of the DAWNBench era: a few
3x3 conv stages, each ``Conv2D -> MaxPooling2D(2) -> BatchNormalization -> ReLU/GELU``,
some followed by a residual block ``x + act(BN(Conv2D(x)))``; global max-pooling; one Dense head.
No dropout and no huge dense layer: they reach high accuracy in few epochs and run quickly on
a CPU as well as on a GPU. BatchNorm uses Keras momentum 0.9 (torch's 0.1) so the moving
statistics keep up with runs of one or two epochs. Written with cnnkit's layers, so they have
specs, summaries and the zoo's head interface.

``fastnet_tiny`` is for time-to-99% on MNIST on a CPU, ``fastnet`` for the best MNIST /
Fashion-MNIST accuracy in about a minute, ``fastnet_cifar`` for CIFAR-10 (airbench-sized).
With ``tta_flip=True`` a model averages its logits over the image and its left-right mirror
in eval mode (test-time augmentation; for clothes and objects, not for digits); with
``tta_shift=N`` also over the image moved N pixels along each diagonal: zeros shifted in
(``tta_pad="zeros"``: after normalisation, the mean pixel) or the border pixels repeated
(``tta_pad="edge"``: on a plain background, the background, as training's shifts fill it).
They are model options, so evaluation and prediction from the run folder apply them too.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F

from cnnkit.errors import ModelError
from cnnkit.layers import (
    Activation,
    Add,
    BatchNormalization,
    Conv2D,
    Dense,
    GlobalMaxPooling2D,
    Input,
    MaxPooling2D,
    Model,
    SymbolicTensor,
)
from cnnkit.layers.init import initialize
from cnnkit.models.registry import register_model

Shape = tuple[int, int, int]


class FastNet(Model):
    """A functional :class:`~cnnkit.layers.Model` with optional test-time augmentation."""

    def __init__(
        self,
        inputs: SymbolicTensor,
        outputs: SymbolicTensor,
        *,
        name: str,
        tta_flip: bool = False,
        tta_shift: int = 0,
        tta_pad: str = "zeros",
    ) -> None:
        super().__init__(inputs, outputs, name=name)
        self.tta_flip = tta_flip
        self.tta_shift = tta_shift
        self.tta_pad = tta_pad

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``(N, C, H, W)`` -> logits ``(N, num_classes)``; in eval mode, the mean of the
        logits over the test-time views: ``x``, with ``tta_shift`` also ``x`` moved by
        ``(±tta_shift, ±tta_shift)`` pixels (filled as ``tta_pad`` says), with ``tta_flip``
        each of those mirrored too."""
        forward = super().forward
        if self.training or not (self.tta_flip or self.tta_shift):
            return forward(x)
        views = [x]
        if self.tta_shift:
            s, (height, width) = self.tta_shift, x.shape[2:]
            padded = F.pad(x, (s, s, s, s), mode=_PAD_MODES[self.tta_pad])
            views += [
                padded[:, :, dy : dy + height, dx : dx + width]
                for dy in (0, 2 * s)
                for dx in (0, 2 * s)
            ]
        if self.tta_flip:
            views += [view.flip(3) for view in views]
        return torch.stack([forward(view) for view in views]).mean(0)


#: ``tta_pad`` -> torch's pad mode
_PAD_MODES = {"zeros": "constant", "edge": "replicate"}


def _conv_bn_act(
    x: SymbolicTensor,
    width: int,
    name: str,
    *,
    pool: bool,
    stride: int = 1,
    kernel: int = 3,
    act: str = "gelu",
) -> SymbolicTensor:
    x = Conv2D(width, kernel, strides=stride, padding="same", use_bias=False, name=f"{name}_conv")(
        x
    )
    if pool:
        x = MaxPooling2D(2, name=f"{name}_pool")(x)
    x = BatchNormalization(momentum=0.9, name=f"{name}_bn")(x)
    return Activation(act, name=f"{name}_{act}")(x)


def build_fastnet(
    input_shape: Shape,
    num_classes: int,
    *,
    widths: Sequence[int],
    residual: Sequence[bool],
    name: str,
    strided_stem: bool = False,
    stem_kernel: int = 3,
    activation: str = "gelu",
    tta_flip: bool = False,
    tta_shift: int = 0,
    tta_pad: str = "zeros",
    init: str = "keras",
) -> FastNet:
    """Stages of ``conv -> pool -> BN -> act [+ residual conv block]``, global max-pool, Dense.

    Args:
        input_shape: ``(C, H, W)``; H and W must survive one 2x2 pool per stage.
        num_classes: output logits.
        widths: channels of each stage.
        residual: per stage, whether a residual block follows.
        name: the model's name.
        strided_stem: the first stage halves the resolution with a stride-2 conv instead of
            a conv at full resolution and a max-pool (4x cheaper, no full-size activations).
        stem_kernel: kernel size of the strided first conv.
        activation: the activation after every BatchNorm.
        tta_flip: average logits over a left-right flip in eval mode.
        tta_shift: average logits over diagonal shifts of this many pixels in eval mode.
        tta_pad: what the shifts fill in: ``zeros`` or ``edge`` (the border pixels repeated).
        init: weight initialisation (``keras``, ``normal`` or ``torch``).
    """
    if tta_shift < 0:
        raise ModelError(f"{name}: tta_shift must be >= 0 pixels, got {tta_shift}")
    if tta_pad not in _PAD_MODES:
        raise ModelError(f"{name}: tta_pad must be zeros or edge, got {tta_pad!r}")
    _, height, width = input_shape
    smallest = 2 ** len(widths)
    if height < smallest or width < smallest:
        raise ModelError(
            f"{name} pools {len(widths)} times and needs images of at least "
            f"{smallest}x{smallest}, got {height}x{width}"
        )
    inputs = Input(input_shape)
    x = inputs
    for stage, (stage_width, has_residual) in enumerate(zip(widths, residual, strict=True), 1):
        stem = stage == 1 and strided_stem
        x = _conv_bn_act(
            x,
            stage_width,
            f"s{stage}",
            pool=not stem,
            stride=2 if stem else 1,
            kernel=stem_kernel if stem else 3,
            act=activation,
        )
        if has_residual:
            y = _conv_bn_act(x, stage_width, f"s{stage}_res", pool=False, act=activation)
            x = Add(name=f"s{stage}_add")([x, y])
    x = GlobalMaxPooling2D(name="pool")(x)
    outputs = Dense(num_classes, name="fc")(x)
    model = FastNet(
        inputs, outputs, name=name, tta_flip=tta_flip, tta_shift=tta_shift, tta_pad=tta_pad
    )
    return initialize(model, init)


@register_model(
    "fastnet",
    description="Fast residual net for 28x28/32x32: stages (w, 2w, 4w), w=32; BN, ReLU",
    default_input_shape=(1, 28, 28),
)
def fastnet(
    *,
    input_shape: Shape,
    num_classes: int,
    width: int = 32,
    tta_flip: bool = False,
    tta_shift: int = 0,
    tta_pad: str = "zeros",
    init: str = "keras",
) -> FastNet:
    """Three stages (``width``, 2x, 4x channels), residual blocks after the first and last.

    Args:
        width: channels of the first stage (16 is enough for 99.6% on MNIST).
    """
    if width < 1:
        raise ModelError(f"fastnet width must be >= 1, got {width}")
    return build_fastnet(
        input_shape,
        num_classes,
        widths=(width, 2 * width, 4 * width),
        residual=(True, False, True),
        name="fastnet",
        activation="relu",
        tta_flip=tta_flip,
        tta_shift=tta_shift,
        tta_pad=tta_pad,
        init=init,
    )


# The fixed-width nets: name -> (description, default input shape, stage widths, residual
# block after each stage, activation, builder docstring).
_FIXED: dict[str, tuple[str, Shape, tuple[int, ...], tuple[bool, ...], str, str]] = {
    "fastnet_tiny": (
        "Fast net for seconds-to-99% MNIST on a CPU: stages (8, 32, 64), BN, ReLU",
        (1, 28, 28),
        (8, 32, 64),
        (False, False, True),
        "relu",
        "Three conv stages, a residual block on the last; a narrow first stage keeps the only "
        "full-resolution layers cheap (measured: one MNIST epoch reaches 99.1-99.3%).",
    ),
    "fastnet_cifar": (
        "airbench-sized CIFAR-10 net: stages (64, 256, 256), BN, GELU, residuals",
        (3, 32, 32),
        (64, 256, 256),
        (True, False, True),
        "gelu",
        "The CIFAR-10 speed-run net (the ``cifar10-fast`` recipe turns ``tta_flip`` on).",
    ),
}


def _register_fixed(name: str) -> None:
    description, default_input_shape, widths, residual, activation, doc = _FIXED[name]

    def builder(
        *,
        input_shape: Shape,
        num_classes: int,
        tta_flip: bool = False,
        tta_shift: int = 0,
        tta_pad: str = "zeros",
        init: str = "keras",
    ) -> FastNet:
        return build_fastnet(
            input_shape,
            num_classes,
            widths=widths,
            residual=residual,
            name=name,
            activation=activation,
            tta_flip=tta_flip,
            tta_shift=tta_shift,
            tta_pad=tta_pad,
            init=init,
        )

    builder.__name__ = builder.__qualname__ = name
    builder.__doc__ = doc
    register_model(name, description=description, default_input_shape=default_input_shape)(builder)


for _name in _FIXED:
    _register_fixed(_name)
