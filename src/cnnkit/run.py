"""The run directory: everything needed to reuse a trained model without the code that made it.

``runs/<name>/`` holds

- ``run.json`` — the run card: resolved config, model record (name, options, input shape,
  class count; the layer spec of models built from layers), data (source, classes, split
  sizes, fingerprints), preprocessing, environment, status and timings;
- ``weights.safetensors`` — the trained weights;
- ``history.csv`` / ``history.json`` — per-epoch logs;
- ``metrics.json`` — final metrics.

All files are written atomically. Everything read back is checked first:
:func:`check_card` is the one reader of ``run.json`` (types, ranges, and the sections
consistent with each other), and :meth:`Run.load_model` checks the weights file against the
model the card describes (names, shapes, dtypes, finite values) before any of it is used.
A bad file is one :class:`~cnnkit.errors.RunError` naming the file and the field.
"""

from __future__ import annotations

import json
import os
import platform
import re
import time
from pathlib import Path
from typing import Any

import torch
from torch import nn

from cnnkit.atomic import write_json, write_path_atomically
from cnnkit.data.dataset import Dataset
from cnnkit.data.preprocess import Preprocessing
from cnnkit.errors import CnnkitError, DataError, RunError
from cnnkit.fields import MAX_CLASSES, FieldChecker

CARD = "run.json"
WEIGHTS = "weights.safetensors"
METRICS = "metrics.json"
HISTORY = "history.json"
SECTIONS = ("config", "model", "data", "preprocessing", "training", "environment", "transfer")


