"""The shape every zoo model shares: a feature extractor followed by a swappable head."""

from __future__ import annotations

import torch
from torch import nn

from cnnkit.errors import ModelError


class Classifier(nn.Module):
    """``head(features(x))``, where ``head`` is the final ``nn.Linear`` producing logits.

    (A model built from layers whose output is not a linear Dense layer has an identity head;
    :attr:`num_features` and :meth:`reset_classifier` then raise ``ModelError``.)

    Every model in the zoo is a Classifier, so transfer learning can swap any model's head
    the same way (:meth:`reset_classifier`) and read penultimate features with
    :meth:`forward_features`.
    """

    def __init__(self, features: nn.Module, head: nn.Module) -> None:
        super().__init__()
        self.features = features
        self.head = head

    @property
    def num_features(self) -> int:
        """Width of the penultimate representation (the head's input)."""
        if not isinstance(self.head, nn.Linear):
            raise ModelError(
                f"{type(self).__name__} has no Dense head: its output layer is not a Dense "
                "layer without activation, so there is no classifier to replace"
            )
        return int(self.head.in_features)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """``(N, C, H, W)`` -> penultimate features ``(N, num_features)``."""
        return self.features(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``(N, C, H, W)`` -> logits ``(N, num_classes)``."""
        return self.head(self.features(x))

    def reset_classifier(self, num_classes: int) -> None:
        """Replace the head with a fresh ``nn.Linear`` of ``num_classes`` outputs."""
        self.head = nn.Linear(self.num_features, num_classes)
