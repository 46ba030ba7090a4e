"""Backbones: pretrained networks behind one interface, with the preprocessing they expect.

A :class:`Backbone` is a :class:`~cnnkit.layers.classifier.Classifier` (features out, head
swappable) together with what its weights were trained on: input shape, per-channel mean and
std, colour order and the names of its outputs. Where it comes from is given by a spec string:

- ``efficientnet_lite0`` — ImageNet-pretrained EfficientNet-Lite0, offline
  (:mod:`cnnkit.transfer.efficientnet_lite`);
- ``run:PATH`` — the model of any cnnkit run directory (e.g. trained on CIFAR-10), with the
  normalisation recorded in that run;
- ``torchvision:NAME`` / ``timm:NAME`` — those libraries' pretrained models, only when the
  library is installed (it is imported only then).

:meth:`Backbone.adapter_for` and :meth:`Backbone.classifier_for` put the backbone behind an
:class:`~cnnkit.models.adapter.InputAdapter` for a dataset's image shape: grey images are
replicated to 3 channels, every image is resized to the backbone's size (by the size rule of
:mod:`cnnkit.data.images`, ``pad`` by default), normalised its way.
"""

from __future__ import annotations

import copy
import hashlib
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from cnnkit.data.images import DEFAULT_FIT
from cnnkit.data.preprocess import Preprocessing
from cnnkit.errors import ModelError, RunError, did_you_mean
from cnnkit.layers.classifier import Classifier
from cnnkit.models.adapter import AdaptedClassifier, InputAdapter

log = logging.getLogger(__name__)

RUN_PREFIX = "run:"
EXTERNAL_PREFIXES = ("torchvision:", "timm:")


