"""``summary``: what Keras's ``model.summary()`` prints, and more, for any ``torch.nn.Module``.

One row per layer: the name, the type (Keras's name where there is one), the output shape, the
parameter count *and how it was counted* (``4·4·1·32 + 32``: kernel height · width · input
channels · filters, plus one bias per filter), the receptive field (how many input pixels one
output cell sees), the multiply-adds and the activation memory per sample.

Rows are found through forward hooks during one forward pass of a single zero sample in eval
mode (nothing is trained, the model's mode is restored): each cnnkit layer is a row, and so is
each torch module without children. Totals follow Keras's rule: trainable = parameters that
require grad; non-trainable = frozen parameters plus floating-point state such as
BatchNorm's moving mean and variance; integer counters (``num_batches_tracked``) are not
parameters.
"""

from __future__ import annotations

import html
import io
import math
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import torch
from torch import nn

from cnnkit.errors import ModelError
from cnnkit.layers.base import Layer

LAYOUTS = ("nchw", "nhwc")
GLOBAL = "all"  # receptive field of a cell that sees the whole input
COLUMNS = (
    "Layer (type)",
    "Output shape",
    "Param #",
    "Counted as",
    "Receptive\nfield",  # two lines: room for the names at 80 columns
    "Mult-adds",
    "Activations",
)
RIGHT_COLUMNS = (2, 4, 5, 6)  # right-aligned (numbers)

_KERAS_NAMES = {
    nn.Linear: "Dense",
    nn.Conv1d: "Conv1D",
    nn.Conv2d: "Conv2D",
    nn.Conv3d: "Conv3D",
    nn.MaxPool1d: "MaxPooling1D",
    nn.MaxPool2d: "MaxPooling2D",
    nn.MaxPool3d: "MaxPooling3D",
    nn.AvgPool1d: "AveragePooling1D",
    nn.AvgPool2d: "AveragePooling2D",
    nn.AvgPool3d: "AveragePooling3D",
    nn.BatchNorm1d: "BatchNormalization",
    nn.BatchNorm2d: "BatchNormalization",
    nn.BatchNorm3d: "BatchNormalization",
}
_CONV = (nn.Conv1d, nn.Conv2d, nn.Conv3d)
_POOL = (nn.MaxPool1d, nn.MaxPool2d, nn.MaxPool3d, nn.AvgPool1d, nn.AvgPool2d, nn.AvgPool3d)
_NORM = (nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d)
_ADAPTIVE = (
    nn.AdaptiveAvgPool1d,
    nn.AdaptiveAvgPool2d,
    nn.AdaptiveAvgPool3d,
    nn.AdaptiveMaxPool1d,
    nn.AdaptiveMaxPool2d,
    nn.AdaptiveMaxPool3d,
)


@dataclass(frozen=True)
class LayerSummary:
    """One row of the summary.

    Attributes:
        name: the layer's name (a cnnkit layer's own name, else its module path).
        type: Keras's class name where one exists (``Conv2D``), else torch's.
        output_shape: per sample, channels first, e.g. ``(32, 28, 28)``; None if not called.
        params: parameters, Keras's way (trainable + non-trainable).
        trainable_params: the part that requires grad.
        counted_as: how ``params`` was counted, e.g. ``4·4·1·32 + 32``.
        receptive_field: input cells one output cell sees, per spatial axis, or ``"all"``.
        mult_adds: multiply-accumulate operations per sample (convolutions and dense layers).
        activation_bytes: memory of the output per sample.
    """

    name: str
    type: str
    output_shape: tuple[int, ...] | None
    params: int
    trainable_params: int
    counted_as: str
    receptive_field: tuple[int, ...] | str | None
    mult_adds: int
    activation_bytes: int


