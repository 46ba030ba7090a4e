"""``keras.Sequential`` and ``keras.Model``: cnnkit models with Keras's training methods.

A model here *is* a cnnkit :class:`~cnnkit.layers.Model` (a torch module producing logits,
channels first inside) that also speaks Keras: ``compile``, ``fit``, ``evaluate``, ``predict``,
``summary``, ``save``. Two things happen at its edges:

- **layout**: arrays come in as the user writes them (channels last by default) and become the
  engine's ``(N, C, H, W)`` by one permuted *view* (NHWC memory is torch's ``channels_last``
  format, so nothing is copied and the convolutions run on their fast path);
- **output activation**: a final ``softmax`` or ``sigmoid`` is kept out of the module the engine
  trains: the loss applies it fused (``log_softmax`` + NLL, BCE-with-logits), and ``predict`` /
  ``model(x)`` apply it, so outputs are the probabilities the model defines.

``fit`` trains through :func:`cnnkit.train.loop.fit` (the one loop: channels_last, fused
optimizers, callbacks, and the engine's precision: bf16 autocast where the hardware computes
it natively, as ``cnnkit train``; ``keras.mixed_precision.set_global_policy("float32")`` for
Keras's exact float32, see :mod:`~cnnkit.keras.mixed_precision`); it never copies or rescales
the data: uint8 or float arrays are trained on as they are.
"""

from __future__ import annotations

import io
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import nn

from cnnkit import layers as base
from cnnkit.devices import resolve_device
from cnnkit.errors import ConfigError, DataError, ModelError
from cnnkit.keras import backend, bridge, mixed_precision, saving
from cnnkit.keras import callbacks as keras_callbacks
from cnnkit.keras import losses as keras_losses
from cnnkit.keras import metrics as keras_metrics
from cnnkit.keras import optimizers as keras_optimizers
from cnnkit.keras.directory import ImageDataset
from cnnkit.keras.layers import InputLayer
from cnnkit.keras.progress import KerasProgress, report
from cnnkit.keras.saving import model_config
from cnnkit.keras.unsupported import unsupported
from cnnkit.layers.base import SymbolicTensor, make_activation
from cnnkit.models.forward import predict_logits
from cnnkit.train import callbacks as engine_callbacks
from cnnkit.train.batches import TensorBatches
from cnnkit.train.callbacks import Logs, TrainState
from cnnkit.train.precision import resolve_precision

OUTPUT_ACTIVATIONS = ("softmax", "sigmoid")  # fused into the loss when they end a model
# images per forward pass of evaluate/predict without batch_size= (Keras's default is 32):
# LeNet in bf16 on a 1-thread AMX CPU, us/sample: 168 at 32, 128 at 256, 222 at 1000
EVAL_BATCH = 256

_MODEL_NEAREST = {
    "to_json": "use model.save('model.keras') and keras.models.load_model",
    "get_weights": "use model.save_weights(path) / load_weights(path), or model.state_dict()",
    "set_weights": "use model.load_weights(path), or model.load_state_dict(...)",
    "train_on_batch": "use fit(x_batch, y_batch, epochs=1, verbose=0)",
    "test_on_batch": "use evaluate(x_batch, y_batch, verbose=0)",
    "predict_on_batch": "use predict(x_batch, verbose=0)",
    "fit_generator": "use fit(x, y, ...) with arrays",
    "export": "use model.save_run(path) then `cnnkit export` on the run folder",
    "inputs": "use model.input_shape",
    "outputs": "use model.output_shape",
}


@dataclass(frozen=True)
class Arrays:
    """Images ``(N, C, ...)`` (uint8 or float32, as given) and targets, for the engine."""

    images: torch.Tensor
    labels: torch.Tensor

    def __len__(self) -> int:
        return int(self.labels.shape[0])


@dataclass(frozen=True)
class FitRecord:
    """What the last ``fit`` did, for :meth:`KerasModel.save_run`: the engine's per-epoch
    logs and decisions, when it started (``time.time()``), the samples and batch size, the
    inputs' dtype and value range, and the class names of a dataset it was given."""

    rows: list[Logs]
    training: dict[str, Any]
    started: float
    samples: int
    batch_size: int
    input_range: tuple[str, float, float]
    class_names: list[str] | None