@dataclass
class Backbone:
    """A pretrained network and the input it expects.

    Attributes:
        name: the spec it was loaded from (``efficientnet_lite0``, ``run:runs/x``, ...).
        network: the network; ``network(x)`` maps normalised ``(N, *input_shape)`` floats to
            ``(N, len(classes))`` logits, ``network.forward_features(x)`` to
            ``(N, network.num_features)``.
        input_shape: ``(C, H, W)`` the weights were trained at.
        mean: per-channel mean subtracted from 0..1 pixels.
        std: per-channel std the result is divided by.
        color_order: ``RGB`` or ``grey``: what the channels mean.
        classes: names of the network's outputs (the 1000 ImageNet classes for ImageNet).
        record: how to rebuild the network without its weights: a registry ``name``,
            ``options`` and ``input_shape``; ``None`` when cnnkit's registry cannot
            (torchvision, timm), so fine-tuned copies cannot be saved as run directories.
    """

    name: str
    network: Classifier
    input_shape: tuple[int, int, int]
    mean: tuple[float, ...]
    std: tuple[float, ...]
    color_order: str
    classes: tuple[str, ...]
    record: dict[str, Any] | None = None
    _digest: str | None = field(default=None, init=False, repr=False)

    @property
    def num_features(self) -> int:
        """Width of the embeddings (the head's input)."""
        return self.network.num_features

    def digest(self) -> str:
        """SHA-256 over the weights and the expected input: changes when either changes."""
        if self._digest is None:
            hasher = hashlib.sha256()
            hasher.update(repr((self.input_shape, self.mean, self.std)).encode())
            for key, tensor in sorted(self.network.state_dict().items()):
                hasher.update(key.encode())
                hasher.update(tensor.detach().cpu().reshape(-1).view(torch.uint8).numpy().data)
            self._digest = hasher.hexdigest()
        return self._digest

    def adapter_for(
        self,
        image_shape: Sequence[int],
        *,
        input_size: int | None = None,
        fit: str = DEFAULT_FIT,
    ) -> InputAdapter:
        """The adapter taking 0..1 images of ``image_shape`` to this backbone's input.

        Args:
            image_shape: ``(C, H, W)`` of the dataset's images.
            input_size: square side to resize to instead of the backbone's own (e.g. 128
                for speed on a CPU; convolutional backbones accept it).
            fit: ``pad``, ``crop`` or ``stretch`` for images of another aspect ratio
                (:func:`~cnnkit.models.adapter.resize_images`).
        """
        channels, height, width = self.input_shape
        if input_size is not None:
            if input_size < 8:
                raise ModelError(f"input size must be at least 8 pixels, got {input_size}")
            height = width = input_size
        return InputAdapter(image_shape[0], (channels, height, width), self.mean, self.std, fit)

    def classifier_for(
        self,
        image_shape: Sequence[int],
        num_classes: int,
        *,
        input_size: int | None = None,
        fit: str = DEFAULT_FIT,
    ) -> AdaptedClassifier:
        """A trainable copy: adapter + this network with a fresh ``num_classes`` head."""
        network = copy.deepcopy(self.network)
        network.reset_classifier(num_classes)
        adapter = self.adapter_for(image_shape, input_size=input_size, fit=fit)
        return AdaptedClassifier(adapter, network)

    def model_record(
        self,
        image_shape: Sequence[int],
        num_classes: int,
        *,
        input_size: int | None = None,
        fit: str = DEFAULT_FIT,
    ) -> dict[str, Any]:
        """The run card's ``model`` record of :meth:`classifier_for`'s result.

        Raises:
            ModelError: the backbone cannot be rebuilt by cnnkit (torchvision, timm).
        """
        if self.record is None:
            raise ModelError(
                f"backbone {self.name!r} cannot be rebuilt from a run card, so a fine-tuned "
                "copy cannot be saved as a run directory; use it for features "
                "(`cnnkit transfer`) or fine-tune efficientnet_lite0 or a run:PATH backbone"
            )
        adapter = self.adapter_for(image_shape, input_size=input_size, fit=fit)
        return {
            "name": "adapted",
            "options": {
                "backbone": self.record["name"],
                "backbone_options": self.record.get("options", {}),
                "backbone_input_shape": list(adapter.input_shape),
                "mean": list(self.mean),
                "std": list(self.std),
                "fit": fit,
            },
            "input_shape": list(image_shape),
            "num_classes": num_classes,
        }

    @torch.no_grad()
    def top_k(self, images: torch.Tensor, k: int = 5) -> list[list[tuple[str, float]]]:
        """The ``k`` most likely classes of each image, with probabilities, best first.

        Args:
            images: uint8 ``(N, C, H, W)`` of any size and 1 or 3 channels (adapted here).
            k: how many classes per image.
        """
        if images.dtype != torch.uint8 or images.ndim != 4:
            raise ModelError(
                f"top_k needs uint8 images (N, C, H, W), got {images.dtype} {tuple(images.shape)}"
            )
        adapter = self.adapter_for(tuple(images.shape[1:]))
        was_training = self.network.training
        self.network.eval()
        try:
            probabilities = self.network(adapter(images.float() / 255)).softmax(1)
        finally:
            self.network.train(was_training)
        best = probabilities.topk(min(k, probabilities.shape[1]), dim=1)
        return [
            [(self.classes[i], float(p)) for p, i in zip(values, indices, strict=True)]
            for values, indices in zip(best.values.tolist(), best.indices.tolist(), strict=True)
        ]

    @staticmethod
    def preprocessing_for(image_shape: Sequence[int], *, fit: str = DEFAULT_FIT) -> Preprocessing:
        """What goes before an adapted model: pixels scaled to 0..1, nothing else; pictures
        of another size brought to ``image_shape`` by ``fit``.

        The backbone's own normalisation is inside the adapter, so normalising with the
        dataset's statistics here would be applied twice (the classic transfer trap).
        """
        channels = int(image_shape[0])
        shape = (channels, int(image_shape[1]), int(image_shape[2]))
        return Preprocessing(
            input_shape=shape, mean=(0.0,) * channels, std=(1.0,) * channels, fit=fit
        )


