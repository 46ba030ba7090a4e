"""cnnkit: convolutional neural networks for image classification, on PyTorch.

Importing cnnkit only imports: no downloads, no device probing, no global flags.
The public API is re-exported lazily so ``import cnnkit`` stays cheap.
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

# name -> module that defines it; resolved on first attribute access.
_PUBLIC = {
    "CnnkitError": "cnnkit.errors",
    "Dataset": "cnnkit.data.dataset",
    "Splits": "cnnkit.data.dataset",
    "load_dataset": "cnnkit.data.sources",
    "read_idx": "cnnkit.data.idx",
    "load_image": "cnnkit.data.images",
    "build_model": "cnnkit.models.registry",
    "list_models": "cnnkit.models.registry",
    "register_model": "cnnkit.models.registry",
    "summary": "cnnkit.layers.summary",
    "fit": "cnnkit.train.loop",
    "Callback": "cnnkit.train.callbacks",
    "Run": "cnnkit.run",
    "evaluate_run": "cnnkit.evaluate.evaluation",
    "evaluate_split": "cnnkit.evaluate.evaluation",
    "write_report": "cnnkit.evaluate.report",
    "TrainConfig": "cnnkit.train.job",
    "run_training": "cnnkit.train.job",
    "Preprocessing": "cnnkit.data.preprocess",
    "Predictor": "cnnkit.predict",
    "export_run": "cnnkit.export",
    "load_backbone": "cnnkit.transfer.backbones",
}

__all__ = ["__version__", *_PUBLIC]


def __getattr__(name: str) -> Any:
    module = _PUBLIC.get(name)
    if module is None:
        raise AttributeError(f"module 'cnnkit' has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)
