"""The run directory: everything needed to reuse a trained model without the code that made it.

``runs/<name>/`` holds the files :mod:`cnnkit.run_files` names (``Run(path).files``):

- ``run.json`` — the run card (:class:`~cnnkit.card.RunCard`): config, model record, data
  (source, classes, split, fingerprints), the input contract, environment, status, timings;
- ``weights.safetensors`` — the trained weights;
- ``split.json`` — the exact samples of each split;
- ``history.csv`` / ``history.json`` — per-epoch logs; ``checkpoints/last.pt`` — the
  snapshot ``--resume`` continues from;
- ``metrics.json`` — final metrics; ``filters/``, ``plots/``, ``report.html``, ``export/``
  — what the recorders, the report and the exporter write.

All files are written atomically. Everything read back is checked first: the card by
:meth:`RunCard.from_dict <cnnkit.card.RunCard.from_dict>` (types, ranges, sections
consistent, older formats migrated), the data against the card's fingerprints
(:meth:`Run.check_data`), and the weights by :meth:`Run.load_model` against the model the
card describes (names, shapes, dtypes, finite values) before any of it is used. A bad file
is one :class:`~cnnkit.errors.RunError` naming the file and the field.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import re
import time
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from torch import nn

from cnnkit.atomic import write_json, write_path_atomically
from cnnkit.card import DataRecord, RunCard, SplitSettings
from cnnkit.data.dataset import Dataset, Splits
from cnnkit.data.preprocess import Preprocessing
from cnnkit.errors import CnnkitError, DataError, RunError
from cnnkit.fields import read_json
from cnnkit.run_files import CARD, RunFiles

if TYPE_CHECKING:
    from cnnkit.transfer.sample import Sample


class Run:
    """A run directory on disk.

    Attributes:
        path: the directory.
        files: the paths of its files.
    """

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        self.files = RunFiles(self.path)

    def __repr__(self) -> str:
        return f"Run({str(self.path)!r})"

    def _repr_html_(self) -> str:
        """In a notebook: the run's name, status, model, data and metrics, as a table."""
        from cnnkit.notebook import html_table

        try:
            card = self.card
            metrics = self.read_json(self.files.metrics) if self.files.metrics.is_file() else {}
        except RunError as exc:
            return html_table([("path", str(self.path)), ("problem", str(exc))], caption="Run")
        rows = [
            ("path", str(self.path)),
            ("status", card.status),
            ("model", f"{card.model.name} ({card.model.parameters or 0:,} parameters)"),
            ("data", f"{card.data.source}, {len(card.classes)} classes"),
        ]
        rows += [
            (f"{split} accuracy", f"{values['accuracy']:.2%} (loss {values['loss']:.4f})")
            for split, values in metrics.items()
            if isinstance(values, dict) and {"accuracy", "loss"} <= values.keys()
        ]
        return html_table(rows, caption=f"Run {card.name}")

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
        if not run.files.card.is_file():
            raise RunError(
                f"{run.path}: not a cnnkit run directory (no {CARD}); "
                "pass the folder `cnnkit train` printed at the end"
            )
        return run

    # -- JSON records ----------------------------------------------------------------------

    def read_json(self, file: str | os.PathLike[str]) -> Any:
        """A JSON file of the run (a name inside it, or one of :attr:`files`)."""
        file = self._inside(file)
        missing = RunError(f"{file}: missing from the run directory")
        return read_json(file, missing, RunError, "unreadable or not valid JSON")

    def write_json(self, file: str | os.PathLike[str], obj: Any) -> None:
        write_json(self._inside(file), obj)

    def _inside(self, file: str | os.PathLike[str]) -> Path:
        """``file`` as a path: a bare name is inside the run; a path (one of :attr:`files`,
        which already start with the run's own path, relative or not) is taken as it is."""
        file = Path(file)
        return self.path / file if file.parent == Path() else file

    @property
    def card(self) -> RunCard:
        """The run card (``run.json``), migrated to the current format and checked.

        Raises:
            RunError: the card is missing, not JSON, of a newer format, or a field has the
                wrong type or value.
        """
        return RunCard.from_dict(self.read_json(self.files.card), self.files.card)

    def write_card(self, card: RunCard) -> None:
        """Write ``card`` as ``run.json`` (in the current format), atomically."""
        self.write_json(self.files.card, card.to_dict())

    def update_card(self, **changes: Any) -> RunCard:
        """Change fields of the run card (``status="failed", error=...``) and write it back."""
        card = dataclasses.replace(self.card, **changes)
        self.write_card(card)
        return card

    def record_data(
        self,
        data: str,
        data_dir: str | None,
        splits: Splits,
        split: SplitSettings,
        *,
        from_split_file: str | None = None,
        sample: tuple[Sample, Splits] | None = None,
    ) -> DataRecord:
        """Write the run's split file (every sample of ``splits``, so evaluation and later
        runs read the same ones) and return the card's data record.

        Args:
            data: the data source, as the user named it.
            data_dir: the folder its files were read from, if not the default.
            splits: the parts made (by ``split``, or as ``from_split_file`` names them).
            split: how they were made.
            sample: how samples were drawn from ``splits`` and the parts drawn, when the
                run trained on those (fine-tuning on N per class): the record's sizes and
                fingerprints are then the sample's, and it says how to draw it again.
        """
        from cnnkit.data.sources import canonical_source, data_root
        from cnnkit.data.split import split_record, write_split_file

        source = canonical_source(data)
        write_split_file(
            self.files.split,
            split_record(
                splits,
                source=source,
                root=data_root(data, data_dir),
                **split.to_dict(),
                from_split_file=from_split_file,
            ),
        )
        drawn, how = (splits, None) if sample is None else (sample[1], sample[0])
        return DataRecord.of_splits(
            source,
            data_dir,
            drawn,
            split,
            subsets=how.records() if how is not None else None,
            sample=how.describe() if how is not None else None,
        )

    @property
    def classes(self) -> tuple[str, ...]:
        return self.card.classes

    @property
    def preprocessing(self) -> Preprocessing:
        """The run's input contract: channels, size, resize rule, mean and std."""
        return self.card.preprocessing

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

        data = self.card.data
        if not data.source:  # e.g. a cnnkit.keras model saved without data=
            raise RunError(
                f"{self.files.card}: the run records no data source; pass one with --data"
            )
        found = read_source(data.source, data_dir if data_dir is not None else data.data_dir)
        with self.data_changes():
            splits = make_splits(
                data.source,
                found,
                **data.split.to_dict(),
                # the exact parts, when the run recorded them
                split_file=self.path / data.split_file if data.split_file else None,
            )
        parts = dict(splits.items())
        if split not in parts:
            raise RunError(f"split {split!r} is not available; choose one of {', '.join(parts)}")
        dataset = parts[split]
        subset = data.subsets.get(split)
        if subset:  # a sample (e.g. 100 per class) drawn by cnnkit.data.split.stratified_sample
            from cnnkit.data.split import stratified_sample

            dataset = stratified_sample(dataset, **subset)
        self.check_data([(split, dataset)])
        return dataset

    @contextlib.contextmanager
    def data_changes(self) -> Iterator[None]:
        """A context in which a :class:`DataError` reading the run's samples (other than a
        damaged split file) becomes "the data found now differs from the run's"."""
        from cnnkit.data.split import SplitFileError

        try:
            yield
        except SplitFileError:  # damaged, not "the data changed"
            raise
        except DataError as exc:  # the samples named by the run's split.json are not all there
            raise RunError(
                f"the data found now differs from the data the run was trained with "
                f"({self.path}: {exc})"
            ) from exc

    def check_data(self, parts: Iterable[tuple[str, Dataset]]) -> None:
        """Each ``(split, dataset)`` is the data the run was trained with, by fingerprint.

        Raises:
            RunError: a split's fingerprint differs from the one on the card.
        """
        recorded = self.card.data.fingerprints
        for split, dataset in parts:
            expected = recorded.get(split)
            if expected and (found := dataset.fingerprint()) != expected:
                raise RunError(
                    f"the {split} data found now differs from the data the run was trained "
                    f"with ({self.path}: fingerprint {found[:12]} vs {expected[:12]}); "
                    "pass --data-dir pointing at the original files"
                )

    # -- weights ---------------------------------------------------------------------------

    def save_weights(self, model: nn.Module) -> None:
        """Write the model's weights to ``weights.safetensors`` atomically.

        Raises:
            RunError: a weight or buffer is NaN or infinite (such weights are never saved).
        """
        from safetensors.torch import save_model

        weights = self.files.weights
        check_finite(model.state_dict(), f"the model to save in {weights}")
        write_path_atomically(weights, lambda tmp: save_model(model, tmp))

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
        ``started`` (a ``time.time()``), plus any other card fields ``sections``."""
        self.write_json(self.files.metrics, metrics)
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
        weights = self.files.weights
        if not weights.is_file():
            raise RunError(f"{weights}: missing; the run did not finish saving its weights")
        header = _weights_header(weights)
        with torch.device("meta"):
            skeleton = self.new_model()
        check_state_shapes(
            header, skeleton.state_dict(), f"{weights}", f"the model {self.files.card} describes"
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
        from cnnkit.models.resolve import rebuild_model

        record = self.card.model.to_dict()
        try:
            return rebuild_model(record)  # by registry name, or from the stored layer spec
        except (CnnkitError, KeyError, TypeError, ValueError, AttributeError, IndexError) as exc:
            raise RunError(f"{self.files.card}: model record cannot be built ({exc})") from exc


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


def default_run_name(model: str, data: str) -> str:
    """``<model>-<data>-<YYYYmmdd-HHMMSS>`` with characters a run name allows."""
    stamp = time.strftime("%Y%m%d-%H%M%S")
    data = data.rstrip("/")  # a folder given as photos/
    return re.sub(r"[^A-Za-z0-9._-]+", "_", f"{model}-{data}-{stamp}")
