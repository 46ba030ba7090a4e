"""``keras.layers``: cnnkit's layers with Keras's spellings and Keras's data layout.

Each class here is the cnnkit layer of the same name (:mod:`cnnkit.layers`) taking Keras's
arguments: ``input_shape=``/``input_dim=`` on a first layer, ``padding`` in any case,
``kernel_size``/``strides``/``pool_size`` as int or tuple, ``data_format``, ``name``,
``trainable``, ``kernel_initializer``/``bias_initializer`` names. Shapes are written as the user
writes them (channels last by default); inside, the model runs channels first, so only the layers
whose meaning depends on the axis order (``Flatten``, ``Reshape``, ``Concatenate``,
``BatchNormalization``, ``Softmax``) look at the layout, and ``Flatten``/``Reshape`` order values
exactly as Keras does. An argument Keras has and cnnkit does not raises an
:class:`~cnnkit.keras.unsupported.UnsupportedFeature` naming the nearest form.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import torch
from torch import nn

from cnnkit import layers as base
from cnnkit.errors import ModelError
from cnnkit.keras import backend, initializers
from cnnkit.keras.unsupported import missing, unsupported
from cnnkit.layers.base import ACTIVATIONS, Shape, SymbolicTensor

#: arguments every Keras layer takes; the ones cnnkit cannot honour are refused when set
_REFUSED = {
    "kernel_regularizer": "drop it, or use keras.optimizers.AdamW(weight_decay=...)",
    "bias_regularizer": "drop it, or use keras.optimizers.AdamW(weight_decay=...)",
    "activity_regularizer": "drop it",
    "kernel_constraint": "drop it",
    "bias_constraint": "drop it",
    "dilation_rate": "use dilation_rate=1 (the default)",
    "groups": "use groups=1 (the default)",
    "noise_shape": "use Dropout(rate) without noise_shape",
    "keepdims": "use keepdims=False, then Reshape((1, 1, C)) if needed",
    "baseline": "drop it",
    "batch_size": "give the batch size to fit(batch_size=...)",
    "sparse": "use dense inputs",
    "ragged": "use dense inputs",
}
_IGNORED = {"seed", "dtype", "autocast", "batch_input_shape"}  # no effect on what is computed


class KerasLayer(base.Layer):
    """What every ``cnnkit.keras`` layer adds to its cnnkit layer: Keras's common arguments,
    ``trainable``, the layout it runs in, and the arguments to rebuild it (for ``save``)."""

    keras_input_shape: tuple[int, ...] | None = None
    data_format: str | None = None
    layout = "channels_first"  # the model's layout, known once the layer is called
    _trainable = True

    def _keras(self, args: dict[str, Any], common: dict[str, Any]) -> None:
        """Record the arguments (after ``base.Layer.__init__`` ran) and the common ones."""
        for key, value in common.items():
            if key in ("input_shape", "input_dim"):
                shape = (value,) if key == "input_dim" else tuple(value)
                self.keras_input_shape = tuple(int(n) for n in shape)
                args[key] = value
            elif key == "trainable":
                self.trainable = bool(value)
                args[key] = bool(value)
            elif key in _REFUSED and value not in (None, 1, (1, 1), False, 0.0):
                raise unsupported(f"{self.kind}({key}=...)", _REFUSED[key])
            elif key not in _REFUSED and key not in _IGNORED:
                raise ModelError(f"{self.kind} got an unexpected argument {key!r}")
        self.keras_args = args

    @property
    def trainable(self) -> bool:
        return self._trainable

    @trainable.setter
    def trainable(self, value: bool) -> None:
        self._trainable = bool(value)
        for parameter in self.parameters():
            parameter.requires_grad_(self._trainable)

    def _call_symbolic(self, inputs: tuple[SymbolicTensor, ...]) -> SymbolicTensor:
        layout = input_layout(inputs[0])
        if self.data_format is not None and self.data_format != layout:
            raise ModelError(
                f"{self.describe()} has data_format={self.data_format!r} but the model's input "
                f"is {layout}; set keras.backend.set_image_data_format({self.data_format!r}) "
                "before declaring the input, or drop data_format"
            )
        self.layout = layout
        output = super()._call_symbolic(inputs)
        self.trainable = self._trainable  # weights exist now
        return output

    def keras_shape(self, shape: Shape) -> tuple[int, ...]:
        return backend.to_user(shape, self.layout)


def input_layout(tensor: SymbolicTensor) -> str:
    """The layout of the model input ``tensor`` comes from (channels first for cnnkit's own)."""
    while tensor.inputs:
        tensor = tensor.inputs[0]
    return getattr(tensor.layer, "layout", "channels_first")


#: the module whose functions (``keras.activations.relu``, ...) name an activation
ACTIVATION_FUNCTIONS = "cnnkit.keras.activations"


def activation_name(activation: str | Callable[..., Any] | None) -> str | None:
    """The activation's name for a layer: a name, a ``keras.activations`` function, or None."""
    if activation is None or isinstance(activation, str):
        if activation is not None and activation not in ACTIVATIONS:
            raise unsupported(
                f"activation {activation!r}", f"choose one of {', '.join(ACTIVATIONS)}"
            )
        return activation
    name = getattr(activation, "__name__", "")
    if getattr(activation, "__module__", None) == ACTIVATION_FUNCTIONS and name in ACTIVATIONS:
        return name
    raise unsupported(
        f"activation {activation!r} (a custom function)",
        "use a named activation, or an Activation layer with one of: " + ", ".join(ACTIVATIONS),
    )


def _pad(padding: str) -> str:
    value = str(padding).lower()
    if value == "causal":
        raise unsupported("padding='causal'", "use padding='same' or 'valid'")
    return value


def _init_arg(value: Any) -> Any:
    return initializers.serialize(value) if isinstance(value, initializers.Initializer) else value


class _Weighted(KerasLayer):
    """A layer with a kernel and a bias (``Conv*``, ``Dense``): its activation and Keras's
    initializers, applied once the weights exist (the defaults are cnnkit's own)."""

    weighted: str  # the torch module holding ``weight`` and ``bias`` once built

    def _keras_weights(
        self,
        args: dict[str, Any],
        activation: str | None,
        use_bias: bool,
        kernel_initializer: Any,
        bias_initializer: Any,
        common: dict[str, Any],
    ) -> None:
        self.kernel_initializer, self.bias_initializer = kernel_initializer, bias_initializer
        self.keras_activation = activation
        self._keras(
            {
                **args,
                "activation": activation,
                "use_bias": use_bias,
                "kernel_initializer": _init_arg(kernel_initializer),
                "bias_initializer": _init_arg(bias_initializer),
            },
            common,
        )

    def _build(self, *input_shapes: Shape) -> Shape:
        shape = super()._build(*input_shapes)
        module = getattr(self, self.weighted)
        if self.kernel_initializer != "glorot_uniform":
            initializers.get(self.kernel_initializer)(module.weight)
        if self.bias_initializer != "zeros" and module.bias is not None:
            initializers.get(self.bias_initializer)(module.bias)
        return shape


# -- input ----------------------------------------------------------------------------------------


class InputLayer(base.InputLayer):
    """The model input; ``shape`` per sample as the user writes it, ``(28, 28, 1)``."""

    def __init__(
        self,
        shape: Sequence[int] | None = None,
        batch_size: int | None = None,
        dtype: Any = None,
        name: str | None = None,
        *,
        input_shape: Sequence[int] | None = None,
        data_format: str | None = None,
    ) -> None:
        given = shape if shape is not None else input_shape
        if given is None:
            raise ModelError(
                "Input needs its per-sample shape, e.g. keras.Input(shape=(28, 28, 1))"
            )
        keras_shape = (given,) if isinstance(given, int) else tuple(given)
        if any(n is None for n in keras_shape):
            raise unsupported(
                f"Input(shape={keras_shape}) with a None size", "give every size, e.g. (28, 28, 1)"
            )
        if batch_size is not None:
            raise unsupported("Input(batch_size=...)", _REFUSED["batch_size"])
        layout = backend.check_format(data_format)
        super().__init__(backend.to_internal(keras_shape, layout), name=name)
        self.layout, self.keras_input_shape = layout, keras_shape
        self.keras_args = {"shape": list(keras_shape)}
        self._remember(shape=list(self.shape))


def Input(
    shape: Sequence[int] | None = None,
    batch_size: int | None = None,
    dtype: Any = None,
    name: str | None = None,
    **kwargs: Any,
) -> SymbolicTensor:
    """``keras.Input(shape=(28, 28, 1))``: the start of a functional model."""
    return InputLayer(shape, batch_size, dtype, name, **kwargs).tensor


# -- convolution and pooling ---------------------------------------------------------------------


class _Conv(_Weighted):
    weighted = "conv"

    def __init__(
        self,
        filters: int,
        kernel_size: int | Sequence[int],
        strides: int | Sequence[int] = 1,
        padding: str = "valid",
        data_format: str | None = None,
        activation: Any = None,
        use_bias: bool = True,
        kernel_initializer: Any = "glorot_uniform",
        bias_initializer: Any = "zeros",
        name: str | None = None,
        **common: Any,
    ) -> None:
        act = activation_name(activation)
        super().__init__(  # type: ignore[misc,call-arg]
            filters,  # type: ignore[arg-type]
            kernel_size,
            strides,
            _pad(padding),
            act,
            use_bias,
            name=name,
        )
        self.data_format = None if data_format is None else backend.check_format(data_format)
        self._keras_weights(
            {
                "filters": filters,
                "kernel_size": kernel_size,
                "strides": strides,
                "padding": padding,
                "data_format": data_format,
            },
            act,
            use_bias,
            kernel_initializer,
            bias_initializer,
            common,
        )


class Conv1D(_Conv, base.Conv1D):
    """``Conv1D(filters, kernel_size, strides=1, padding="valid", activation=None, ...)``."""


class Conv2D(_Conv, base.Conv2D):
    """``Conv2D(filters, kernel_size, strides=(1, 1), padding="valid", activation=None, ...)``."""


class Conv3D(_Conv, base.Conv3D):
    """``Conv3D(filters, kernel_size, ...)`` over ``(D, H, W, C)``."""


Convolution2D = Conv2D


class _Pool(KerasLayer):
    def __init__(
        self,
        pool_size: int | Sequence[int] = 2,
        strides: int | Sequence[int] | None = None,
        padding: str = "valid",
        data_format: str | None = None,
        name: str | None = None,
        **common: Any,
    ) -> None:
        super().__init__(pool_size, strides, _pad(padding), name=name)  # type: ignore[misc,arg-type,call-arg]
        self.data_format = None if data_format is None else backend.check_format(data_format)
        self._keras(
            {
                "pool_size": pool_size,
                "strides": strides,
                "padding": padding,
                "data_format": data_format,
            },
            common,
        )


class MaxPooling1D(_Pool, base.MaxPooling1D):
    """``MaxPooling1D(pool_size=2, strides=None, padding="valid")``."""


class MaxPooling2D(_Pool, base.MaxPooling2D):
    """``MaxPooling2D(pool_size=(2, 2), strides=None, padding="valid")``."""


class MaxPooling3D(_Pool, base.MaxPooling3D):
    """``MaxPooling3D(pool_size=(2, 2, 2), ...)``."""


class AveragePooling1D(_Pool, base.AveragePooling1D):
    """``AveragePooling1D(pool_size=2, ...)``."""


class AveragePooling2D(_Pool, base.AveragePooling2D):
    """``AveragePooling2D(pool_size=(2, 2), ...)``; padded cells do not count, as in Keras."""


class AveragePooling3D(_Pool, base.AveragePooling3D):
    """``AveragePooling3D(pool_size=(2, 2, 2), ...)``."""


MaxPool1D, MaxPool2D, MaxPool3D = MaxPooling1D, MaxPooling2D, MaxPooling3D
AvgPool1D, AvgPool2D, AvgPool3D = AveragePooling1D, AveragePooling2D, AveragePooling3D


class _GlobalPool(KerasLayer):
    def __init__(
        self, data_format: str | None = None, name: str | None = None, **common: Any
    ) -> None:
        super().__init__(name=name)
        self.data_format = None if data_format is None else backend.check_format(data_format)
        self._keras({"data_format": data_format}, common)


class GlobalAveragePooling1D(_GlobalPool, base.GlobalAveragePooling1D):
    """``(steps, C)`` -> ``(C,)``."""


class GlobalAveragePooling2D(_GlobalPool, base.GlobalAveragePooling2D):
    """``(H, W, C)`` -> ``(C,)``: the mean of each channel."""


class GlobalMaxPooling1D(_GlobalPool, base.GlobalMaxPooling1D):
    """``(steps, C)`` -> ``(C,)``."""


class GlobalMaxPooling2D(_GlobalPool, base.GlobalMaxPooling2D):
    """``(H, W, C)`` -> ``(C,)``: the maximum of each channel."""


GlobalAvgPool1D, GlobalAvgPool2D = GlobalAveragePooling1D, GlobalAveragePooling2D
GlobalMaxPool1D, GlobalMaxPool2D = GlobalMaxPooling1D, GlobalMaxPooling2D


# -- core -----------------------------------------------------------------------------------------


class Dense(_Weighted, base.Dense):
    """``Dense(units, activation=None, use_bias=True, kernel_initializer=..., ...)`` on a flat
    input (add ``Flatten()`` before it; cnnkit's Dense does not map over extra axes)."""

    weighted = "linear"

    def __init__(
        self,
        units: int,
        activation: Any = None,
        use_bias: bool = True,
        kernel_initializer: Any = "glorot_uniform",
        bias_initializer: Any = "zeros",
        name: str | None = None,
        **common: Any,
    ) -> None:
        act = activation_name(activation)
        base.Dense.__init__(self, units, act, use_bias, name=name)
        self._keras_weights(
            {"units": units}, act, use_bias, kernel_initializer, bias_initializer, common
        )


class Flatten(KerasLayer, base.Flatten):
    """``(H, W, C)`` -> ``(H*W*C,)`` in Keras's order (channels last varies fastest)."""

    def __init__(self, data_format: str | None = None, name: str | None = None, **common: Any):
        base.Flatten.__init__(self, name=name)
        self.data_format = None if data_format is None else backend.check_format(data_format)
        self._keras({"data_format": data_format}, common)

    def forward(self, *inputs: torch.Tensor) -> torch.Tensor:
        x = inputs[0]
        if self.layout == "channels_last" and x.ndim >= 3:
            x = x.movedim(1, -1)  # a view; free when x is in channels_last memory
        return torch.flatten(x, 1)


class Reshape(KerasLayer, base.Reshape):
    """``Reshape(target_shape)`` with ``target_shape`` written as the user writes shapes
    (``(28, 28, 1)``); values are taken in Keras's order."""

    def __init__(self, target_shape: Sequence[int], name: str | None = None, **common: Any):
        base.Reshape.__init__(self, target_shape, name=name)
        self._keras({"target_shape": list(target_shape)}, common)

    def _build(self, *input_shapes: Shape) -> Shape:
        (shape,) = input_shapes
        user = base.Reshape._build(self, self.keras_shape(shape))  # resolves -1, checks sizes
        self.user_target = user
        return backend.to_internal(user, self.layout)

    def forward(self, *inputs: torch.Tensor) -> torch.Tensor:
        x = inputs[0]
        last = self.layout == "channels_last"
        if last and x.ndim >= 3:
            x = x.movedim(1, -1)
        x = x.reshape(x.shape[0], *self.user_target)
        return x.movedim(-1, 1) if last and x.ndim >= 3 else x


class Dropout(KerasLayer, base.Dropout):
    """``Dropout(rate)``: zero inputs with probability ``rate`` while training."""

    def __init__(self, rate: float, name: str | None = None, **common: Any) -> None:
        base.Dropout.__init__(self, rate, name=name)
        self._keras({"rate": rate}, common)


class BatchNormalization(KerasLayer, base.BatchNormalization):
    """``BatchNormalization(axis=-1, momentum=0.99, epsilon=0.001)`` over the channel axis.

    With ``trainable = False`` it also runs in inference mode (moving statistics), as in Keras.
    """

    def __init__(
        self,
        axis: int = -1,
        momentum: float = 0.99,
        epsilon: float = 0.001,
        center: bool = True,
        scale: bool = True,
        name: str | None = None,
        **common: Any,
    ) -> None:
        if not center or not scale:
            raise unsupported("BatchNormalization(center=False or scale=False)", "use the defaults")
        for key in ("beta_initializer", "gamma_initializer"):
            if common.pop(key, None) not in (None, "zeros" if key[0] == "b" else "ones"):
                raise unsupported(f"BatchNormalization({key}=...)", "use the default")
        common.pop("moving_mean_initializer", None)
        common.pop("moving_variance_initializer", None)
        base.BatchNormalization.__init__(self, momentum, epsilon, name=name)
        self.axis = axis
        self._keras({"axis": axis, "momentum": momentum, "epsilon": epsilon}, common)

    def _build(self, *input_shapes: Shape) -> Shape:
        (shape,) = input_shapes
        rank = len(shape) + 1
        channel = rank - 1 if self.layout == "channels_last" else 1
        if not -rank <= self.axis < rank or self.axis % rank != channel:
            raise unsupported(
                f"BatchNormalization(axis={self.axis}) on input {self.keras_shape(shape)}",
                f"normalise over the channel axis (axis={-1 if channel == rank - 1 else 1})",
            )
        return base.BatchNormalization._build(self, *input_shapes)

    def train(self, mode: bool = True) -> BatchNormalization:
        return super().train(mode and self.trainable)

    @property
    def trainable(self) -> bool:
        return self._trainable

    @trainable.setter
    def trainable(self, value: bool) -> None:
        KerasLayer.trainable.fset(self, value)  # type: ignore[attr-defined]
        if not value:
            self.eval()


class Activation(KerasLayer, base.Activation):
    """``Activation("relu")`` (or a ``keras.activations`` function)."""

    def __init__(self, activation: Any, name: str | None = None, **common: Any) -> None:
        act = activation_name(activation) or "linear"
        base.Activation.__init__(self, act, name=name)
        self.keras_activation = act
        self._keras({"activation": act}, common)


class _NamedActivation(Activation):
    fixed: str

    def __init__(self, name: str | None = None, **common: Any) -> None:
        super().__init__(self.fixed, name=name, **common)
        self.keras_args = dict(common)


class ReLU(_NamedActivation):
    """``ReLU()`` (default arguments only)."""

    fixed = "relu"

    def __init__(
        self,
        max_value: float | None = None,
        negative_slope: float = 0.0,
        threshold: float = 0.0,
        name: str | None = None,
        **common: Any,
    ) -> None:
        if max_value is not None or negative_slope or threshold:
            raise unsupported(
                "ReLU(max_value/negative_slope/threshold)",
                "use Activation('relu6') or Activation('leaky_relu')",
            )
        super().__init__(name=name, **common)


class Softmax(_NamedActivation):
    """``Softmax()`` over the channel (last) axis."""

    fixed = "softmax"

    def __init__(self, axis: int = -1, name: str | None = None, **common: Any) -> None:
        if axis != -1:
            raise unsupported(f"Softmax(axis={axis})", "use the last axis (axis=-1)")
        super().__init__(name=name, **common)


class LeakyReLU(KerasLayer, base.Layer):
    """``LeakyReLU(negative_slope=0.3)`` (Keras 3's default slope; ``alpha=`` is the old name)."""

    def __init__(self, negative_slope: float = 0.3, name: str | None = None, **common: Any) -> None:
        slope = common.pop("alpha", negative_slope)
        base.Layer.__init__(self, name=name)
        self.activation = nn.LeakyReLU(float(slope))
        self._keras({"negative_slope": slope}, common)

    def _build(self, *input_shapes: Shape) -> Shape:
        return input_shapes[0]

    def forward(self, *inputs: torch.Tensor) -> torch.Tensor:
        return self.activation(inputs[0])


class Rescaling(KerasLayer, base.Layer):
    """``Rescaling(scale, offset=0.0)``: ``x * scale + offset`` inside the model."""

    def __init__(
        self, scale: float, offset: float = 0.0, name: str | None = None, **common: Any
    ) -> None:
        base.Layer.__init__(self, name=name)
        if not isinstance(scale, int | float) or not isinstance(offset, int | float):
            raise unsupported("Rescaling with per-channel scale or offset", "give two numbers")
        self.scale, self.offset = float(scale), float(offset)
        self._keras({"scale": scale, "offset": offset}, common)

    def _build(self, *input_shapes: Shape) -> Shape:
        return input_shapes[0]

    def forward(self, *inputs: torch.Tensor) -> torch.Tensor:
        return inputs[0] * self.scale + self.offset


class Add(KerasLayer, base.Add):
    """``Add()([a, b])``: the sum of inputs of one shape."""

    def __init__(self, name: str | None = None, **common: Any) -> None:
        base.Add.__init__(self, name=name)
        self._keras({}, common)


class Concatenate(KerasLayer, base.Concatenate):
    """``Concatenate(axis=-1)([a, b])``; the axis counts the batch axis, as in Keras."""

    def __init__(self, axis: int = -1, name: str | None = None, **common: Any) -> None:
        base.Concatenate.__init__(self, 0, name=name)
        self.keras_axis = axis
        self._keras({"axis": axis}, common)

    def _build(self, *input_shapes: Shape) -> Shape:
        rank = len(input_shapes[0])
        if not -(rank + 1) <= self.keras_axis <= rank or self.keras_axis % (rank + 1) == 0:
            raise ModelError(
                f"{self.describe()}: axis {self.keras_axis} is not an axis of inputs "
                f"{self.keras_shape(input_shapes[0])} (without the batch axis 0)"
            )
        user = self.keras_axis % (rank + 1) - 1  # per-sample axis as the user writes it
        if self.layout == "channels_last" and rank >= 2:
            user = 0 if user == rank - 1 else user + 1
        self.axis = user
        return base.Concatenate._build(self, *input_shapes)


def add(inputs: Sequence[SymbolicTensor], **kwargs: Any) -> SymbolicTensor:
    """``keras.layers.add([a, b])``: the functional form of ``Add``."""
    return Add(**kwargs)(list(inputs))  # type: ignore[no-any-return]


def concatenate(inputs: Sequence[SymbolicTensor], axis: int = -1, **kwargs: Any) -> SymbolicTensor:
    """``keras.layers.concatenate([a, b], axis=-1)``."""
    return Concatenate(axis=axis, **kwargs)(list(inputs))  # type: ignore[no-any-return]


#: every layer class by its Keras name: what a saved model may hold (the Keras class of each
#: cnnkit layer, by the same name, and the layers only cnnkit.keras has)
LAYERS: dict[str, type[base.Layer]] = {name: globals()[name] for name in base.LAYERS} | {
    cls.__name__: cls for cls in (ReLU, Softmax, LeakyReLU, Rescaling)
}

_AUGMENT = "augment with cnnkit's pipeline (cnnkit.augment) before fit, or cnnkit train --augment"
__getattr__ = missing(
    __name__,
    {
        "Conv2DTranspose": "cnnkit classifies images; use Conv2D + MaxPooling2D",
        "SeparableConv2D": "use Conv2D",
        "DepthwiseConv2D": "use Conv2D",
        "UpSampling2D": "cnnkit classifies images; use Conv2D + MaxPooling2D",
        "ZeroPadding2D": "use Conv2D(..., padding='same')",
        "Cropping2D": "crop the arrays before fit",
        "SpatialDropout2D": "use Dropout",
        "GaussianNoise": "use Dropout, or augment the data",
        "LayerNormalization": "use BatchNormalization",
        "GroupNormalization": "use BatchNormalization",
        "Normalization": "normalise the arrays before fit: (x - x.mean()) / x.std()",
        "Lambda": "use a named layer (Activation, Rescaling, Reshape, ...)",
        "Permute": "use Reshape, or declare the input in the layout you want",
        "Multiply": "use Add or Concatenate",
        "Subtract": "use Add or Concatenate",
        "Average": "use Add followed by Rescaling(1 / n)",
        "Maximum": "use Add or Concatenate",
        "Embedding": "cnnkit.keras is for image classifiers (Conv2D, Dense, ...)",
        "LSTM": "cnnkit.keras is for image classifiers (Conv2D, Dense, ...)",
        "GRU": "cnnkit.keras is for image classifiers (Conv2D, Dense, ...)",
        "SimpleRNN": "cnnkit.keras is for image classifiers (Conv2D, Dense, ...)",
        "RandomFlip": _AUGMENT,
        "RandomRotation": _AUGMENT,
        "RandomZoom": _AUGMENT,
        "RandomTranslation": _AUGMENT,
        "RandomCrop": _AUGMENT,
        "Resizing": "resize the arrays before fit",
        "ELU": "use Activation('elu')",
        "PReLU": "use LeakyReLU or Activation('relu')",
    },
)
