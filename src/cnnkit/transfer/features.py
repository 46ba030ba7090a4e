"""Embeddings: a backbone's penultimate features for every image of a dataset, cached on disk.

:func:`embed` runs the backbone over a dataset in batches (no gradients, eval mode) and
reports progress through a callback. :func:`cached_embed` keeps the result in a cache folder
(default ``$CNNKIT_DATA/features`` or ``~/.cache/cnnkit/features``) under a key made of the
backbone's weights digest, its input settings and the data's fingerprint: change the weights
(retrain a ``run:`` backbone), the input size or a single pixel or label, and the key changes,
so stale features are never reused. Each file also records both digests and is checked
against them when read.
"""

from __future__ import annotations

import hashlib
import logging
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch

from cnnkit.atomic import write_path_atomically
from cnnkit.data.dataset import Dataset
from cnnkit.transfer.backbones import Backbone, check_backbone_inputs

log = logging.getLogger(__name__)

FORMAT_VERSION = "1"  # bump when the way features are computed changes
EMBED_BATCH = 64  # images per forward pass; 64 x 3 x 224 x 224 floats is 38 MB

Progress = Callable[[int, int], None]  # (images done, images in total)


def default_cache_dir() -> Path:
    """``$CNNKIT_DATA/features`` or ``~/.cache/cnnkit/features``."""
    from cnnkit.data.locations import data_home

    return data_home() / "features"


@torch.no_grad()
def embed(
    backbone: Backbone,
    dataset: Dataset,
    *,
    input_size: int | None = None,
    batch_size: int = EMBED_BATCH,
    device: torch.device | str = "cpu",
    progress: Progress | None = None,
) -> torch.Tensor:
    """Features of every image of ``dataset``, in order.

    Grey images are replicated to 3 channels and every image is resized to the backbone's
    input size (or ``input_size``) and normalised the backbone's way.

    Returns:
        float32 ``(N, backbone.num_features)`` on the CPU.
    """
    device = torch.device(device)
    adapter = backbone.adapter_for(dataset.image_shape, input_size=input_size).to(device)
    scale = Backbone.preprocessing_for(dataset.image_shape)
    network = backbone.network.to(device)
    was_training = network.training
    network.eval()
    outputs = []
    try:
        for start in range(0, len(dataset), batch_size):
            batch = dataset.images[start : start + batch_size].to(device, non_blocking=True)
            inputs = adapter(scale(batch))
            if start == 0:
                check_backbone_inputs(inputs, backbone)
            outputs.append(network.forward_features(inputs).float().cpu())
            if progress is not None:
                progress(min(start + batch_size, len(dataset)), len(dataset))
    finally:
        network.train(was_training)
    if not outputs:
        return torch.empty(0, backbone.num_features)
    return torch.cat(outputs)


@dataclass(frozen=True)
class CachedFeatures:
    """Features of one dataset and where they are cached.

    Attributes:
        features: float32 ``(N, D)``.
        labels: int64 ``(N,)``, the dataset's labels.
        path: the cache file.
        reused: True when read from the cache, False when just computed.
    """

    features: torch.Tensor
    labels: torch.Tensor
    path: Path
    reused: bool


def cache_key(backbone: Backbone, dataset: Dataset, *, input_size: int | None = None) -> str:
    """SHA-256 of the format version, the backbone's digest, input size and data fingerprint."""
    text = f"{FORMAT_VERSION}|{backbone.digest()}|{input_size}|{dataset.fingerprint()}"
    return hashlib.sha256(text.encode()).hexdigest()


def cache_path(
    backbone: Backbone, dataset: Dataset, cache_dir: Path, *, input_size: int | None = None
) -> Path:
    """``<cache_dir>/<backbone>-<key>.safetensors`` (the name only for people reading it)."""
    slug = re.sub(r"[^A-Za-z0-9._-]+", "_", backbone.name).strip("_")[-40:]
    key = cache_key(backbone, dataset, input_size=input_size)
    return cache_dir / f"{slug}-{key[:32]}.safetensors"


def _read(path: Path, expected: dict[str, str]) -> tuple[torch.Tensor, torch.Tensor] | None:
    """The cached tensors when the file exists and records ``expected``; else None."""
    from safetensors import SafetensorError, safe_open

    if not path.is_file():
        return None
    try:
        with safe_open(str(path), framework="pt") as handle:
            metadata = handle.metadata() or {}
            if any(metadata.get(k) != v for k, v in expected.items()):
                log.info("cached features %s belong to other data or weights; recomputing", path)
                return None
            return handle.get_tensor("features"), handle.get_tensor("labels")
    except (SafetensorError, OSError, KeyError) as exc:
        log.warning("cached features %s are unreadable (%s); recomputing", path, exc)
        return None


def cached_embed(
    backbone: Backbone,
    dataset: Dataset,
    *,
    cache_dir: str | Path | None = None,
    input_size: int | None = None,
    batch_size: int = EMBED_BATCH,
    device: torch.device | str = "cpu",
    progress: Progress | None = None,
    embedder: Callable[[Dataset], torch.Tensor] | None = None,
) -> CachedFeatures:
    """:func:`embed`, computed once per backbone and data, then read from the cache.

    Args:
        cache_dir: the cache folder (created when missing); default :func:`default_cache_dir`.
        input_size, batch_size, device, progress: as for :func:`embed`.
        embedder: computes the features instead of :func:`embed` here, e.g. on a Ray
            cluster (:mod:`cnnkit.transfer.ray_features`); the file written is the same.
    """
    from safetensors.torch import save_file

    folder = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    path = cache_path(backbone, dataset, folder, input_size=input_size)
    expected = {
        "format": FORMAT_VERSION,
        "backbone_digest": backbone.digest(),
        "data_fingerprint": dataset.fingerprint(),
        "input_size": str(input_size),
    }
    cached = _read(path, expected)
    if cached is not None and len(cached[0]) == len(dataset):
        return CachedFeatures(cached[0], cached[1], path, reused=True)
    if embedder is not None:
        features = embedder(dataset)
    else:
        features = embed(
            backbone,
            dataset,
            input_size=input_size,
            batch_size=batch_size,
            device=device,
            progress=progress,
        )
    folder.mkdir(parents=True, exist_ok=True)
    metadata = {**expected, "backbone": backbone.name, "data_source": dataset.source}
    tensors = {"features": features.contiguous(), "labels": dataset.labels.contiguous()}
    write_path_atomically(path, lambda tmp: save_file(tensors, tmp, metadata=metadata))
    return CachedFeatures(features, dataset.labels, path, reused=False)
