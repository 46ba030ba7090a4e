"""Models made of layers: the functional :class:`Model` and the :class:`Sequential` stack.

Both are :class:`~cnnkit.layers.classifier.Classifier` modules: when the output layer is a
``Dense`` layer without activation, its weights are the ``head`` (the logits) and everything
before it is ``features``, so any model built from layers swaps its classifier the same way
as the zoo (``reset_classifier``).

Layers get Keras's default names (``conv2d``, ``conv2d_1``, ``dense``, ...) in the order they
were added or called; the names are the keys of the weights in the state dict
(``features.layers.conv2d.conv.weight``) and of the layers in a spec.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import torch
from torch import nn

from cnnkit.errors import ModelError
from cnnkit.layers.base import Input, InputLayer, Layer, Shape, SymbolicTensor, snake_case
from cnnkit.layers.classifier import Classifier
from cnnkit.layers.core import Dense
from cnnkit.layers.init import initialize_module
from cnnkit.layers.summary import ModelSummary, summary

Node = tuple[Layer, tuple[str, ...]]


class Graph(nn.Module):
    """Runs layers in a fixed order, each on the outputs of the layers it names.

    Attributes:
        layers: the layers by name.
    """

    def __init__(self, input_name: str, nodes: Sequence[Node], output: str) -> None:
        super().__init__()
        self.layers = nn.ModuleDict({str(layer.name): layer for layer, _ in nodes})
        self.input_name, self.output_name = input_name, output
        last_use: dict[str, int] = {}
        for step, (_, inputs) in enumerate(nodes):
            last_use.update(dict.fromkeys(inputs, step))
        # after each step, drop the values no later step needs (keeps inference memory low)
        self.steps = [
            (
                str(layer.name),
                inputs,
                tuple(n for n in set(inputs) if last_use[n] == step and n != output),
            )
            for step, (layer, inputs) in enumerate(nodes)
        ]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``(N, *input_shape)`` -> the output layer's value."""
        values = {self.input_name: x}
        for name, inputs, release in self.steps:
            values[name] = self.layers[name](*[values[i] for i in inputs])
            for done in release:
                del values[done]
        return values[self.output_name]