class Run:
    """A run directory on disk."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)

    def __repr__(self) -> str:
        return f"Run({str(self.path)!r})"

    def _repr_html_(self) -> str:
        """In a notebook: the run's name, status, model, data and metrics, as a table."""
        from cnnkit.notebook import html_table

        try:
            card = self.card
            metrics = self.read_json(METRICS) if (self.path / METRICS).is_file() else {}
        except RunError as exc:
            return html_table([("path", str(self.path)), ("problem", str(exc))], caption="Run")
        model, data = card.get("model", {}), card.get("data", {})
        rows = [
            ("path", str(self.path)),
            ("status", card.get("status", "?")),
            ("model", f"{model.get('name', '?')} ({model.get('parameters', 0):,} parameters)"),
            ("data", f"{data.get('source', '?')}, {len(data.get('classes', []))} classes"),
        ]
        rows += [
            (f"{split} accuracy", f"{values['accuracy']:.2%} (loss {values['loss']:.4f})")
            for split, values in metrics.items()
            if isinstance(values, dict) and {"accuracy", "loss"} <= values.keys()
        ]
        return html_table(rows, caption=f"Run {card.get('name', self.path.name)}")

    @classmethod
    def create(cls, root: str | os.PathLike[str], name: str) -> Run:
        """Make a new, empty run directory ``root/name``; an existing one is never reused."""
        path = cls.check_new(root, name)
        try:
            path.mkdir(parents=True, exist_ok=False)
        except FileExistsError:
            raise RunError(f"run directory {path} already exists; choose another --name") from None
        return cls(path)

    @staticmethod
    def check_new(root: str | os.PathLike[str], name: str) -> Path:
        """``root/name``, when it can be a new run's directory: a valid name, not taken.

        Raises:
            RunError: the name holds other characters, or the directory exists.
        """
        if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._-]*", name):
            raise RunError(
                f"run name {name!r} may hold only letters, digits, '.', '_' and '-' "
                "and must start with a letter or digit"
            )
        path = Path(root) / name
        if path.exists():
            raise RunError(f"run directory {path} already exists; choose another --name")
        return path

    @classmethod
    def open(cls, path: str | os.PathLike[str]) -> Run:
        """An existing run directory; fails clearly when ``path`` is not one."""
        run = cls(path)
        if not run.path.is_dir():
            raise RunError(f"{run.path}: no such run directory")
        if not (run.path / CARD).is_file():
            raise RunError(
                f"{run.path}: not a cnnkit run directory (no {CARD}); "
                "pass the folder `cnnkit train` printed at the end"
            )
        return run

    # -- JSON records ----------------------------------------------------------------------

    def read_json(self, name: str) -> Any:
        file = self.path / name
        try:
            return json.loads(file.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise RunError(f"{file}: missing from the run directory") from None
        except (OSError, ValueError) as exc:
            raise RunError(f"{file}: unreadable or not valid JSON ({exc})") from exc

    def write_json(self, name: str, obj: Any) -> None:
        write_json(self.path / name, obj)

    @property
    def card(self) -> dict[str, Any]:
        """The run card (``run.json``), checked by :func:`check_card`.

        Raises:
            RunError: the card is missing, not JSON, or a field has the wrong type or value.
        """
        return check_card(self.read_json(CARD), self.path / CARD)

    def update_card(self, **sections: Any) -> None:
        """Merge ``sections`` into the run card and write it back atomically."""
        card = self.card if (self.path / CARD).is_file() else {}
        card.update(sections)
        self.write_json(CARD, card)

    def _section(self, key: str) -> Any:
        card = self.card
        if key not in card:
            raise RunError(f"{self.path / CARD}: has no {key!r} section")
        return card[key]

    @property
    def classes(self) -> tuple[str, ...]:
        data = self._section("data")
        if "classes" not in data:
            raise RunError(f"{self.path / CARD}: data.classes is missing")
        return tuple(data["classes"])

    @property
    def preprocessing(self) -> Preprocessing:
        return Preprocessing.from_dict(self._section("preprocessing"))

    def load_data(self, split: str = "test", *, data_dir: str | None = None) -> Dataset:
        """The ``split`` this run was trained with, checked against its recorded fingerprint.

        Args:
            split: ``train``, ``val`` or ``test``.
            data_dir: read the source from this folder instead of the one recorded.

        Raises:
            RunError: the split does not exist, or the data found differs from the run's.
            SplitFileError: the run's split file is damaged.
        """
        from cnnkit.data.sources import make_splits, read_source
        from cnnkit.data.split import SplitFileError

        data = self._section("data")
        if "source" not in data:  # e.g. a cnnkit.keras model saved without data=
            raise RunError(
                f"{self.path / CARD}: the run records no data source; pass one with --data"
            )
        config = self.card.get("config", {})
        found = read_source(
            data["source"], data_dir if data_dir is not None else data.get("data_dir")
        )
        split_file = data.get("split_file")  # the exact parts, when the run recorded them
        try:
            splits = make_splits(
                data["source"],
                found,
                val_size=config.get("val_size"),
                test_size=config.get("test_size"),
                seed=int(data.get("split_seed", 0)),
                group_by=config.get("group_by"),
                split_file=self.path / split_file if split_file else None,
            )
        except SplitFileError:  # damaged, not "the data changed"
            raise
        except DataError as exc:  # the samples named by the run's split.json are not all there
            raise RunError(
                f"the data found now differs from the data the run was trained with ({exc})"
            ) from exc
        parts = dict(splits.items())
        if split not in parts:
            raise RunError(f"split {split!r} is not available; choose one of {', '.join(parts)}")
        dataset = parts[split]
        subset = data.get("subsets", {}).get(split)
        if subset:  # a sample (e.g. 100 per class) drawn by cnnkit.data.split.stratified_sample
            from cnnkit.data.split import stratified_sample

            dataset = stratified_sample(dataset, **subset)
        expected = data.get("fingerprints", {}).get(split)
        if expected and dataset.fingerprint() != expected:
            raise RunError(
                f"the {split} data found now differs from the data the run was trained with "
                f"(fingerprint {dataset.fingerprint()[:12]} vs {expected[:12]}); "
                "pass --data-dir pointing at the original files"
            )
        return dataset

    # -- weights ---------------------------------------------------------------------------

    def save_weights(self, model: nn.Module) -> None:
        """Write the model's weights to ``weights.safetensors`` atomically.

        Raises:
            RunError: a weight or buffer is NaN or infinite (such weights are never saved).
        """
        from safetensors.torch import save_model

        check_finite(model.state_dict(), f"the model to save in {self.path / WEIGHTS}")
        write_path_atomically(self.path / WEIGHTS, lambda tmp: save_model(model, tmp))

    def finish(
        self,
        metrics: dict[str, dict[str, float]],
        *,
        history: list[dict[str, Any]],
        started: float,
        **sections: Any,
    ) -> None:
        """Close a training job whose weights are saved: ``metrics.json``, and the card
        marked finished with its training seconds (from ``history``) and total seconds since
        ``started`` (a ``time.time()``), plus any other card ``sections``."""
        self.write_json(METRICS, metrics)
        self.update_card(
            status="finished",
            **sections,
            train_seconds=round(sum(row["time"] for row in history), 2),
            total_seconds=round(time.time() - started, 2),
        )

    def load_model(self, device: torch.device | str = "cpu") -> nn.Module:
        """Rebuild the model from the run card and load its weights, in eval mode.

        The weights file's header (names, shapes, dtypes) is compared with the model the card
        describes, built on the ``meta`` device (no memory), before anything is allocated;
        then every weight and buffer must be finite.

        Raises:
            RunError: the card's model cannot be built, or the weights do not fit it, are
                not float tensors, or hold NaN or infinity.
        """
        weights = self.path / WEIGHTS
        if not weights.is_file():
            raise RunError(f"{weights}: missing; the run did not finish saving its weights")
        header = _weights_header(weights)
        with torch.device("meta"):
            skeleton = self.new_model()
        check_state_shapes(
            header, skeleton.state_dict(), f"{weights}", f"the model {self.path / CARD} describes"
        )
        from safetensors import SafetensorError
        from safetensors.torch import load_file

        try:
            state = load_file(weights, device="cpu")
        except (SafetensorError, OSError) as exc:
            raise RunError(f"{weights}: cannot be read ({exc})") from exc
        check_finite(state, f"{weights}")
        model = self.new_model()
        model.load_state_dict(state, strict=True)
        return model.to(device).eval()

    def new_model(self) -> nn.Module:
        """The model the card's ``model`` record describes, freshly initialised (on the
        default device: ``with torch.device("meta")`` builds it without memory).

        Raises:
            RunError: the record lacks a field or does not describe a buildable model.
        """
        from cnnkit.models.spec import rebuild_model

        record = self._section("model")
        for key in ("name", "input_shape", "num_classes"):
            if key not in record:
                raise RunError(f"{self.path / CARD}: model.{key} is missing")
        try:
            return rebuild_model(record)  # by registry name, or from the stored layer spec
        except (CnnkitError, KeyError, TypeError, ValueError, AttributeError, IndexError) as exc:
            raise RunError(f"{self.path / CARD}: model record cannot be built ({exc})") from exc


def _weights_header(file: Path) -> dict[str, tuple[tuple[int, ...], str]]:
    """``{name: (shape, dtype)}`` of a safetensors file, read from its header alone."""
    from safetensors import SafetensorError, safe_open

    try:
        with safe_open(file, framework="pt") as opened:  # type: ignore[no-untyped-call]
            return {
                key: (tuple(opened.get_slice(key).get_shape()), opened.get_slice(key).get_dtype())
                for key in opened.keys()  # noqa: SIM118 (not a dict)
            }
    except (SafetensorError, OSError, ValueError) as exc:
        raise RunError(f"{file}: not a readable safetensors file ({exc})") from exc


_SAFETENSORS_DTYPES = {
    torch.float32: "F32",
    torch.float16: "F16",
    torch.bfloat16: "BF16",
    torch.float64: "F64",
    torch.int64: "I64",
    torch.int32: "I32",
    torch.uint8: "U8",
    torch.bool: "BOOL",
}


def check_state_shapes(
    found: dict[str, tuple[tuple[int, ...], Any]],
    expected: dict[str, torch.Tensor],
    where: str,
    model: str,
) -> None:
    """``found`` (``{name: (shape, dtype)}``, dtype a torch dtype or a safetensors code)
    holds exactly the tensors of ``expected`` (a state dict), of the same shapes and dtypes.

    Raises:
        RunError: naming ``where`` and the first tensor that differs.
    """
    missing = [k for k in expected if k not in found]
    extra = [k for k in found if k not in expected]
    if missing or extra:
        said = (f"lacks {missing[:3]}" if missing else "") + (
            f"{' and ' if missing else ''}has unexpected {extra[:3]}" if extra else ""
        )
        raise RunError(f"{where}: {said} for {model}; the files do not belong together")
    for key, tensor in expected.items():
        shape, dtype = found[key]
        want = _SAFETENSORS_DTYPES.get(tensor.dtype, str(tensor.dtype))
        if isinstance(dtype, torch.dtype):
            dtype = _SAFETENSORS_DTYPES.get(dtype, str(dtype))
        if tuple(shape) != tuple(tensor.shape):
            raise RunError(
                f"{where}: {key} has shape {list(shape)} but {model} needs "
                f"{list(tensor.shape)}; the files do not belong together"
            )
        if dtype != want:
            raise RunError(
                f"{where}: {key} is {dtype} but {model} takes {want}; "
                "weights are saved by cnnkit as float32"
            )


def check_finite(state: dict[str, Any], where: str) -> None:
    """Every floating tensor of ``state`` is free of NaN and infinity.

    Raises:
        RunError: naming ``where`` and the first tensor with a non-finite value.
    """
    for key, tensor in state.items():
        if tensor.is_floating_point() and not bool(torch.isfinite(tensor).all()):
            raise RunError(
                f"{where}: {key} holds NaN or infinite values; these weights cannot "
                "predict (train again, with a lower --lr)"
            )


# -- the run card ----------------------------------------------------------------------------


def check_card(card: Any, file: str | os.PathLike[str]) -> dict[str, Any]:
    """``card`` (the parsed ``run.json``) if every field present has the type and range it
    must, and the sections agree (class names per class, input shapes); the card itself.

    Sections are optional (a card grows while its run is made), but one that is present
    must be well-formed; a reader then asks for the sections it needs.

    Raises:
        RunError: ``<file>: <field> ...``, for the first field that is wrong.
    """
    check = FieldChecker(str(file), RunError, "the run card was changed or damaged")
    check.mapping(card, "the card")
    for key in ("name", "status", "created", "error"):
        if key in card:
            check.text(card[key], key)
    for key in ("train_seconds", "total_seconds"):
        if key in card:
            check.number(card[key], key, low=0)
    for key in SECTIONS:
        if key in card:
            check.mapping(card[key], key)
    model, data, pre = card.get("model"), card.get("data"), card.get("preprocessing")
    if model is not None:
        check.text(model.get("name", ""), "model.name")
        if "input_shape" in model:
            check.shape(model["input_shape"], "model.input_shape")
        if "num_classes" in model:
            check.integer(model["num_classes"], "model.num_classes", low=1, high=MAX_CLASSES)
        for key in ("options", "spec"):
            if key in model:
                check.mapping(model[key], f"model.{key}")
        if "parameters" in model:
            check.integer(model["parameters"], "model.parameters", low=0)
    if data is not None:
        for key in ("source",):
            if key in data:
                check.text(data[key], f"data.{key}")
        for key in ("data_dir", "split_file"):
            if data.get(key) is not None:
                check.text(data[key], f"data.{key}")
        if data.get("split_file") is not None:
            check.file_name(data["split_file"], "data.split_file")
        if "split_seed" in data:
            check.integer(data["split_seed"], "data.split_seed")
        if "classes" in data:
            classes = data["classes"]
            check.sequence(classes, "data.classes")
            for i, name in enumerate(classes):
                check.text(name, f"data.classes[{i}]")
            count = (model or {}).get("num_classes", len(classes))
            if len(classes) != count:
                check.fail(
                    "data.classes",
                    f"names {len(classes)} classes but model.num_classes is {model['num_classes']}",
                )
        for key in ("sizes", "fingerprints", "origin", "subsets"):
            if key in data:
                check.mapping(data[key], f"data.{key}")
        for split, size in data.get("sizes", {}).items():
            check.integer(size, f"data.sizes.{split}", low=0)
        for split, value in data.get("fingerprints", {}).items():
            check.text(value, f"data.fingerprints.{split}")
        for split, value in data.get("subsets", {}).items():
            check.mapping(value, f"data.subsets.{split}")
            for key, number in value.items():
                check.integer(number, f"data.subsets.{split}.{key}", low=0)
    if pre is not None:
        for key in ("input_shape", "mean", "std"):
            if key not in pre:
                check.fail(f"preprocessing.{key}", "is missing")
        check.shape(pre["input_shape"], "preprocessing.input_shape")
        channels = pre["input_shape"][0]
        for key in ("mean", "std"):
            check.sequence(pre[key], f"preprocessing.{key}")
            if len(pre[key]) != channels:
                check.fail(
                    f"preprocessing.{key}",
                    f"has {len(pre[key])} values for {channels} channel(s)",
                )
            for i, value in enumerate(pre[key]):
                check.number(value, f"preprocessing.{key}[{i}]", low=0 if key == "std" else None)
                if key == "std" and value == 0:
                    check.fail(f"preprocessing.std[{i}]", "is 0; a standard deviation is positive")
        if (
            model is not None
            and "input_shape" in model
            and model["input_shape"] != pre["input_shape"]
        ):
            check.fail(
                "preprocessing.input_shape",
                f"{pre['input_shape']} differs from model.input_shape {model['input_shape']}",
            )
    return card


def describe_environment(device: torch.device) -> dict[str, Any]:
    """Versions and hardware, recorded on the run card."""
    import numpy

    from cnnkit import __version__

    info: dict[str, Any] = {
        "cnnkit": __version__,
        "torch": torch.__version__,
        "numpy": numpy.__version__,
        "python": platform.python_version(),
        "platform": platform.platform(),
        "processor": _cpu_name(),
        "cpu_threads": torch.get_num_threads(),
        "device": str(device),
    }
    if device.type == "cuda":
        info["gpu"] = torch.cuda.get_device_name(device)
    return info


def _cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def default_run_name(model: str, data: str) -> str:
    """``<model>-<data>-<YYYYmmdd-HHMMSS>`` with characters a run name allows."""
    stamp = time.strftime("%Y%m%d-%H%M%S")
    data = data.rstrip("/")  # a folder given as photos/
    return re.sub(r"[^A-Za-z0-9._-]+", "_", f"{model}-{data}-{stamp}")
