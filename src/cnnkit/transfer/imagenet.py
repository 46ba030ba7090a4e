"""The 1000 ImageNet (ILSVRC-2012) class names, in the order of the classifiers' outputs.

The names are the usual short English ones (``tabby``, ``tiger cat``, ``espresso``), stored
in ``imagenet_classes.txt`` beside this module, one per line. The list has three duplicated
names; here they are told apart: ``crane (bird)`` / ``crane (machine)`` and ``maillot`` /
``maillot (tank suit)``.
"""

from __future__ import annotations

from functools import lru_cache
from importlib import resources

from cnnkit.errors import ModelError

NUM_CLASSES = 1000


@lru_cache(maxsize=1)
def imagenet_classes() -> tuple[str, ...]:
    """The 1000 class names; ``imagenet_classes()[281] == "tabby"``."""
    text = resources.files("cnnkit.transfer").joinpath("imagenet_classes.txt").read_text("utf-8")
    names = tuple(line for line in text.splitlines() if line)
    if len(names) != NUM_CLASSES:
        raise ModelError(
            f"cnnkit's imagenet_classes.txt holds {len(names)} names, not {NUM_CLASSES}; "
            "the installation is damaged: reinstall cnnkit"
        )
    return names
