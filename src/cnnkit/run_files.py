"""The names of the files and folders inside a run directory, in one place.

:class:`RunFiles` gives their paths for one run (``Run(path).files``); the names alone are
here for the modules below the run record (the split file, the history writer, the
checkpoint and filter recorders), which write into a folder they are given and import
nothing above them. Nothing else spells a run file's name.
"""

from __future__ import annotations

from pathlib import Path

CARD = "run.json"  # the run card (cnnkit.card)
WEIGHTS = "weights.safetensors"  # the trained weights
HISTORY = "history.json"  # one row per epoch (and HISTORY_CSV, the same as CSV)
HISTORY_CSV = "history.csv"
METRICS = "metrics.json"  # final metrics, one entry per split
SPLIT_FILE = "split.json"  # the exact samples of each split (cnnkit.data.split)
CHECKPOINTS = "checkpoints"  # folder of training snapshots
LAST = "last.pt"  # the snapshot --resume continues from, inside CHECKPOINTS
BEST = "best.pt"  # the snapshot of the best epoch so far, inside CHECKPOINTS
FILTERS_DIR = "filters"  # first-layer filters recorded during training
EXPORT_DIR = "export"  # ONNX and torch.export files (cnnkit.export)
PLOTS_DIR = "plots"  # the report's pictures
REPORT = "report.html"  # the evaluation report
PREDICTIONS = "predictions.csv"  # the test split's predictions (predictions-<split>.csv)


class RunFiles:
    """The paths of one run directory's files (attributes named after the constants above).

    Attributes:
        root: the run directory.
    """

    def __init__(self, root: Path) -> None:
        self.root = root
        self.card = root / CARD
        self.weights = root / WEIGHTS
        self.history = root / HISTORY
        self.history_csv = root / HISTORY_CSV
        self.metrics = root / METRICS
        self.split = root / SPLIT_FILE
        self.checkpoints = root / CHECKPOINTS
        self.last_checkpoint = root / CHECKPOINTS / LAST
        self.filters = root / FILTERS_DIR
        self.export = root / EXPORT_DIR
        self.plots = root / PLOTS_DIR
        self.report = root / REPORT

    def predictions(self, split: str) -> Path:
        """``predictions.csv`` for the test split, ``predictions-<split>.csv`` otherwise."""
        return self.root / predictions_name(split)


def predictions_name(split: str) -> str:
    """``predictions.csv`` for the test split, ``predictions-<split>.csv`` otherwise."""
    return PREDICTIONS if split == "test" else f"predictions-{split}.csv"