@dataclass(frozen=True, repr=False)
class ModelSummary:
    """The whole summary; ``print(summary)`` shows the table, :meth:`to_dict` the JSON.

    A notebook cell ending in ``summary(model)`` shows the table as HTML; ``repr`` is one line.
    """

    model: str
    input_shape: tuple[int, ...]
    layers: list[LayerSummary]
    total_params: int
    trainable_params: int
    non_trainable_params: int
    param_bytes: int
    mult_adds: int
    activation_bytes: int
    layout: str = "nchw"
    notes: list[str] = field(default_factory=list)

    def shape_text(self, shape: Sequence[int] | None) -> str:
        """``(None, 32, 28, 28)`` (nchw) or ``(None, 28, 28, 32)`` (nhwc)."""
        if shape is None:
            return "not called"
        return "(None, " + ", ".join(map(str, _in_layout(shape, self.layout))) + ")"

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready: totals, then ``layers`` with shapes in the summary's layout."""
        data = asdict(self)
        data["input_shape"] = list(_in_layout(self.input_shape, self.layout))
        for row, layer in zip(data["layers"], self.layers, strict=True):
            shape = layer.output_shape
            row["output_shape"] = None if shape is None else list(_in_layout(shape, self.layout))
            rf = layer.receptive_field
            row["receptive_field"] = list(rf) if isinstance(rf, tuple) else rf
        return data

    def title(self) -> str:
        return f'Model: "{self.model}"  input {self.shape_text(self.input_shape)}'

    def rows(self) -> list[tuple[str, ...]]:
        """The table's cells as text, one tuple per layer, in :data:`COLUMNS` order."""
        return [
            (
                f"{layer.name} ({layer.type})",
                self.shape_text(layer.output_shape),
                f"{layer.params:,}",
                layer.counted_as,
                _rf_text(layer.receptive_field),
                f"{layer.mult_adds:,}" if layer.mult_adds else "",
                _bytes(layer.activation_bytes),
            )
            for layer in self.layers
        ]

    def to_table(self) -> Any:
        """The table as a ``rich`` renderable (what ``cnnkit summary`` prints)."""
        from rich.table import Table

        table = Table(title=self.title(), title_justify="left", show_lines=False, pad_edge=False)
        # narrow terminals: numbers are never cut or wrapped, names and shapes fold
        for i, column in enumerate(COLUMNS):
            if i in RIGHT_COLUMNS:
                table.add_column(column, justify="right", no_wrap=True)
            else:
                table.add_column(column, overflow="fold")
        for row in self.rows():
            table.add_row(*row)
        return table

    def totals_text(self) -> str:
        """Keras's three total lines, plus compute and memory."""
        lines = [
            f"Total params: {self.total_params:,} ({_bytes(self.param_bytes)})",
            f"Trainable params: {self.trainable_params:,}",
            f"Non-trainable params: {self.non_trainable_params:,}",
            f"Mult-adds per sample: {self.mult_adds:,}",
            f"Activation memory per sample (forward): {_bytes(self.activation_bytes)}",
        ]
        return "\n".join(lines + self.notes)

    def __str__(self) -> str:
        from rich.console import Console

        # force_jupyter=False: in a notebook rich would also display what it renders here
        console = Console(
            width=160, color_system=None, record=True, file=io.StringIO(), force_jupyter=False
        )
        console.print(self.to_table())
        console.print(self.totals_text())
        return console.export_text()

    def __repr__(self) -> str:
        return (
            f"<ModelSummary {self.model!r}: input {self.shape_text(self.input_shape)}, "
            f"{len(self.layers)} layers, {self.total_params:,} parameters "
            f"({self.trainable_params:,} trainable)>"
        )

    def _repr_html_(self) -> str:
        from cnnkit.notebook import html_table

        table = html_table(self.rows(), header=COLUMNS, caption=self.title(), right=RIGHT_COLUMNS)
        totals = "<br>".join(html.escape(line) for line in self.totals_text().splitlines())
        return f"{table}<p>{totals}</p>"


