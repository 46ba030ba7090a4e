"""The run directory: everything needed to reuse a trained model without the code that made it.

``runs/<name>/`` holds

- ``run.json`` — the run card: resolved config, model record (name, options, input shape,
  class count; the layer spec of models built from layers), data (source, classes, split
  sizes, fingerprints), preprocessing, environment, status and timings;
- ``weights.safetensors`` — the trained weights;
- ``history.csv`` / ``history.json`` — per-epoch logs;
- ``metrics.json`` — final metrics.

All files are written atomically.
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
from cnnkit.errors import DataError, RunError

CARD = "run.json"
WEIGHTS = "weights.safetensors"
METRICS = "metrics.json"
HISTORY = "history.json"


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
        """The run card (``run.json``)."""
        card = self.read_json(CARD)
        if not isinstance(card, dict):
            raise RunError(f"{self.path / CARD}: expected a JSON object")
        return card

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
        return tuple(self._section("data")["classes"])

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
        """
        from cnnkit.data.sources import make_splits, read_source

        data = self._section("data")
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
        """Write the model's weights to ``weights.safetensors`` atomically."""
        from safetensors.torch import save_model

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
        """Rebuild the model from the run card and load its weights (strictly), in eval mode."""
        from safetensors import SafetensorError
        from safetensors.torch import load_model

        from cnnkit.models.spec import rebuild_model

        record = self._section("model")
        try:
            model = rebuild_model(record)  # by registry name, or from the stored layer spec
        except KeyError as exc:
            raise RunError(f"{self.path / CARD}: model record lacks {exc}") from exc
        weights = self.path / WEIGHTS
        if not weights.is_file():
            raise RunError(f"{weights}: missing; the run did not finish saving its weights")
        try:
            load_model(model, weights, strict=True, device=str(device))
        except (SafetensorError, RuntimeError, OSError) as exc:
            raise RunError(f"{weights}: cannot load into {record['name']} ({exc})") from exc
        return model.to(device).eval()


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