@dataclass
class Compiled:
    optimizer: keras_optimizers.Optimizer
    loss: keras_losses.Loss | None
    metrics: list[keras_metrics.Metric]


def as_float32(images: torch.Tensor) -> torch.Tensor:
    """The engine's preprocessing for Keras data: a dtype change only, values kept as given."""
    return images.float()


class _Logits(nn.Module):
    """The model without its output activation: what the engine trains and evaluates."""

    def __init__(self, model: KerasModel) -> None:
        super().__init__()
        self.model = model

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model.logits(x)


class _Attach(engine_callbacks.Callback):
    """Links the model (``stop_training``) and the optimizer (``learning_rate``) to the run."""

    order = -200

    def __init__(self, model: KerasModel) -> None:
        self.model = model

    def set_state(self, state: TrainState) -> None:
        super().set_state(state)
        self.model._fit_state = state
        if self.model.optimizer is not None:
            self.model.optimizer.lr_scale_of = state


def _strip(layer: base.Layer | None) -> str | None:
    """Take a final softmax/sigmoid out of ``layer``'s forward; return its name."""
    name = getattr(layer, "keras_activation", None)
    if layer is None or name not in OUTPUT_ACTIVATIONS:
        return None
    layer.activation = nn.Identity()
    if isinstance(layer, base.Dense):
        layer.activation_name = None
    return name


def _restore(layer: base.Layer) -> None:
    name = getattr(layer, "keras_activation", None)
    if name in OUTPUT_ACTIVATIONS:
        layer.activation = make_activation(name)
        if isinstance(layer, base.Dense):
            layer.activation_name = name