def summary(
    model: nn.Module, input_shape: Sequence[int] | None = None, *, layout: str = "nchw"
) -> ModelSummary:
    """Summarise ``model`` for per-sample inputs of ``input_shape`` ``(C, H, W)``.

    Args:
        model: any ``torch.nn.Module`` taking one ``(N, *input_shape)`` tensor.
        input_shape: per-sample shape, channels first; a cnnkit Model's own by default.
        layout: how to show shapes: ``nchw`` (torch's, default) or ``nhwc`` (Keras's).

    Raises:
        ModelError: an unknown layout, no input shape, or a model that cannot take the input.
    """
    if layout not in LAYOUTS:
        raise ModelError(f"layout must be one of {', '.join(LAYOUTS)}, got {layout!r}")
    own = getattr(model, "input_shape", None)
    if input_shape is None:
        if own is None:
            raise ModelError("summary needs the input shape (C, H, W), e.g. (1, 28, 28)")
        input_shape = own
    shape = tuple(int(n) for n in input_shape)
    if own is not None and tuple(own) != shape:
        raise ModelError(f"the model is built for input {tuple(own)}, not {shape}")
    rows = list(_rows(model))
    trace = _Trace(rows, spatial=len(shape) - 1)
    handles = [m.register_forward_hook(trace.on_row) for _, m, _ in rows]
    handles += [
        m.register_forward_hook(trace.on_compute)
        for m in model.modules()
        if isinstance(m, (nn.Linear, *_CONV))
    ]
    training = [m.training for m in model.modules()]
    try:
        model.eval()
        parameter = next(iter(model.parameters()), None)
        x = torch.zeros(1, *shape, device=parameter.device if parameter is not None else "cpu")
        trace.start(x)
        with torch.no_grad():
            model(x)
    except RuntimeError as exc:
        raise ModelError(f"the model cannot take input {shape}: {exc}") from exc
    finally:
        for handle in handles:
            handle.remove()
        for module, mode in zip(model.modules(), training, strict=True):
            module.training = mode
    return _assemble(model, shape, rows, trace, layout)


# -- finding rows ---------------------------------------------------------------------------

Row = tuple[str, nn.Module, bool]  # name, module, counts only its own (not children's) weights


def _rows(model: nn.Module) -> Iterator[Row]:
    known: dict[int, str] = {}
    output = getattr(model, "output_layer", None)  # a cnnkit.layers.Model names its output
    if isinstance(output, Layer) and output.name and isinstance(model.head, nn.Linear):
        known[id(model.head)] = output.name  # the head is the output Dense layer's weights

    def visit(path: str, module: nn.Module) -> Iterator[Row]:
        children = list(module.named_children())
        if isinstance(module, Layer) or not children:
            name = module.name if isinstance(module, Layer) and module.name else path
            name = known.get(id(module), name)
            yield (name or type(module).__name__.lower(), module, False)
            return
        if any(True for _ in _own_state(module, recurse=False)):
            yield (path or type(module).__name__.lower(), module, True)
        for child_name, child in children:
            yield from visit(f"{path}.{child_name}" if path else child_name, child)

    return visit("", model)


def _own_state(module: nn.Module, *, recurse: bool) -> Iterator[tuple[torch.Tensor, bool]]:
    """``(tensor, trainable)`` for parameters and the buffers Keras counts as parameters."""
    for parameter in module.parameters(recurse=recurse):
        yield parameter, parameter.requires_grad
    modules = module.modules() if recurse else [module]
    for owner in modules:
        for name, buffer in owner.named_buffers(recurse=False):
            if name not in owner._non_persistent_buffers_set and buffer.is_floating_point():
                yield buffer, False


# -- tracing the forward pass ---------------------------------------------------------------


@dataclass
class _Seen:
    shape: tuple[int, ...] | None = None
    bytes: int = 0
    receptive_field: tuple[int, ...] | str | None = None
    mult_adds: int = 0


