"""cnnkit: convolutional neural networks for image classification, on PyTorch.

Importing cnnkit only imports: no downloads, no device probing, no global flags. The public
API below is resolved on first use, so ``import cnnkit`` stays cheap; type checkers read the
same names from the ``TYPE_CHECKING`` imports, with their real types.

How the package is layered (lowest first; a module imports only its own layer or lower ones,
never up, and no two modules import each other — ``tests/test_layering.py`` checks both)::

    errors, atomic, fields, options      the error tree, atomic writes, record checking
    devices, notebook, figure, ops       small leaves: device choice, display, reference math
    data/                                sources, folders, the Dataset, splits, preprocessing
    layers/                              the Keras-vocabulary layers, their spec format, summary
    models/                              registry, zoo, probes, forward passes, model records
    augment/                             batched transforms, pipelines, offline augmentation
    run                                  the run folder
    train/                               the loop, callbacks, the training job
    evaluate/                            metrics, plots, interpretation, the report
    transfer/, predict                   backbones and fine-tuning; predicting from a run
    export, serve/                       ONNX / torch.export; the web demo
    cli/                                 the command line (the only module that parses args)
    keras/                               the Keras-3-shaped front door, on top of all of it
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

if TYPE_CHECKING:
    from cnnkit import augment as augment
    from cnnkit import keras as keras
    from cnnkit import layers as layers
    from cnnkit.augment.pipeline import Pipeline as Pipeline
    from cnnkit.augment.spec import parse_augment as parse_augment
    from cnnkit.data.dataset import Dataset as Dataset
    from cnnkit.data.dataset import Splits as Splits
    from cnnkit.data.idx import read_idx as read_idx
    from cnnkit.data.images import load_image as load_image
    from cnnkit.data.preprocess import Preprocessing as Preprocessing
    from cnnkit.data.sources import load_dataset as load_dataset
    from cnnkit.errors import CnnkitError as CnnkitError
    from cnnkit.evaluate.evaluation import evaluate_run as evaluate_run
    from cnnkit.evaluate.evaluation import evaluate_split as evaluate_split
    from cnnkit.evaluate.report import write_report as write_report
    from cnnkit.export import export_run as export_run
    from cnnkit.layers.summary import summary as summary
    from cnnkit.models.registry import build_model as build_model
    from cnnkit.models.registry import list_models as list_models
    from cnnkit.models.registry import register_model as register_model
    from cnnkit.predict import Predictor as Predictor
    from cnnkit.run import Run as Run
    from cnnkit.train.callbacks import Callback as Callback
    from cnnkit.train.callbacks import EarlyStopping as EarlyStopping
    from cnnkit.train.callbacks import HistoryWriter as HistoryWriter
    from cnnkit.train.callbacks import ModelCheckpoint as ModelCheckpoint
    from cnnkit.train.callbacks import NanGuard as NanGuard
    from cnnkit.train.callbacks import ProgressBar as ProgressBar
    from cnnkit.train.callbacks import ReduceLROnPlateau as ReduceLROnPlateau
    from cnnkit.train.callbacks import TrainState as TrainState
    from cnnkit.train.config import TrainConfig as TrainConfig
    from cnnkit.train.job import run_training as run_training
    from cnnkit.train.loop import History as History
    from cnnkit.train.loop import fit as fit
    from cnnkit.transfer.backbones import Backbone as Backbone
    from cnnkit.transfer.backbones import load_backbone as load_backbone
    from cnnkit.transfer.features import cached_embed as cached_embed
    from cnnkit.transfer.features import embed as embed
    from cnnkit.transfer.finetune import FinetuneConfig as FinetuneConfig
    from cnnkit.transfer.finetune import finetune as finetune
    from cnnkit.transfer.finetune import freeze as freeze
    from cnnkit.transfer.finetune import parse_freeze as parse_freeze
    from cnnkit.transfer.finetune import unfreeze as unfreeze
    from cnnkit.transfer.heads import fit_head as fit_head
    from cnnkit.transfer.heads import score_head as score_head
    from cnnkit.transfer.sample import Sample as Sample
    from cnnkit.transfer.sample import load_sample as load_sample

# name -> module that defines it (the same pairs as the TYPE_CHECKING imports above, which
# tests/test_public_api.py holds equal); a name equal to its module is a subpackage.
_PUBLIC = {
    "augment": "cnnkit.augment",
    "keras": "cnnkit.keras",
    "layers": "cnnkit.layers",
    "Pipeline": "cnnkit.augment.pipeline",
    "parse_augment": "cnnkit.augment.spec",
    "Dataset": "cnnkit.data.dataset",
    "Splits": "cnnkit.data.dataset",
    "read_idx": "cnnkit.data.idx",
    "load_image": "cnnkit.data.images",
    "Preprocessing": "cnnkit.data.preprocess",
    "load_dataset": "cnnkit.data.sources",
    "CnnkitError": "cnnkit.errors",
    "evaluate_run": "cnnkit.evaluate.evaluation",
    "evaluate_split": "cnnkit.evaluate.evaluation",
    "write_report": "cnnkit.evaluate.report",
    "export_run": "cnnkit.export",
    "summary": "cnnkit.layers.summary",
    "build_model": "cnnkit.models.registry",
    "list_models": "cnnkit.models.registry",
    "register_model": "cnnkit.models.registry",
    "Predictor": "cnnkit.predict",
    "Run": "cnnkit.run",
    "Callback": "cnnkit.train.callbacks",
    "EarlyStopping": "cnnkit.train.callbacks",
    "HistoryWriter": "cnnkit.train.callbacks",
    "ModelCheckpoint": "cnnkit.train.callbacks",
    "NanGuard": "cnnkit.train.callbacks",
    "ProgressBar": "cnnkit.train.callbacks",
    "ReduceLROnPlateau": "cnnkit.train.callbacks",
    "TrainState": "cnnkit.train.callbacks",
    "TrainConfig": "cnnkit.train.config",
    "run_training": "cnnkit.train.job",
    "History": "cnnkit.train.loop",
    "fit": "cnnkit.train.loop",
    "Backbone": "cnnkit.transfer.backbones",
    "load_backbone": "cnnkit.transfer.backbones",
    "cached_embed": "cnnkit.transfer.features",
    "embed": "cnnkit.transfer.features",
    "FinetuneConfig": "cnnkit.transfer.finetune",
    "finetune": "cnnkit.transfer.finetune",
    "freeze": "cnnkit.transfer.finetune",
    "parse_freeze": "cnnkit.transfer.finetune",
    "unfreeze": "cnnkit.transfer.finetune",
    "fit_head": "cnnkit.transfer.heads",
    "score_head": "cnnkit.transfer.heads",
    "Sample": "cnnkit.transfer.sample",
    "load_sample": "cnnkit.transfer.sample",
}

__all__ = ["__version__", *_PUBLIC]


def __getattr__(name: str) -> Any:
    module = _PUBLIC.get(name)
    if module is None:
        raise AttributeError(f"module 'cnnkit' has no attribute {name!r}")
    if module == f"cnnkit.{name}":
        return importlib.import_module(module)
    return getattr(importlib.import_module(module), name)


def __dir__() -> list[str]:
    return sorted(__all__)