# -- sources ------------------------------------------------------------------------------


def _efficientnet_lite0() -> Backbone:
    from cnnkit.transfer import efficientnet_lite as lite
    from cnnkit.transfer.imagenet import imagenet_classes

    return Backbone(
        name="efficientnet_lite0",
        network=lite.pretrained_efficientnet_lite0(),
        input_shape=lite.INPUT_SHAPE,
        mean=lite.MEAN,
        std=lite.STD,
        color_order="RGB",
        classes=imagenet_classes(),
        record={"name": "efficientnet_lite0", "options": {}},
    )


PRETRAINED: dict[str, Callable[[], Backbone]] = {"efficientnet_lite0": _efficientnet_lite0}


def _from_run(path: str) -> Backbone:
    from cnnkit.run import Run

    run = Run.open(path)
    card = run.card
    record = card.model
    network = run.load_model("cpu")
    if not isinstance(network, Classifier):
        raise RunError(
            f"{run.path}: model {record.name!r} has no swappable head (not a cnnkit "
            "Classifier), so it cannot serve as a backbone"
        )
    pre = card.preprocessing
    channels = pre.channels
    return Backbone(
        name=f"{RUN_PREFIX}{path}",
        network=network,
        input_shape=pre.input_shape,
        mean=pre.mean,
        std=pre.std,
        color_order="grey" if channels == 1 else "RGB",
        classes=card.classes,
        record={"name": record.name, "options": record.options},
    )


def _import_optional(module: str, spec: str) -> Any:
    import importlib

    try:
        return importlib.import_module(module)
    except Exception as exc:  # torchvision raises more than ImportError when its build mismatches
        raise ModelError(
            f"backbone {spec!r} needs the {module} package, which cannot be imported here "
            f"({type(exc).__name__}: {exc}); install it, or use efficientnet_lite0 or run:PATH"
        ) from None


def _split_head(model: nn.Module, spec: str) -> Classifier:
    """``model`` with its last ``nn.Linear`` cut off, as a Classifier(features, head)."""
    last = None
    for name, module in model.named_modules():
        if isinstance(module, nn.Linear):
            last = (name, module)
    if last is None:
        raise ModelError(f"backbone {spec!r} has no final nn.Linear classifier to swap")
    name, head = last
    parent = model.get_submodule(name.rpartition(".")[0]) if "." in name else model
    setattr(parent, name.rpartition(".")[2], nn.Identity())
    return Classifier(model, head)


def _from_torchvision(model_name: str, spec: str) -> Backbone:
    tv = _import_optional("torchvision", spec)
    try:
        weights = tv.models.get_model_weights(model_name).DEFAULT
        model = tv.models.get_model(model_name, weights=weights)
    except Exception as exc:  # unknown name, or weights not downloadable offline
        raise ModelError(f"torchvision cannot provide {model_name!r}: {exc}") from exc
    transforms = weights.transforms()
    size = int(getattr(transforms, "crop_size", [224])[0])
    return Backbone(
        name=spec,
        network=_split_head(model, spec).eval(),
        input_shape=(3, size, size),
        mean=tuple(float(v) for v in transforms.mean),
        std=tuple(float(v) for v in transforms.std),
        color_order="RGB",
        classes=tuple(weights.meta["categories"]),
    )


def _from_timm(model_name: str, spec: str) -> Backbone:
    timm = _import_optional("timm", spec)
    try:
        model = timm.create_model(model_name, pretrained=True)
    except Exception as exc:  # unknown name, or weights not downloadable offline
        raise ModelError(f"timm cannot provide {model_name!r}: {exc}") from exc
    config = model.pretrained_cfg
    _, height, width = config.get("input_size", (3, 224, 224))
    num_outputs = int(getattr(model, "num_classes", 1000))
    if num_outputs == 1000:
        from cnnkit.transfer.imagenet import imagenet_classes

        classes = imagenet_classes()
    else:
        classes = tuple(f"class_{i}" for i in range(num_outputs))
    return Backbone(
        name=spec,
        network=_split_head(model, spec).eval(),
        input_shape=(3, int(height), int(width)),
        mean=tuple(float(v) for v in config.get("mean", (0.485, 0.456, 0.406))),
        std=tuple(float(v) for v in config.get("std", (0.229, 0.224, 0.225))),
        color_order="RGB",
        classes=classes,
    )