class KerasModel(base.Model):
    """The Keras methods shared by :class:`Model` and :class:`Sequential`."""

    _output_activation: str | None = None
    _fit_state: TrainState | None = None
    history: keras_callbacks.History | None = None
    last_fit: FitRecord | None = None
    _stop_training = False
    _compiled: Compiled | None = None
    optimizer: keras_optimizers.Optimizer | None = None

    # -- shapes and layout -----------------------------------------------------------------------

    @property
    def data_format(self) -> str:
        source = self._source_layer()
        return (
            getattr(source, "layout", "channels_first") if source else backend.image_data_format()
        )

    def _source_layer(self) -> base.InputLayer | None:
        raise NotImplementedError

    @property
    def input_shape(self) -> tuple[int | None, ...] | None:  # type: ignore[override]
        """``(None, 28, 28, 1)``: the input as the user writes it (None until known)."""
        internal = self._input_shape
        if internal is None:
            return None
        return (None, *backend.to_user(internal, self.data_format))

    @property
    def output_shape(self) -> tuple[int | None, ...] | None:  # type: ignore[override]
        internal = super().output_shape
        if internal is None:
            return None
        return (None, *backend.to_user(internal, self.data_format))

    def _inputs(self, x: Any) -> torch.Tensor:
        """User arrays -> the engine's channels-first tensor (a view; uint8 kept as uint8)."""
        if isinstance(x, list | tuple | dict):
            raise unsupported("models with several inputs", "give one array of images")
        tensor = x if isinstance(x, torch.Tensor) else torch.as_tensor(np.asarray(x))
        if tensor.dtype not in (torch.uint8, torch.float32):
            if tensor.dtype.is_complex or tensor.dtype == torch.bool:
                raise DataError(f"inputs must be numbers, got dtype {tensor.dtype}")
            tensor = tensor.float()  # float64/16 and integer pixels: same values, float32
        if tensor.ndim < 2:
            raise DataError(f"inputs must be a batch (N, ...), got shape {tuple(tensor.shape)}")
        if self._input_shape is None:
            self.build((None, *tensor.shape[1:]))
        user = tuple(n for n in (self.input_shape or ())[1:] if n is not None)
        got = tuple(tensor.shape[1:])
        last = self.data_format == "channels_last"
        grey = user[:-1] if last else user[1:]  # the shape without a unit channel axis
        if got != user and got == grey and user[-1 if last else 0] == 1:
            tensor = tensor.unsqueeze(-1 if last else 1)  # grey images without channel axis
            got = user
        if got != user:
            raise DataError(
                f"the model takes inputs of shape {self.input_shape}, got {tuple(tensor.shape)}"
                + (
                    "; add Reshape(...) as the first layer for flat vectors"
                    if len(got) == 1
                    else ""
                )
            )
        return tensor.movedim(-1, 1) if last and tensor.ndim >= 3 else tensor

    def logits(self, x: torch.Tensor) -> torch.Tensor:
        """Channels-first inputs -> the values before the output activation."""
        return base.Model.forward(self, x)

    def forward(self, x: Any, training: bool | None = None, mask: Any = None) -> torch.Tensor:
        """``model(x)``: Keras's call, on arrays or tensors as the user lays them out."""
        if isinstance(x, SymbolicTensor):
            raise unsupported(
                "calling a model on a symbolic tensor (nesting models)",
                "add the layers of both models to one Sequential or functional model",
            )
        device = next(self.parameters(), torch.empty(0)).device
        images = self._inputs(x).to(device)
        return self._to_user(self._activate(self.logits(as_float32(images))))

    def _activate(self, z: torch.Tensor) -> torch.Tensor:
        name = self._output_activation
        return make_activation(name)(z) if name else z

    def _to_user(self, outputs: torch.Tensor) -> torch.Tensor:
        if self.data_format == "channels_last" and outputs.ndim >= 3:
            return outputs.movedim(1, -1)
        return outputs

    # -- Keras's bookkeeping -----------------------------------------------------------------------

    @property
    def layers(self) -> list[base.Layer]:
        return [layer for layer, _ in self.nodes]

    def get_layer(self, name: str | None = None, index: int | None = None) -> base.Layer:
        """A layer by name, or by index in :attr:`layers`."""
        layers = self.layers
        if index is not None:
            if not -len(layers) <= index < len(layers):
                raise ModelError(f"no layer at index {index}; the model has {len(layers)}")
            return layers[index]
        for layer in layers:
            if layer.name == name:
                return layer
        raise ModelError(
            f"no layer named {name!r}; the layers are: {', '.join(str(x.name) for x in layers)}"
        )

    def count_params(self) -> int:
        """All weights, trainable or not (BatchNorm's moving statistics included), as Keras."""
        return sum(_weights(layer)[0] for layer in self.layers)

    @property
    def trainable(self) -> bool:
        return all(getattr(layer, "trainable", True) for layer in self.layers)

    @trainable.setter
    def trainable(self, value: bool) -> None:
        for layer in self.layers:
            if hasattr(layer, "trainable"):
                setattr(layer, "trainable", value)  # noqa: B010 (a property of Keras layers)

    @property
    def stop_training(self) -> bool:
        state = self._fit_state
        return state.stop_training if state is not None else self._stop_training

    @stop_training.setter
    def stop_training(self, value: bool) -> None:
        if self._fit_state is not None:
            self._fit_state.stop_training = bool(value)
        self._stop_training = bool(value)

    def __getattr__(self, name: str) -> Any:
        try:
            return super().__getattr__(name)
        except AttributeError:
            if name in _MODEL_NEAREST:
                raise unsupported(f"Model.{name}", _MODEL_NEAREST[name]) from None
            raise

    # -- compile, fit, evaluate, predict ----------------------------------------------------------

    def compile(  # type: ignore[override]
        self,
        optimizer: Any = "rmsprop",
        loss: Any = None,
        loss_weights: Any = None,
        metrics: Sequence[Any] | None = None,
        weighted_metrics: Any = None,
        run_eagerly: bool = False,
        steps_per_execution: int = 1,
        jit_compile: Any = "auto",
        auto_scale_loss: bool = True,
    ) -> None:
        """Choose the optimizer, loss and metrics ``fit`` and ``evaluate`` use."""
        if loss_weights is not None or weighted_metrics is not None:
            raise unsupported("loss_weights / weighted_metrics", "use fit(class_weight=...)")
        if isinstance(loss, dict | list | tuple) or isinstance(metrics, dict):
            raise unsupported("several outputs (a loss or metrics per output)", "use one output")
        if steps_per_execution != 1:
            raise unsupported("steps_per_execution", "drop it")
        self.optimizer = keras_optimizers.get(optimizer)
        self.optimizer.torch = None  # built afresh by the next fit, as Keras's compile does
        self._compiled = Compiled(
            self.optimizer,
            None if loss is None else keras_losses.get(loss),
            [keras_metrics.get(m) for m in metrics or ()],
        )

    def _require(self, what: str) -> tuple[Compiled, keras_losses.Loss]:
        if self._compiled is None:
            raise ConfigError(
                f"the model must be compiled before {what}: "
                "model.compile(optimizer='adam', loss='sparse_categorical_crossentropy', "
                "metrics=['accuracy'])"
            )
        if self._compiled.loss is None:
            raise ConfigError(f"{what} needs a loss: model.compile(..., loss=...)")
        return self._compiled, self._compiled.loss

    def _outputs(self) -> int:
        shape = base.Model.output_shape.fget(self)  # type: ignore[attr-defined]
        if shape is None or len(shape) != 1:
            raise unsupported(
                f"training a model whose output is {self.output_shape}",
                "end the model with Flatten()/GlobalAveragePooling2D() and Dense(num_classes)",
            )
        return int(shape[0])

    def _targets(self, loss: keras_losses.Loss, y: Any, count: int) -> torch.Tensor:
        if y is None:
            raise DataError("fit and evaluate need targets y (labels) next to x")
        labels = loss.targets(
            y.cpu().numpy() if isinstance(y, torch.Tensor) else y, self._outputs()
        )
        if len(labels) != count:
            raise DataError(f"x holds {count} samples but y holds {len(labels)}; they must match")
        return labels

    def _names(self, compiled: Compiled) -> dict[str, str]:
        """User log name -> engine log name, for the train values (val_ names follow)."""
        names = {"loss": "loss"}
        for metric in compiled.metrics:
            names[metric.name] = (
                "accuracy" if isinstance(metric, keras_metrics.Accuracy) else metric.name
            )
        return names

    def fit(
        self,
        x: Any = None,
        y: Any = None,
        batch_size: int | None = None,
        epochs: int = 1,
        verbose: int | str = "auto",
        callbacks: Sequence[Any] | None = None,
        validation_split: float = 0.0,
        validation_data: Any = None,
        shuffle: bool = True,
        class_weight: dict[int, float] | None = None,
        sample_weight: Any = None,
        initial_epoch: int = 0,
        steps_per_epoch: int | None = None,
        validation_steps: int | None = None,
        validation_batch_size: int | None = None,
        validation_freq: int = 1,
    ) -> keras_callbacks.History:
        """Train on arrays ``x`` and targets ``y``; returns a ``History``.

        Trains through cnnkit's engine (:func:`cnnkit.train.loop.fit`) on the data as given.
        """
        compiled, loss = self._require("fit")
        if sample_weight is not None:
            raise unsupported("fit(sample_weight=...)", "use fit(class_weight={class: weight})")
        if steps_per_epoch is not None or validation_steps is not None or validation_freq != 1:
            raise unsupported(
                "steps_per_epoch / validation_steps / validation_freq",
                "fit runs whole epochs over the arrays and validates after each",
            )
        if not 0.0 <= validation_split < 1.0:
            raise ConfigError(f"validation_split must be in [0, 1), got {validation_split}")
        verbose_level = _verbose(verbose)
        class_names = x.class_names if isinstance(x, ImageDataset) else None
        if isinstance(x, ImageDataset):
            if validation_split:
                raise ConfigError(
                    "validation_split works on arrays; for a dataset, make the validation part "
                    "with image_dataset_from_directory(..., validation_split=0.2, "
                    'subset="validation", seed=...) and pass it as validation_data'
                )
            x, y, batch_size, shuffle = _unpack(x, y, batch_size, "fit")
        images = self._inputs(x)
        labels = self._targets(loss, y, len(images))
        val: Arrays | None = None
        if isinstance(validation_data, ImageDataset):
            validation_data = _unpack(validation_data, None, None, "validation_data")[:2]
        if validation_data is not None:
            if not isinstance(validation_data, tuple | list) or len(validation_data) != 2:
                raise unsupported(
                    "validation_data other than (x_val, y_val)", "give a tuple (x_val, y_val)"
                )
            val_images = self._inputs(validation_data[0])
            val = Arrays(val_images, self._targets(loss, validation_data[1], len(val_images)))
        elif validation_split:
            cut = int(len(images) * (1.0 - validation_split))  # Keras: the last part, unshuffled
            if cut == 0 or cut == len(images):
                raise ConfigError(
                    f"validation_split={validation_split} of {len(images)} samples leaves an "
                    "empty training or validation part"
                )
            val = Arrays(images[cut:], labels[cut:])
            images, labels = images[:cut], labels[:cut]
        history = keras_callbacks.History()
        if epochs <= initial_epoch:
            history.set_model(self)
            return history

        names = self._names(compiled)
        schedules = (keras_callbacks.ReduceLROnPlateau, keras_callbacks.LearningRateScheduler)
        show_rate = any(isinstance(c, schedules) for c in callbacks or ())

        def translate(logs: Logs) -> dict[str, float]:
            user = {k: logs[v] for k, v in sorted(names.items()) if v in logs}
            if "val_loss" in logs:
                user.update({f"val_{k}": logs[f"val_{v}"] for k, v in sorted(names.items())})
            if show_rate:
                user["learning_rate"] = logs["lr"]
            return user

        def engine_key(user: str) -> str:
            prefix = "val_" if user.startswith("val_") else ""
            plain = user[len(prefix) :]
            if plain in names and (not prefix or val is not None):
                return prefix + names[plain]
            if user == "learning_rate":
                return "lr"
            known = [*names, *(f"val_{n}" for n in names if val is not None)]
            hint = " (val_* values need validation_data or validation_split)" if prefix else ""
            raise ConfigError(
                f"a callback monitors {user!r}, which fit never logs{hint}; "
                f"it logs: {', '.join(known)}"
            )

        steps = math.ceil(len(images) / (batch_size or 32))
        params = {"verbose": verbose_level, "epochs": epochs, "steps": steps}
        context = keras_callbacks.FitContext(self, translate, engine_key, initial_epoch, params)
        given = list(callbacks or ())
        hooks = [_Attach(self), *keras_callbacks.engine_callbacks([*given, history], context)]
        hooks.append(KerasProgress(verbose_level, epochs, initial_epoch, translate))
        resume = None
        for callback in given:
            if (
                isinstance(callback, keras_callbacks.BackupAndRestore)
                and callback.snapshot.is_file()
            ):
                from cnnkit.train.checkpoint import load_checkpoint

                resume = load_checkpoint(callback.snapshot)
        device = self._placed()
        optimizer = compiled.optimizer
        torch_optimizer = optimizer.torch or optimizer.build(self.parameters())
        extra = {
            m.name: m.hits for m in compiled.metrics if not isinstance(m, keras_metrics.Accuracy)
        }
        from cnnkit.train.loop import fit as engine_fit

        started = time.time()
        try:
            result = engine_fit(
                _Logits(self),
                train=TensorBatches(Arrays(images, labels), device, shuffle=shuffle),
                val=val,
                preprocessing=as_float32,
                optimizer=torch_optimizer,
                loss=loss.engine_fn(self._output_activation, class_weight),
                epochs=epochs - initial_epoch,
                batch_size=batch_size or 32,
                callbacks=hooks,
                device=device,
                precision=resolve_precision(mixed_precision.precision(), device, self).name,
                seed=int(torch.randint(0, 2**31 - 1, ()).item()),
                metrics=extra,
                resume=resume,
                verbose=0,  # the progress is KerasProgress's, in Keras's words
            )
        finally:
            state, self._fit_state = self._fit_state, None
            optimizer.lr_scale_of = None
            if state is not None and state.lr_scale != 1.0:  # keep the rate callbacks left
                optimizer.learning_rate = optimizer.learning_rate * state.lr_scale
        self.history = history
        self.last_fit = FitRecord(
            rows=list(result),
            training=dict(result.training),
            started=started,
            samples=len(images),
            batch_size=batch_size or 32,
            input_range=(str(images.dtype).removeprefix("torch."), *_value_range(images)),
            class_names=class_names,
        )
        return history

    def evaluate(
        self,
        x: Any = None,
        y: Any = None,
        batch_size: int | None = None,
        verbose: int | str = "auto",
        sample_weight: Any = None,
        steps: int | None = None,
        callbacks: Any = None,
        return_dict: bool = False,
    ) -> float | list[float] | dict[str, float]:
        """``[loss, *metrics]`` on ``(x, y)`` (just the loss without metrics), or a dict."""
        compiled, loss = self._require("evaluate")
        if sample_weight is not None or steps is not None:
            raise unsupported("evaluate(sample_weight=/steps=)", "evaluate on the arrays")
        started = time.perf_counter()
        if isinstance(x, ImageDataset):
            x, y, batch_size, _ = _unpack(x, y, batch_size, "evaluate")
        images = self._inputs(x)
        labels = self._targets(loss, y, len(images))
        logits = self._predict_logits(images, batch_size)
        labels = labels.to(logits.device)
        results = {"loss": float(loss.engine_fn(self._output_activation)(logits, labels))}
        count = max(1, len(labels))
        for metric in compiled.metrics:
            results[metric.name] = float(metric.hits(logits, labels)) / count
        ordered = dict(sorted(results.items()))
        report(
            _verbose(verbose),
            math.ceil(len(images) / (batch_size or 32)),
            time.perf_counter() - started,
            ordered,
        )
        if return_dict:
            return ordered
        values = [results["loss"], *(results[m.name] for m in compiled.metrics)]
        return values if len(values) > 1 else values[0]

    def predict(
        self,
        x: Any,
        batch_size: int | None = None,
        verbose: int | str = "auto",
        steps: int | None = None,
        callbacks: Any = None,
    ) -> np.ndarray:
        """The model's outputs for ``x`` as a float32 NumPy array (probabilities after a
        softmax/sigmoid output layer)."""
        started = time.perf_counter()
        if isinstance(x, ImageDataset):
            x, batch_size = x.arrays()[0], batch_size or x.batch_size
        images = self._inputs(x)
        outputs = self._to_user(self._activate(self._predict_logits(images, batch_size)))
        report(
            _verbose(verbose),
            math.ceil(len(images) / (batch_size or 32)),
            time.perf_counter() - started,
            {},
        )
        return outputs.numpy()

    def _placed(self) -> torch.device:
        """Move the model to the device ``auto`` names (a GPU when there is one), as Keras
        places a model: fit, evaluate and predict run there, loaded models too."""
        device = resolve_device("auto")
        self.to(device)
        return device

    def _predict_logits(self, images: torch.Tensor, batch_size: int | None) -> torch.Tensor:
        device = self._placed()
        return predict_logits(
            _Logits(self),
            images,
            preprocessing=as_float32,
            device=device,
            batch_size=max(batch_size or EVAL_BATCH, 1),
            autocast=resolve_precision(mixed_precision.precision(), device, self).dtype,
        )

    # -- summary ---------------------------------------------------------------------------------

    def summary(  # type: ignore[override]
        self,
        line_length: int | None = None,
        positions: Any = None,
        print_fn: Callable[..., Any] | None = None,
        expand_nested: bool = False,
        show_trainable: bool = False,
        layer_range: Any = None,
        details: bool = False,
    ) -> None:
        """Print Keras's table (``details=True``: cnnkit's, with how each count was made,
        receptive fields, mult-adds and activation memory)."""
        if self._input_shape is None:
            raise ModelError(
                f"{self._label()} is not built yet: give the first layer input_shape=..., start "
                "with keras.Input(...), or call fit / build first"
            )
        text = self._details() if details else self._table()
        (print_fn or print)(text)

    def _details(self) -> str:
        from cnnkit.layers.summary import summary

        layout = "nhwc" if self.data_format == "channels_last" else "nchw"
        return str(summary(_Logits(self), self._input_shape, layout=layout))

    def _rows(self) -> list[tuple[base.Layer, tuple[str, ...]]]:
        return self.nodes

    def _table(self) -> str:
        from rich import box
        from rich.console import Console
        from rich.table import Table

        rows = self._rows()
        connected = isinstance(self, Model) and any(len(inputs) > 1 for _, inputs in rows)
        widths: tuple[int, ...] = (19, 17, 10, 17) if connected else (31, 22, 13)
        table = Table(box=box.HEAVY_HEAD, show_lines=True)
        table.add_column("Layer (type)", width=widths[0], no_wrap=False)
        table.add_column("Output Shape", width=widths[1])
        table.add_column("Param #", width=widths[2], justify="right")
        if connected:
            table.add_column("Connected to", width=widths[3])
        total = trainable = 0
        for layer, inputs in rows:
            count, train = _weights(layer)
            total, trainable = total + count, trainable + train
            shape = backend.to_user(layer.output_shape or (), self.data_format)
            cells = [f"{layer.name} ({layer.kind})", str((None, *shape)), f"{count:,}"]
            if connected:
                cells.append(",\n".join(f"{name}[0][0]" for name in inputs) or "-")
            table.add_row(*cells)
        console = Console(width=200, color_system=None, record=True, file=io.StringIO())
        console.print(f'Model: "{self.name}"', highlight=False)
        console.print(table)
        console.print(
            f" Total params: {total:,} ({_size(total)})\n"
            f" Trainable params: {trainable:,} ({_size(trainable)})\n"
            f" Non-trainable params: {total - trainable:,} ({_size(total - trainable)})",
            highlight=False,
        )
        return console.export_text().rstrip("\n")

    # -- saving ----------------------------------------------------------------------------------

    get_config = model_config  # Keras's description: layers, wiring, input, compile settings
    save_run = bridge.save_run

    def save(self, filepath: Any, overwrite: bool = True, **kwargs: Any) -> None:
        """The whole model (layers, weights, compile settings) in one file, any name (e.g.
        ``model.keras``): cnnkit's safe format inside (JSON + safetensors), never pickle;
        :func:`cnnkit.keras.models.load_model` reads it back."""
        saving.save_model(self, filepath, overwrite=overwrite)

    def save_weights(self, filepath: Any, overwrite: bool = True) -> None:
        """The weights alone, as safetensors, under any name (``w.weights.h5`` included)."""
        saving.save_weights(self, filepath, overwrite=overwrite)

    def load_weights(self, filepath: Any, skip_mismatch: bool = False) -> None:
        """Weights written by :meth:`save_weights` or :meth:`save` of the same architecture."""
        if skip_mismatch:
            raise unsupported("load_weights(skip_mismatch=True)", "load into the same architecture")
        saving.load_weights(self, filepath)


