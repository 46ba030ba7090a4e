"""Features of a folder's images computed on a Ray cluster (``cnnkit features --ray ADDRESS``).

The Spark-era recipe for large image collections (pretrained features for every image, then
a classic model) on an existing distributed engine: Ray Data maps over the image files with
:meth:`ray.data.Dataset.map_batches`; each worker is an actor that loads the backbone once
and, per batch, decodes its files by the same rule the data was read with
(:func:`cnnkit.data.images.load_image` at the recorded size, channels and fit) and runs
:func:`cnnkit.transfer.features.embed`. The driver puts the rows back in order and
:func:`~cnnkit.transfer.features.cached_embed` writes the same features file as the local
path, so ``cnnkit transfer`` reuses it.

``ADDRESS`` is ``local`` (start a Ray instance on this machine, all its CPUs), ``auto`` (the
cluster this machine belongs to) or ``ray://HOST:PORT``. Every node needs cnnkit (with
``cnnkit[ray]``) and the image files at the same paths, e.g. on a shared file system.
Needs ``pip install "cnnkit[ray]"``.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import torch

from cnnkit.data.dataset import Dataset
from cnnkit.data.folder import PREFIX as FOLDER_PREFIX
from cnnkit.errors import ConfigError, DataError
from cnnkit.transfer.features import EMBED_BATCH

LOCAL = "local"


def require_ray(data: str | None = None) -> Any:
    """The ``ray`` module, or a ConfigError saying how to install it.

    With ``data`` (a source name), also checks that it is a folder: Ray reads image files.
    """
    if data is not None and not data.startswith(FOLDER_PREFIX):
        raise ConfigError(
            f"--ray computes features from image files; {data} has none (use a folder "
            "source: --data folder:PATH)"
        )
    try:
        import ray
    except ImportError:
        raise ConfigError(
            '--ray needs Ray: pip install "cnnkit[ray]" (on every node of the cluster)'
        ) from None
    return ray


class _Embedder:
    """A Ray Data actor: the backbone loaded once, then features of each batch of files."""

    def __init__(
        self,
        backbone: str,
        image_shape: tuple[int, int, int],
        fit: str,
        input_size: int | None,
    ) -> None:
        from cnnkit.transfer.backbones import load_backbone

        self.backbone = load_backbone(backbone)
        self.channels, self.size = image_shape[0], (image_shape[1], image_shape[2])
        self.fit = fit
        self.input_size = input_size

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        from cnnkit.data.images import load_image
        from cnnkit.transfer.features import embed

        pixels = np.stack(
            [
                load_image(str(path), channels=self.channels, size=self.size, fit=self.fit)
                for path in batch["path"]
            ]
        )
        images = Dataset.from_numpy(pixels, np.zeros(len(pixels), dtype=np.int64), ("-",))
        features = embed(self.backbone, images, input_size=self.input_size, batch_size=len(pixels))
        return {"row": batch["row"], "features": features.numpy()}


@contextmanager
def connected(address: str, *, num_cpus: int | None = None) -> Iterator[Any]:
    """Ray connected to ``address`` (``local`` starts an instance here) for the block."""
    ray = require_ray()
    if address == LOCAL:
        ray.init(
            num_cpus=num_cpus or os.cpu_count(),
            include_dashboard=False,
            log_to_driver=False,
            logging_level=logging.WARNING,
        )
    else:
        try:
            ray.init(address=address, log_to_driver=False, logging_level=logging.WARNING)
        except ConnectionError as exc:
            raise ConfigError(f"--ray {address}: cannot connect to a Ray cluster ({exc})") from exc
    try:
        yield ray
    finally:
        ray.shutdown()


def ray_embed(
    backbone: str,
    dataset: Dataset,
    *,
    fit: str,
    input_size: int | None = None,
    batch_size: int = EMBED_BATCH,
) -> torch.Tensor:
    """Features of every image of ``dataset`` computed by Ray Data over its files, in order.

    Ray must be connected (:func:`connected`). ``dataset`` must come from a folder source:
    its ids are the image files, decoded again on the workers by the rule ``fit`` at the
    dataset's image shape.

    Returns:
        float32 ``(N, D)`` on the CPU, as :func:`cnnkit.transfer.features.embed` gives.

    Raises:
        ConfigError: the dataset's samples are not image files.
        DataError: a worker could not decode a file (it changed since it was read).
    """
    import ray

    paths = list(dataset.sample_ids())
    if not paths or not all(Path(p).is_file() for p in paths):
        raise ConfigError(
            f"--ray computes features from image files; {dataset.source or 'this data'} has "
            "none (use a folder source: --data folder:PATH)"
        )
    actors = max(1, int(ray.cluster_resources().get("CPU", 1)))
    items = ray.data.from_items([{"row": i, "path": p} for i, p in enumerate(paths)])
    mapped = items.map_batches(
        _Embedder,
        fn_constructor_kwargs={
            "backbone": backbone,
            "image_shape": dataset.image_shape,
            "fit": fit,
            "input_size": input_size,
        },
        batch_size=batch_size,
        batch_format="numpy",
        compute=ray.data.ActorPoolStrategy(size=actors),
    )
    features: torch.Tensor | None = None
    done = np.zeros(len(paths), dtype=bool)
    try:
        for batch in mapped.iter_batches(batch_size=None, batch_format="numpy"):
            if features is None:
                features = torch.empty(len(paths), batch["features"].shape[1])
            rows = batch["row"].astype(np.int64)
            features[torch.from_numpy(rows)] = torch.tensor(batch["features"], dtype=torch.float32)
            done[rows] = True
    except ray.exceptions.RayError as exc:
        cause = getattr(exc, "cause", None)
        if isinstance(cause, DataError):
            raise DataError(f"a Ray worker could not decode an image: {cause}") from exc
        raise
    if features is None or not done.all():
        raise DataError(f"Ray returned features for {int(done.sum())} of {len(paths)} images")
    return features