def known_backbones() -> list[str]:
    """The built-in names and the spec forms, for help texts and errors."""
    return [*PRETRAINED, "run:PATH", "torchvision:NAME", "timm:NAME"]


def load_backbone(spec: str) -> Backbone:
    """The backbone a spec names (see the module docstring), on the CPU, in eval mode.

    Raises:
        ModelError: unknown name (with a did-you-mean), or an optional library missing.
        RunError: ``run:PATH`` is not a usable run directory.
    """
    spec = spec.strip()
    if spec in PRETRAINED:
        backbone = PRETRAINED[spec]()
    elif spec.startswith(RUN_PREFIX) and spec[len(RUN_PREFIX) :]:
        backbone = _from_run(spec[len(RUN_PREFIX) :])
    elif spec.startswith("torchvision:") and spec.partition(":")[2]:
        backbone = _from_torchvision(spec.partition(":")[2], spec)
    elif spec.startswith("timm:") and spec.partition(":")[2]:
        backbone = _from_timm(spec.partition(":")[2], spec)
    else:
        hint = did_you_mean(spec, PRETRAINED, cutoff=0.5)
        raise ModelError(
            f"unknown backbone {spec!r}.{hint} Backbones: {', '.join(known_backbones())} "
            "(torchvision/timm only where those packages are installed)"
        )
    log.info(
        "backbone %s: %s input, mean %s, std %s, %d features",
        backbone.name,
        "x".join(map(str, backbone.input_shape)),
        [round(m, 3) for m in backbone.mean],
        [round(s, 3) for s in backbone.std],
        backbone.num_features,
    )
    return backbone


# -- input checks -----------------------------------------------------------------------------

# What normalised photos look like to a backbone: per-channel mean near 0, std near 1.
MEAN_LIMIT = 1.0  # |mean| above this: inputs much brighter or darker than the training data
STD_RANGE = (0.25, 4.0)  # std outside: inputs flatter, or on another scale (0..255?)


def input_statistics_problem(inputs: torch.Tensor) -> str | None:
    """What is off about a batch of normalised backbone inputs ``(N, C, H, W)``, or None.

    Inputs normalised the way the backbone was trained have per-channel means within
    ``MEAN_LIMIT`` of 0 and standard deviations within ``STD_RANGE``; inputs scaled twice,
    not scaled, or far from the training photos fall outside.
    """
    values = inputs.detach().float()
    mean = values.mean(dim=(0, 2, 3))
    std = values.std(dim=(0, 2, 3))
    low, high = STD_RANGE
    if bool((mean.abs() > MEAN_LIMIT).any()) or bool(((std < low) | (std > high)).any()):
        return (
            f"per-channel mean {[round(float(m), 2) for m in mean]} and std "
            f"{[round(float(s), 2) for s in std]} (expected mean within ±{MEAN_LIMIT} of 0, "
            f"std {low}..{high})"
        )
    return None


def check_backbone_inputs(inputs: torch.Tensor, backbone: Backbone) -> None:
    """Log a warning when normalised inputs do not look like what ``backbone`` expects."""
    problem = input_statistics_problem(inputs)
    if problem is not None:
        log.warning(
            "the inputs reaching backbone %s do not match what its weights expect: %s. "
            "Check the preprocessing: pixels must be scaled to 0..1 once and normalised with "
            "the backbone's mean %s and std %s, not the dataset's; very dark, bright or flat "
            "images give poor features.",
            backbone.name,
            problem,
            [round(m, 3) for m in backbone.mean],
            [round(s, 3) for s in backbone.std],
        )