def _weights(layer: nn.Module) -> tuple[int, int]:
    """(all weights, trainable ones) of a layer, counted as Keras counts them."""
    state = layer.state_dict()
    total = sum(t.numel() for t in state.values() if t.is_floating_point())
    trainable = sum(p.numel() for p in layer.parameters() if p.requires_grad)
    return total, trainable


def _size(count: int) -> str:
    size = float(count * 4)
    for unit in ("B", "KB", "MB", "GB"):
        if size < 1024 or unit == "GB":
            return f"{size:.2f} {unit}"
        size /= 1024
    return f"{size:.2f} GB"


def _value_range(images: torch.Tensor) -> tuple[float, float]:
    if images.numel() == 0:
        return 0.0, 0.0
    return float(images.amin()), float(images.amax())


def _unpack(
    data: ImageDataset, y: Any, batch_size: int | None, what: str
) -> tuple[torch.Tensor, np.ndarray, int, bool]:
    """A dataset given to ``what`` -> ``(images, labels, batch size, shuffle)``."""
    if y is not None:
        raise ConfigError(f"{what} got a dataset and y: the dataset carries its labels; drop y")
    if data.batch_size is None:
        raise ConfigError(
            f"{what} takes a batched dataset; pass batch_size=32 to image_dataset_from_directory"
        )
    if batch_size is not None and batch_size != data.batch_size:
        raise ConfigError(
            f"{what} got batch_size={batch_size} for a dataset batched by {data.batch_size}; "
            "drop batch_size (the dataset's batches are used)"
        )
    images, labels = data.arrays()
    if labels is None:
        raise DataError(
            f"{what} needs labels, and the dataset has none (labels=None or label_mode=None)"
        )
    return images, labels, data.batch_size, data.shuffle