class _Trace:
    """Forward hooks: output shapes, receptive fields (tracked per tensor) and mult-adds."""

    def __init__(self, rows: list[Row], spatial: int) -> None:
        self.seen: dict[int, _Seen] = {id(m): _Seen() for _, m, _ in rows}
        self.order: list[int] = []
        self.owner = {id(sub): id(m) for _, m, own in rows if not own for sub in m.modules()}
        self.containers = {id(m) for _, m, own in rows if own}
        self.fields: dict[int, tuple[tuple[int, ...], tuple[int, ...]] | str] = {}
        self.keep: list[torch.Tensor] = []  # keeps ids unique while tracing
        self.spatial = spatial

    def start(self, x: torch.Tensor) -> None:
        self.fields[id(x)] = ((1,) * self.spatial, (1,) * self.spatial)
        self.keep.append(x)

    def on_row(self, module: nn.Module, inputs: Any, output: Any) -> None:
        tensor = _first_tensor(output)
        fields = [self.fields[id(t)] for t in _tensors(inputs) if id(t) in self.fields]
        if not fields and self.fields:  # combined outside modules: assume the widest so far
            fields = [max(self.fields.values(), key=_field_size)]
        field_in = max(fields, key=_field_size) if fields else None
        if id(module) in self.containers:  # its children's rows already traced the geometry
            known = self.fields.get(id(tensor)) if tensor is not None else None
            field_out = known if known is not None else field_in
        else:
            field_out = _propagate(module, field_in, tensor, self.spatial)
        if tensor is not None and field_out is not None:
            self.fields[id(tensor)] = field_out
            self.keep.append(tensor)
        seen = self.seen[id(module)]
        if seen.shape is None and tensor is not None:
            self.order.append(id(module))
            seen.shape = tuple(tensor.shape[1:])
            seen.bytes = tensor[0].numel() * tensor.element_size()
            seen.receptive_field = (
                field_out if isinstance(field_out, str) or field_out is None else field_out[0]
            )

    def on_compute(self, module: nn.Module, inputs: Any, output: Any) -> None:
        tensor = _first_tensor(output)
        owner = self.owner.get(id(module))
        if tensor is None or owner is None:
            return
        weight = module.weight
        if not isinstance(weight, torch.Tensor):
            return
        per_output = weight[0].numel()  # in_features, or (C_in / groups) · kernel cells
        self.seen[owner].mult_adds += int(tensor[0].numel() * per_output)


def _tensors(value: Any) -> list[torch.Tensor]:
    if isinstance(value, torch.Tensor):
        return [value]
    if isinstance(value, list | tuple):
        return [t for v in value for t in _tensors(v)]
    return []


def _first_tensor(value: Any) -> torch.Tensor | None:
    tensors = _tensors(value)
    return tensors[0] if tensors else None


def _field_size(field: tuple[tuple[int, ...], tuple[int, ...]] | str) -> float:
    return math.inf if isinstance(field, str) else math.prod(field[0])


def _propagate(
    module: nn.Module,
    field: tuple[tuple[int, ...], tuple[int, ...]] | str | None,
    output: torch.Tensor | None,
    spatial: int,
) -> tuple[tuple[int, ...], tuple[int, ...]] | str | None:
    """Receptive field and jump (input cells between neighbouring outputs) after ``module``."""
    if field is None or isinstance(field, str):
        return field
    if output is not None and output.dim() < 2 + spatial:
        return GLOBAL  # flattened, densely connected or globally pooled
    if isinstance(module, _ADAPTIVE) and output is not None and output[0, 0].numel() == 1:
        return GLOBAL
    size, jump = list(field[0]), list(field[1])
    for sub in module.modules():
        if isinstance(sub, _CONV):
            kernel = [d * (k - 1) + 1 for d, k in zip(sub.dilation, sub.kernel_size, strict=True)]
            stride = list(sub.stride)
        elif isinstance(sub, _POOL):
            kernel = _axes(sub.kernel_size, spatial)
            stride = _axes(sub.stride or sub.kernel_size, spatial)
        else:
            continue
        if len(kernel) != spatial:
            continue
        size = [r + (k - 1) * j for r, k, j in zip(size, kernel, jump, strict=True)]
        jump = [j * s for j, s in zip(jump, stride, strict=True)]
    return tuple(size), tuple(jump)


def _axes(value: Any, spatial: int) -> list[int]:
    return [int(value)] * spatial if isinstance(value, int) else [int(v) for v in value]


# -- counting -------------------------------------------------------------------------------


