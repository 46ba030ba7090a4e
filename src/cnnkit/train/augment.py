"""Batched training-time augmentation for the loop's fast path: flip and translate.

An augmentation is any callable ``(images, generator) -> images`` taking a uint8 batch
``(B, C, H, W)`` on the training device and returning one of the same shape (uint8, or float
on the same 0..255 scale). All randomness comes from ``generator`` (a CPU generator the loop
seeds from the run's seed and the epoch), so augmented runs stay reproducible and resumable.
These are the two transforms the fast recipes need; richer vocabularies plug in through the
same callable interface.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
import torch.nn.functional as F

from cnnkit.errors import ConfigError

Augment = Callable[[torch.Tensor, torch.Generator], torch.Tensor]


def flip_lr(images: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """Mirror each image left-right with probability 1/2. ``(B, C, H, W)`` -> same."""
    flip = (torch.rand(len(images), generator=generator) < 0.5).to(images.device)
    return torch.where(flip.view(-1, 1, 1, 1), images.flip(3), images)


def translate(
    images: torch.Tensor, generator: torch.Generator, *, pixels: int = 2, mode: str = "constant"
) -> torch.Tensor:
    """Shift each image by a random whole number of pixels in ``[-pixels, pixels]`` per axis.

    Uncovered pixels are filled with 0 (``constant``, black) or mirrored (``reflect``).
    ``(B, C, H, W)`` -> same; two batched gathers, no per-image Python.
    """
    if pixels == 0:
        return images
    n, c, h, w = images.shape
    padded = F.pad(images, (pixels,) * 4, mode=mode)
    shifts = torch.randint(0, 2 * pixels + 1, (2, n, 1), generator=generator).to(images.device)
    rows = (torch.arange(h, device=images.device) + shifts[0]).view(n, 1, h, 1)
    cols = (torch.arange(w, device=images.device) + shifts[1]).view(n, 1, 1, w)
    out = padded.gather(2, rows.expand(n, c, h, w + 2 * pixels))
    return out.gather(3, cols.expand(n, c, h, w))


def make_augment(names: Sequence[str]) -> Augment | None:
    """Compose augmentations by name, applied in order: ``flip``, ``translate[:PIXELS]``,
    ``translate-reflect[:PIXELS]``. An empty list gives None (no augmentation).

    Raises:
        ConfigError: an unknown name or a bad pixel count.
    """
    steps: list[Augment] = []
    for spec in names:
        name, _, arg = spec.partition(":")
        if name == "flip" and not arg:
            steps.append(flip_lr)
        elif name in ("translate", "translate-reflect"):
            try:
                pixels = int(arg) if arg else 2
            except ValueError:
                pixels = -1
            if pixels < 0:
                raise ConfigError(f"augmentation {spec!r}: the shift must be a whole number >= 0")
            mode = "reflect" if name == "translate-reflect" else "constant"

            def shift(
                x: torch.Tensor, g: torch.Generator, p: int = pixels, m: str = mode
            ) -> torch.Tensor:
                return translate(x, g, pixels=p, mode=m)

            steps.append(shift)
        else:
            raise ConfigError(
                f"unknown augmentation {spec!r}; choose from flip, translate[:PIXELS], "
                "translate-reflect[:PIXELS]"
            )
    if not steps:
        return None

    def augment(images: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        for step in steps:
            images = step(images, generator)
        return images

    return augment