def _verbose(verbose: int | str) -> int:
    if verbose == "auto":
        return 1
    if verbose not in (0, 1, 2):
        raise ConfigError(f"verbose must be 0, 1, 2 or 'auto', got {verbose!r}")
    return int(verbose)


class Model(KerasModel):
    """``keras.Model(inputs, outputs, name=None)``: the functional API."""

    def __init__(
        self, inputs: Any = None, outputs: Any = None, name: str | None = None, **kwargs: Any
    ) -> None:
        if inputs is None or outputs is None:
            raise unsupported(
                "subclassing keras.Model (a model without inputs and outputs)",
                "build it with keras.Sequential([...]) or keras.Model(inputs, outputs)",
            )
        trainable = kwargs.pop("trainable", True)
        if kwargs:
            raise ConfigError(f"Model got unexpected arguments {sorted(kwargs)}")
        output = outputs[0] if isinstance(outputs, list | tuple) and len(outputs) == 1 else outputs
        activation = _strip(output.layer) if isinstance(output, SymbolicTensor) else None
        base.Model.__init__(self, inputs, outputs, name=name or "functional")
        self._output_activation = activation
        self._source = inputs[0] if isinstance(inputs, list | tuple) else inputs
        self.trainable = trainable

    def _source_layer(self) -> base.InputLayer | None:
        return self._source.layer  # type: ignore[no-any-return]

    @property
    def layers(self) -> list[base.Layer]:
        return [self._source.layer, *super().layers]

    def _rows(self) -> list[tuple[base.Layer, tuple[str, ...]]]:
        return [(self._source.layer, ()), *self.nodes]

    def build(self, input_shape: Any) -> None:
        """Built already (from its Input)."""