def _assemble(
    model: nn.Module,
    input_shape: tuple[int, ...],
    rows: list[Row],
    trace: _Trace,
    layout: str,
) -> ModelSummary:
    counted: set[int] = set()
    layers: list[LayerSummary] = []
    position = {module_id: i for i, module_id in enumerate(trace.order)}
    ordered = sorted(rows, key=lambda row: position.get(id(row[1]), len(position)))
    for name, module, own_only in ordered:
        state = [
            (t, trainable)
            for t, trainable in _own_state(module, recurse=not own_only)
            if id(t) not in counted
        ]
        counted.update(id(t) for t, _ in state)
        seen = trace.seen[id(module)]
        layers.append(
            LayerSummary(
                name=name,
                type=_type_name(module),
                output_shape=seen.shape,
                params=sum(t.numel() for t, _ in state),
                trainable_params=sum(t.numel() for t, trainable in state if trainable),
                counted_as=_counted_as(module, own_only),
                receptive_field=seen.receptive_field,
                mult_adds=seen.mult_adds,
                activation_bytes=seen.bytes,
            )
        )
    state = list(_unique(_own_state(model, recurse=True)))
    trainable = sum(t.numel() for t, flag in state if flag)
    total = sum(t.numel() for t, _ in state)
    uncalled = [layer.name for layer in layers if layer.output_shape is None]
    notes = [f"Not called in the forward pass: {', '.join(uncalled)}"] if uncalled else []
    return ModelSummary(
        model=str(getattr(model, "name", None) or type(model).__name__),
        input_shape=input_shape,
        layers=layers,
        total_params=total,
        trainable_params=trainable,
        non_trainable_params=total - trainable,
        param_bytes=sum(t.numel() * t.element_size() for t, _ in state),
        mult_adds=sum(layer.mult_adds for layer in layers),
        activation_bytes=sum(layer.activation_bytes for layer in layers),
        layout=layout,
        notes=notes,
    )


def _unique(items: Iterator[tuple[torch.Tensor, bool]]) -> Iterator[tuple[torch.Tensor, bool]]:
    seen: set[int] = set()
    for tensor, flag in items:
        if id(tensor) not in seen:
            seen.add(id(tensor))
            yield tensor, flag


def _type_name(module: nn.Module) -> str:
    if isinstance(module, Layer):
        return module.kind
    return _KERAS_NAMES.get(type(module), type(module).__name__)


def _counted_as(module: nn.Module, own_only: bool) -> str:
    """``4·4·1·32 + 32`` for a conv (Keras's kernel order: kh·kw·in·filters), ``3136·1024 +
    1024`` for a dense layer, ``2·64 + 2·64`` for BatchNorm (scale and offset, then the
    non-trainable moving mean and variance)."""
    parts: list[str] = []
    for sub in [module] if own_only else module.modules():
        direct = list(sub.parameters(recurse=False))
        if isinstance(sub, _CONV):
            out, fan_in, *kernel = sub.weight.shape
            parts.append("·".join(map(str, [*kernel, fan_in, out])))
            if sub.bias is not None:
                parts.append(str(out))
        elif isinstance(sub, nn.Linear):
            parts.append(f"{sub.in_features}·{sub.out_features}")
            if sub.bias is not None:
                parts.append(str(sub.out_features))
        elif isinstance(sub, _NORM):
            if sub.affine:
                parts.append(f"2·{sub.num_features}")
            if sub.track_running_stats:
                parts.append(f"2·{sub.num_features} moving")
        else:
            parts += ["·".join(map(str, p.shape)) or "1" for p in direct]
    return " + ".join(parts)


def _in_layout(shape: Sequence[int], layout: str) -> tuple[int, ...]:
    shape = tuple(shape)
    if layout == "nhwc" and len(shape) >= 2:
        return (*shape[1:], shape[0])
    return shape


def _rf_text(field: tuple[int, ...] | str | None) -> str:
    if field is None:
        return ""
    return field if isinstance(field, str) else "x".join(map(str, field))


def _bytes(count: int) -> str:
    value = float(count)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if value < 1024 or unit == "GiB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.2f} {unit}"
        value /= 1024
    return f"{value:.2f} GiB"
