"""Probes: finding a model's convolution layers and catching what flows through them.

(Named apart from :mod:`cnnkit.layers`, which builds layers; this module only looks into
models that exist.)

Works on any ``nn.Module`` — registry models, models built from layer specs, user models —
by looking for ``nn.Conv1d``/``nn.Conv2d``/``nn.Conv3d`` modules and attaching forward hooks;
nothing about a model's class or attribute names is assumed.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass

import torch
from torch import nn

from cnnkit.errors import ModelError, did_you_mean

CONV_TYPES = (nn.Conv1d, nn.Conv2d, nn.Conv3d)


def conv_layers(model: nn.Module) -> list[tuple[str, nn.Module]]:
    """``(name, module)`` of every convolution in ``model``, in registration order."""
    return [(name, m) for name, m in model.named_modules() if isinstance(m, CONV_TYPES)]


# Shape-preserving, position-wise modules that complete a convolution: Keras's Conv2D(...,
# activation="relu") outputs after its activation, so pictures read the output there.
POINTWISE = (
    nn.BatchNorm1d,
    nn.BatchNorm2d,
    nn.BatchNorm3d,
    nn.ReLU,
    nn.ReLU6,
    nn.LeakyReLU,
    nn.PReLU,
    nn.ELU,
    nn.SELU,
    nn.GELU,
    nn.SiLU,
    nn.Mish,
    nn.Hardswish,
    nn.Tanh,
    nn.Sigmoid,
    nn.Dropout,
    nn.Dropout1d,
    nn.Dropout2d,
    nn.Dropout3d,
    nn.Identity,
)


@dataclass(frozen=True)
class LayerChoice:
    """A layer picked for pictures: its name, and the module whose output is read.

    Attributes:
        name: the layer asked for, or the last convolution found.
        read_from: the module whose output is used — ``name`` itself, or the activation
            (and batch norm) that directly follow a convolution.
        module: the module called ``read_from``.
        label: a human-readable description, e.g. ``features.5 (+ReLU)``.
    """

    name: str
    read_from: str
    module: nn.Module
    label: str


def execution_order(
    model: nn.Module, example: torch.Tensor
) -> list[tuple[str, nn.Module, tuple[int, ...]]]:
    """``(name, module, output shape)`` of each leaf module call of a forward pass, in order.

    Functional models may register layers in another order than they call them; this is
    the order that matters for "the last convolution" and "what follows it".
    """
    calls: list[tuple[str, nn.Module, tuple[int, ...]]] = []

    def record(name: str) -> Callable[[nn.Module, object, object], None]:
        def hook(module: nn.Module, _inputs: object, output: object) -> None:
            shape = tuple(output.shape) if isinstance(output, torch.Tensor) else ()
            calls.append((name, module, shape))

        return hook

    handles = [
        module.register_forward_hook(record(name))
        for name, module in model.named_modules()
        if not any(True for _ in module.children())
    ]
    try:
        with torch.no_grad():
            model(example)
    finally:
        for handle in handles:
            handle.remove()
    return calls


def layer_path(name: str, paths: Iterable[str]) -> str | None:
    """The module path ``name`` stands for: itself, or the one path ending in ``.name`` — a
    layer's own name, as ``cnnkit summary`` prints it (``conv2d_1`` for
    ``features.layers.conv2d_1``); None when neither exists (or the name is ambiguous).

    Every command that takes a layer name (filters, featuremaps, gradcam, finetune's
    ``--freeze until:LAYER``) reads it through this function.
    """
    paths = list(paths)
    if name in paths:
        return name
    ends = [path for path in paths if path.endswith(f".{name}")]
    return ends[0] if len(ends) == 1 else None


def conv_module(module: nn.Module) -> nn.Module | None:
    """``module`` if it is a convolution, else the one convolution inside it (a Keras-style
    ``Conv2D`` layer holds its ``nn.Conv2d`` with its activation); None otherwise."""
    if isinstance(module, CONV_TYPES):
        return module
    inner = conv_layers(module)
    return inner[0][1] if len(inner) == 1 else None


def conv_names(model: nn.Module) -> list[str]:
    """The convolutions' names as ``cnnkit summary`` shows them (``conv2d_1``, the Keras
    layer holding an ``nn.Conv2d``), or their module paths where no short name is unique."""
    modules = dict(model.named_modules())
    names = []
    for path, module in conv_layers(model):
        parent = path.rpartition(".")[0]
        shown = parent if parent and conv_module(modules[parent]) is module else path
        short = shown.rpartition(".")[2]
        names.append(short if layer_path(short, modules) == shown else shown)
    return names


def find_layer(
    model: nn.Module, name: str | None = None, *, example: torch.Tensor | None = None
) -> LayerChoice:
    """The layer called ``name``, or the last convolution when ``name`` is None.

    With ``example``, the choice follows a forward pass: "last" means last executed, and a
    convolution is read after the batch norm and activation that directly follow it (as a
    Keras ``Conv2D(..., activation="relu")`` would output).

    Args:
        model: any ``nn.Module``.
        name: a module name as ``model.named_modules()`` gives it (``features.5``), or its
            last part when that is unique (``conv2d_1`` for ``features.layers.conv2d_1``).
        example: a model input ``(N, C, H, W)``.

    Raises:
        ModelError: the model has no convolution, or no module called ``name``.
    """
    convs = conv_layers(model)
    modules = dict(model.named_modules())
    if name is not None:
        name = layer_path(name, modules) or name
    if name is not None and (name not in modules or not name):
        names = conv_names(model)
        raise ModelError(
            f"the model has no layer {name!r}.{did_you_mean(name, names)} Its convolution "
            f"layers: {', '.join(names) or 'none'} (pass one of them with --layer)"
        )
    if name is None and not convs:
        raise ModelError(
            f"{type(model).__name__} has no Conv1d/Conv2d/Conv3d layer; filters, feature "
            "maps and Grad-CAM need a convolutional model"
        )
    if example is None:
        chosen = name if name is not None else convs[-1][0]
        module = modules[chosen]
        return LayerChoice(chosen, chosen, module, chosen)
    calls = execution_order(model, example)
    if name is None:
        executed = [n for n, m, _ in calls if isinstance(m, CONV_TYPES)]
        name = executed[-1] if executed else convs[-1][0]
    positions = [i for i, (n, _, _) in enumerate(calls) if n == name]
    if not positions or not isinstance(modules[name], CONV_TYPES):
        return LayerChoice(name, name, modules[name], name)
    read_from, added = name, []
    shape = calls[positions[-1]][2]
    for later, module, out_shape in calls[positions[-1] + 1 :]:
        if not isinstance(module, POINTWISE) or out_shape != shape:
            break
        read_from = later
        if not isinstance(
            module, nn.Identity | nn.Dropout | nn.Dropout1d | nn.Dropout2d | nn.Dropout3d
        ):
            added.append(type(module).__name__)
    label = f"{name} (+{' + '.join(added)})" if added else name
    return LayerChoice(name, read_from, modules[read_from], label)


@dataclass
class Captured:
    """What a hooked layer produced in the last forward pass (``output`` is None before)."""

    output: torch.Tensor | None = None


@contextlib.contextmanager
def capture_output(module: nn.Module) -> Iterator[Captured]:
    """Record ``module``'s output on each forward pass while the context is open.

    The recorded tensor stays attached to the autograd graph, so gradients with respect to
    it can be taken (Grad-CAM).
    """
    captured = Captured()

    def hook(_module: nn.Module, _inputs: object, output: object) -> None:
        if not isinstance(output, torch.Tensor):
            raise ModelError(
                f"layer {type(_module).__name__} returns {type(output).__name__}, not a tensor; "
                "choose another layer"
            )
        captured.output = output

    handle = module.register_forward_hook(hook)
    try:
        yield captured
    finally:
        handle.remove()


def as_maps(activation: torch.Tensor, name: str = "layer") -> torch.Tensor:
    """A conv activation as 2-D maps ``(N, C, h, w)``.

    ``(N, C, L)`` (1-D conv) becomes ``(N, C, 1, L)``; ``(N, C, D, H, W)`` (3-D conv) is
    averaged over depth.

    Raises:
        ModelError: the activation has another number of dimensions.
    """
    if activation.ndim == 4:
        return activation
    if activation.ndim == 3:
        return activation[:, :, None, :]
    if activation.ndim == 5:
        return activation.mean(dim=2)
    raise ModelError(
        f"layer {name!r} outputs shape {tuple(activation.shape)}, not feature maps "
        "(N, C, ...); choose a convolution layer with --layer"
    )