class Sequential(KerasModel, base.Sequential):
    """``keras.Sequential([...], name=None)`` or ``Sequential()`` + ``add(layer)``."""

    def __init__(
        self, layers: Sequence[Any] | None = None, trainable: bool = True, name: str | None = None
    ) -> None:
        base.Sequential.__init__(self, (), name=name or "sequential")
        for layer in layers or ():
            self.add(layer)
        if not trainable:
            self.trainable = False

    def _source_layer(self) -> base.InputLayer | None:
        return None if self._source is None else self._source.layer  # type: ignore[return-value]

    def add(self, layer: Any) -> None:
        """Append a layer; a first layer's ``input_shape=`` declares the model's input."""
        if isinstance(layer, base.InputLayer):
            layer = layer.tensor
        shape = getattr(layer, "keras_input_shape", None)
        if shape is not None and self._source is None and not self._chain:
            base.Sequential.add(
                self, InputLayer(shape, data_format=getattr(layer, "data_format", None)).tensor
            )
        base.Sequential.add(self, layer)

    def build(self, input_shape: Any = None) -> None:  # type: ignore[override]
        """Declare the input: ``build((None, 28, 28, 1))`` (the batch axis may be left out)."""
        if input_shape is None:
            return
        shape = tuple(input_shape)
        if shape and shape[0] is None:
            shape = shape[1:]
        if self._source is not None:
            if (None, *shape) != self.input_shape:
                raise ModelError(f"{self._label()} is built for input {self.input_shape}")
            return
        self._source = InputLayer(shape).tensor
        self._refresh()

    def _refresh(self) -> None:
        for layer in self._chain:
            _restore(layer)
        self._output_activation = _strip(self._chain[-1]) if self._chain else None
        base.Sequential._refresh(self)

    def pop(self) -> None:
        """Remove the last layer (only before training; its weights go with it)."""
        if not self._chain:
            raise ModelError("the model has no layers to pop")
        self._chain.pop()
        self._refresh()