class Model(Classifier):
    """A model wired in the functional style::

        x = Input((3, 32, 32))
        y = Conv2D(32, 3, activation="relu")(x)
        y = Flatten()(y)
        model = Model(x, Dense(10)(y))

    Args:
        inputs: the ``Input(...)`` tensor.
        outputs: the tensor the last layer returned (logits from ``Dense(num_classes)``).
        name: the model's name (shown by summary, stored in its spec).
    """

    def __init__(
        self,
        inputs: SymbolicTensor | Sequence[SymbolicTensor],
        outputs: SymbolicTensor | Sequence[SymbolicTensor],
        *,
        name: str | None = None,
    ) -> None:
        super().__init__(Graph("input", [], "input"), nn.Identity())
        self.name = name
        source, output = _single(inputs, "inputs"), _single(outputs, "outputs")
        if not isinstance(source.layer, InputLayer):
            raise ModelError("Model(inputs, ...) takes the tensor Input(...) returned")
        layers = _trace(source, output)
        assign_names([source.layer, *layers])
        nodes = [(layer, _input_names(layer)) for layer in layers]
        self._set_graph(source.layer.name or "input", source.shape, nodes)

    # -- structure ----------------------------------------------------------------------------

    def _set_graph(self, input_name: str, input_shape: Shape | None, nodes: list[Node]) -> None:
        """Split ``nodes`` into ``features`` and the Dense ``head`` and register them."""
        last = nodes[-1][0] if nodes else None
        has_head = (
            isinstance(last, Dense) and last.built and last.activation_name in (None, "linear")
        )
        body = nodes[:-1] if has_head else nodes
        if has_head:
            body_output = nodes[-1][1][0]
        else:
            body_output = str(nodes[-1][0].name) if nodes else input_name
        self.features = Graph(input_name, body, body_output)
        self.head = last.linear if has_head and isinstance(last, Dense) else nn.Identity()
        self._input_name, self._input_shape = input_name, input_shape
        self._nodes = nodes
        self._built = input_shape is not None and all(layer.built for layer, _ in nodes)

    @property
    def input_shape(self) -> Shape | None:
        """Per-sample input shape ``(C, H, W)``; None until a Sequential model is built."""
        return self._input_shape

    @property
    def input_name(self) -> str:
        return self._input_name

    @property
    def nodes(self) -> list[Node]:
        """``(layer, names of its inputs)`` for every layer, in execution order."""
        return list(self._nodes)

    @property
    def output_shape(self) -> Shape | None:
        if not self._built:
            return None
        return self._nodes[-1][0].output_shape if self._nodes else self._input_shape

    @property
    def built(self) -> bool:
        return self._built

    @property
    def output_layer(self) -> Layer | None:
        return self._nodes[-1][0] if self._nodes else None

    # -- running ------------------------------------------------------------------------------

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``(N, *input_shape)`` -> logits ``(N, num_classes)`` (or the output layer's value)."""
        if not self._built:
            raise ModelError(
                f"{self._label()} has no input shape yet: start it with Input((C, H, W)), pass "
                "input_shape=(C, H, W), or call build((C, H, W))"
            )
        return self.head(self.features(x))

    def reset_classifier(self, num_classes: int) -> None:
        """Replace the Dense head with a fresh one (Glorot-uniform) of ``num_classes`` units."""
        super().reset_classifier(num_classes)
        head = self._nodes[-1][0]
        if isinstance(head, Dense) and isinstance(self.head, nn.Linear):
            initialize_module(self.head, "keras")
            head.units = num_classes
            head._config["units"] = num_classes
            head.linear = self.head
            head.output_shape = (num_classes,)

    # -- Keras conveniences ---------------------------------------------------------------------

    def summary(self, *, layout: str = "nchw") -> ModelSummary:
        """Per-layer output shapes, parameters and more (``print`` it for the table)."""
        if self._input_shape is None:
            raise ModelError(f"{self._label()} is not built; summary needs its input shape")
        return summary(self, self._input_shape, layout=layout)

    def get_config(self) -> dict[str, Any]:
        """The model's spec (the format YAML and JSON files use, :mod:`cnnkit.layers.spec`):
        name and layers."""
        spec: dict[str, Any] = {}
        if self.name:
            spec["name"] = self.name
        layers: list[dict[str, Any]] = []
        if self.input_shape is not None:
            entry: dict[str, Any] = {"shape": list(self.input_shape)}
            if self.input_name != "input":
                entry["name"] = self.input_name
            layers.append({"Input": entry})
        previous = self.input_name
        for layer, inputs in self.nodes:
            config = layer.get_config()
            if inputs != (previous,) and self.input_shape is not None:
                config["inputs"] = list(inputs)
            layers.append({layer.kind: config})
            previous = str(layer.name)
        spec["layers"] = layers
        return spec

    def _label(self) -> str:
        return f"model {self.name!r}" if self.name else type(self).__name__ + " model"


class Sequential(Model):
    """A plain stack of layers, each taking the previous one's output::

        model = Sequential([Input((1, 28, 28)), Conv2D(32, 4, padding="same",
                            activation="relu"), MaxPooling2D(2), Flatten(), Dense(10)])
        model.add(...)   # or add layers one at a time

    Layers are built as soon as the input shape is known: from a leading ``Input(...)``,
    ``input_shape=``, or a later :meth:`build`.
    """

    def __init__(
        self,
        layers: Iterable[Layer | SymbolicTensor] = (),
        *,
        input_shape: Sequence[int] | None = None,
        name: str | None = None,
    ) -> None:
        Classifier.__init__(self, Graph("input", [], "input"), nn.Identity())
        self.name = name
        self._source: SymbolicTensor | None = None if input_shape is None else Input(input_shape)
        self._chain: list[Layer] = []
        self._refresh()
        for layer in layers:
            self.add(layer)

    def add(self, layer: Layer | SymbolicTensor) -> None:
        """Append a layer (or, first of all, an ``Input(...)``), building it when possible."""
        if isinstance(layer, SymbolicTensor):
            if not isinstance(layer.layer, InputLayer) or self._source is not None or self._chain:
                raise ModelError(
                    "Input(...) may only start a Sequential model, once; "
                    "use the functional Model for graphs"
                )
            self._source = layer
            self._refresh()
            return
        if not isinstance(layer, Layer) or isinstance(layer, InputLayer):
            raise ModelError(
                f"Sequential.add takes a layer such as Conv2D(32, 3), got {type(layer).__name__}"
            )
        self._chain.append(layer)
        try:
            self._refresh()
        except ModelError:
            self._chain.pop()
            raise

    def build(self, input_shape: Sequence[int]) -> None:
        """Build every layer for per-sample inputs of ``input_shape`` ``(C, H, W)``."""
        if self._source is not None:
            if tuple(input_shape) != self._source.shape:
                raise ModelError(
                    f"{self._label()} is built for input {self._source.shape}, "
                    f"not {tuple(input_shape)}"
                )
            return
        self._source = Input(input_shape)
        self._refresh()

    def _refresh(self) -> None:
        source = None if self._source is None else self._source.layer
        assign_names([source, *self._chain] if source is not None else self._chain)
        previous = self._source
        for layer in self._chain:
            if previous is None:
                break
            done = layer.symbolic_output
            previous = done if done is not None and done.inputs == (previous,) else layer(previous)
        input_name = source.name if source is not None and source.name else "input"
        names = [input_name, *(layer.name for layer in self._chain)]
        nodes: list[Node] = [(layer, (str(names[i]),)) for i, layer in enumerate(self._chain)]
        self._set_graph(input_name, None if self._source is None else self._source.shape, nodes)


def _single(value: SymbolicTensor | Sequence[SymbolicTensor], what: str) -> SymbolicTensor:
    if isinstance(value, SymbolicTensor):
        return value
    items = list(value)
    if len(items) != 1 or not isinstance(items[0], SymbolicTensor):
        raise ModelError(
            f"Model {what} must be one tensor from Input(...) or a layer call; "
            "cnnkit models have one image input and one output"
        )
    return items[0]


def _trace(source: SymbolicTensor, output: SymbolicTensor) -> list[Layer]:
    """The layers ``output`` depends on, in the order they were called (a topological order)."""
    found: dict[int, Layer] = {}
    stack = [output]
    while stack:
        tensor = stack.pop()
        if id(tensor.layer) in found:
            continue
        found[id(tensor.layer)] = tensor.layer
        stack.extend(tensor.inputs)
    inputs = [layer for layer in found.values() if isinstance(layer, InputLayer)]
    if inputs != [source.layer]:
        raise ModelError(
            "the model's output does not depend on its input"
            if source.layer not in inputs
            else "the model's output depends on another Input(...) than the one given as inputs"
        )
    layers = [layer for layer in found.values() if not isinstance(layer, InputLayer)]
    return sorted(layers, key=lambda layer: layer.call_index)


def _input_names(layer: Layer) -> tuple[str, ...]:
    tensor = layer.symbolic_output
    inputs = () if tensor is None else tensor.inputs
    return tuple(str(t.layer.name) for t in inputs)


def assign_names(layers: Sequence[Layer]) -> None:
    """Give unnamed layers Keras's default names (``conv2d``, ``conv2d_1``, ...) in order.

    Raises:
        ModelError: two layers have the same explicit name.
    """
    used: set[str] = set()
    for layer in layers:
        if layer.name is not None:
            if layer.name in used:
                raise ModelError(f"two layers are named {layer.name!r}; layer names must be unique")
            used.add(layer.name)
    for layer in layers:
        if layer.name is None:
            base = "input" if isinstance(layer, InputLayer) else snake_case(layer.kind)
            name, count = base, 0
            while name in used:
                count += 1
                name = f"{base}_{count}"
            layer.name = name
            used.add(name)
