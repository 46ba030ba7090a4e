"""Offline augmentation, Augmentor-style: a folder or a dataset in, augmented PNG files out.

:func:`open_source` (:mod:`cnnkit.augment.source`) reads the images — a folder of class
sub-folders (or train/ test/ folders of them), read by :mod:`cnnkit.data.folder`, or a named
data source such as ``mnist`` — and :func:`augment_to_folder` writes augmented copies into a
new folder that mirrors the class folders, choosing the source images by one of three rules:

- ``sample=N``: N images in total, each from a source image drawn at random (Augmentor's
  ``Pipeline.sample(N)``); ``rounds=R`` repeats it (the textbook's two rounds of ten);
- ``per_class=N``: every class ends up with N images — with ``copy_originals`` the originals
  count, so an imbalanced folder comes out balanced;
- ``per_image=K``: K augmentations of every source image (per round).

Beside the images it writes ``augment-manifest.json``: the pipeline, the seed, how the source
was read, and for every output its source file, the steps that acted on it with their drawn
parameters and a SHA-256 of its pixels. :func:`regenerate` rebuilds any output from the
manifest alone (:mod:`cnnkit.augment.manifest` reads it back), exactly, and says whether it
matches. ``preview.png`` shows originals next to their augmentations.

The output folder is written through :func:`cnnkit.atomic.atomic_folder`, so it is either
complete or absent; it is never inside the source folder unless asked for
(``inside_source=True``), since a later read of the source would take it for a class.
"""

from __future__ import annotations

import json
import logging
import os
import time
from collections import Counter
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from cnnkit.atomic import atomic_folder
from cnnkit.augment.manifest import FORMAT, MANIFEST, Manifest, pixels_hash, read_manifest
from cnnkit.augment.manifest import source_images as read_sources
from cnnkit.augment.pipeline import Pipeline
from cnnkit.augment.preview import plot_outputs
from cnnkit.augment.source import AugmentSource, open_source
from cnnkit.data.pictures import save_figure
from cnnkit.errors import ConfigError

log = logging.getLogger(__name__)

__all__ = [
    "MANIFEST",
    "PREVIEW",
    "AugmentResult",
    "RegenerateResult",
    "augment_to_folder",
    "open_source",
    "plan_outputs",
    "read_manifest",
    "regenerate",
]

PREVIEW = "preview.png"
BATCH = 256  # images augmented at once
WRITERS = 4  # threads encoding PNG files (Pillow releases the GIL while compressing)

Progress = Callable[[int, int], None]  # (done, total)


@dataclass
class AugmentResult:
    """What :func:`augment_to_folder` wrote.

    Attributes:
        folder: the output folder.
        augmented: augmented images written.
        originals: original images copied along.
        per_class: images in the output per class name (augmented + originals).
        manifest: the manifest file.
        preview: the preview grid PNG, if drawn.
    """

    folder: Path
    augmented: int
    originals: int
    per_class: dict[str, int] = field(default_factory=dict)
    manifest: Path | None = None
    preview: Path | None = None


def plan_outputs(
    labels: torch.Tensor,
    num_classes: int,
    *,
    sample: int | None = None,
    per_class: int | None = None,
    per_image: int | None = None,
    rounds: int = 1,
    originals_count: bool = False,
    generator: torch.Generator,
) -> list[tuple[int, int]]:
    """Which source image each output comes from: ``[(source index, round), ...]``.

    Exactly one of ``sample`` (N in total per round, sources drawn at random with
    replacement), ``per_class`` (each class filled to N, cycling through its images in a
    shuffled order; with ``originals_count`` the originals are part of the N) and
    ``per_image`` (K per source image per round) must be given.

    Raises:
        ConfigError: not exactly one rule, a count below 1, or rounds with ``per_class``.
    """
    rules = {"--sample": sample, "--per-class": per_class, "--per-image": per_image}
    given = [name for name, value in rules.items() if value is not None]
    if len(given) != 1:
        raise ConfigError(
            "say how many images to write with exactly one of --sample N (in total), "
            f"--per-class N or --per-image K; got {', '.join(given) or 'none'}"
        )
    value = rules[given[0]]
    if value is None or value < 1 or rounds < 1:
        raise ConfigError(f"{given[0]} and --rounds must be at least 1")
    n = len(labels)
    plan: list[tuple[int, int]] = []
    if per_class is not None:
        if rounds != 1:
            raise ConfigError("--per-class already says how many images per class; drop --rounds")
        for label in range(num_classes):
            members = torch.nonzero(labels == label).squeeze(1)
            need = per_class - (len(members) if originals_count else 0)
            if len(members) == 0 or need <= 0:
                continue
            order = members[torch.randperm(len(members), generator=generator)]
            plan += [(int(order[k % len(order)]), 1) for k in range(need)]
        return plan
    for round_ in range(1, rounds + 1):
        if sample is not None:
            chosen = torch.randint(0, n, (sample,), generator=generator).tolist()
        else:
            chosen = [i for i in range(n) for _ in range(per_image or 0)]
        plan += [(i, round_) for i in chosen]
    return plan


def augment_to_folder(
    source: AugmentSource,
    pipeline: Pipeline,
    out: str | os.PathLike[str],
    *,
    sample: int | None = None,
    per_class: int | None = None,
    per_image: int | None = None,
    rounds: int = 1,
    copy_originals: bool = False,
    seed: int = 0,
    inside_source: bool = False,
    preview: bool = True,
    preview_rows: int = 8,
    preview_columns: int = 8,
    progress: Progress | None = None,
) -> AugmentResult:
    """Write augmented PNGs of ``source`` into the new folder ``out``, with a manifest.

    Args:
        source: from :func:`open_source`.
        pipeline: the transforms (no mixup/cutmix: they need a batch and mix labels).
        out: a folder that does not exist yet (or is empty).
        sample: N outputs per round from random source images.
        per_class: fill every class to N images.
        per_image: K outputs per source image per round.
        rounds: repeat ``sample`` / ``per_image`` this many times.
        copy_originals: also write each source image (as a PNG, as it was read).
        seed: seeds the choice of sources and every transform's draws.
        inside_source: allow ``out`` inside the source folder.
        preview: draw ``preview.png`` (originals next to their augmentations).
        preview_rows: originals in the preview, spread over the classes.
        preview_columns: augmentations shown per original.
        progress: called with ``(done, total)`` images as they are written.

    Raises:
        ConfigError: bad counts, an empty or mixing pipeline, or a bad destination.
    """
    _check_pipeline(pipeline)
    target = Path(out).expanduser().absolute()
    _check_destination(target, source.root, inside_source)
    dataset = source.dataset
    if dataset.image_shape[0] not in (1, 3):
        raise ConfigError(
            f"PNG files hold 1 or 3 channels, the images have {dataset.image_shape[0]}"
        )
    generator = torch.Generator().manual_seed(seed)
    plan = plan_outputs(
        dataset.labels,
        dataset.num_classes,
        sample=sample,
        per_class=per_class,
        per_image=per_image,
        rounds=rounds,
        originals_count=copy_originals,
        generator=generator,
    )
    originals = list(range(len(dataset))) if copy_originals else []
    settings = {
        "sample": sample,
        "per_class": per_class,
        "per_image": per_image,
        "rounds": rounds,
        "copy_originals": copy_originals,
        "batch": BATCH,
    }
    drawn = preview and bool(plan)
    with atomic_folder(target) as staging:
        entries = _write_images(staging, source, pipeline, originals, plan, generator, progress)
        _write_manifest(staging / MANIFEST, source, pipeline, seed, settings, entries)
        if drawn:
            figure = plot_outputs(
                staging / MANIFEST, source, rows=preview_rows, columns=preview_columns
            )
            save_figure(figure, staging / PREVIEW)
    counts = Counter(entry["class"] for entry in entries)
    return AugmentResult(
        folder=target,
        augmented=len(plan),
        originals=len(originals),
        per_class={name: counts[name] for name in dataset.classes},
        manifest=target / MANIFEST,
        preview=target / PREVIEW if drawn else None,
    )


def _write_images(
    folder: Path,
    source: AugmentSource,
    pipeline: Pipeline,
    originals: list[int],
    plan: list[tuple[int, int]],
    generator: torch.Generator,
    progress: Progress | None,
) -> list[dict[str, Any]]:
    """Write the originals copied along, then the augmented images, a batch at a time.

    Returns:
        the manifest entry of every file written, in order.
    """
    dataset, names = source.dataset, _Names()
    entries: list[dict[str, Any]] = []
    total = len(originals) + len(plan)
    with ThreadPoolExecutor(max_workers=WRITERS) as writers:
        for first in range(0, len(originals), BATCH):
            copied = originals[first : first + BATCH]
            files = [names.original(source.folders[i], source.stems[i]) for i in copied]
            pixels = dataset.images[copied]
            _write_pngs(writers, folder, files, pixels)
            entries += [
                _entry(source, i, file, 0, [], image)
                for i, file, image in zip(copied, files, pixels, strict=True)
            ]
            if progress:
                progress(len(entries), total)
        for first in range(0, len(plan), BATCH):
            chunk = plan[first : first + BATCH]
            index = [i for i, _ in chunk]
            params = pipeline.sample(len(chunk), dataset.image_shape, generator)
            pixels = pipeline.apply(dataset.images[index], params)
            files = [names.augmented(source.folders[i], source.stems[i]) for i in index]
            _write_pngs(writers, folder, files, pixels)
            entries += [
                _entry(source, i, file, round_, pipeline.records(params, k), pixels[k])
                for k, ((i, round_), file) in enumerate(zip(chunk, files, strict=True))
            ]
            if progress:
                progress(len(entries), total)
    return entries


def _write_manifest(
    path: Path,
    source: AugmentSource,
    pipeline: Pipeline,
    seed: int,
    settings: dict[str, Any],
    entries: list[dict[str, Any]],
) -> None:
    manifest = {
        "format": FORMAT,
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "seed": seed,
        "pipeline": pipeline.describe(),
        "source": source.record,
        "classes": list(source.dataset.classes),
        "image_shape": list(source.dataset.image_shape),
        "settings": settings,
        "outputs": entries,
    }
    path.write_text(json.dumps(manifest, indent=1) + "\n", encoding="utf-8")


def _check_pipeline(pipeline: Pipeline) -> None:
    if not len(pipeline):
        raise ConfigError(
            "no augmentation given; name at least one transform, e.g. "
            "--augment 'rotate:p=0.9,max=25' (cnnkit augment --list shows them all)"
        )
    if pipeline.mixing is not None:
        raise ConfigError(
            f"{pipeline.mixing.name} mixes pairs of images and their labels, which an image "
            "file in one class folder cannot hold; use it in training (cnnkit train --augment)"
        )


def _check_destination(target: Path, root: Path | None, inside_source: bool) -> None:
    if target.exists() and (not target.is_dir() or any(target.iterdir())):
        raise ConfigError(f"{target} already exists and is not empty; choose a new folder (--out)")
    if root is None or inside_source:
        return
    real, source = target.resolve(), root.resolve()
    if real == source or source in real.parents:
        raise ConfigError(
            f"{target} is inside the source folder {root}: a later read of the source would "
            "take it for a class. Choose --out outside it (or pass --inside-source if you "
            "really mean it)"
        )


class _Names:
    """Unique output file names: ``<folder>/<stem>.png`` for originals, ``<stem>_aug<k>.png``
    (k counting that source's augmentations from 1) for the rest."""

    def __init__(self) -> None:
        self.used: set[str] = set()
        self.counts: dict[tuple[str, str], int] = {}

    def _unique(self, folder: str, base: str) -> str:
        name, k = f"{folder}/{base}.png", 1
        while name.lower() in self.used:
            k += 1
            name = f"{folder}/{base}-{k}.png"
        self.used.add(name.lower())
        return name

    def original(self, folder: str, stem: str) -> str:
        return self._unique(folder, stem)

    def augmented(self, folder: str, stem: str) -> str:
        k = self.counts.get((folder, stem), 0) + 1
        self.counts[(folder, stem)] = k
        return self._unique(folder, f"{stem}_aug{k}")


def _entry(
    source: AugmentSource,
    index: int,
    file: str,
    round_: int,
    records: list[dict[str, Any]],
    image: torch.Tensor,
) -> dict[str, Any]:
    label = int(source.dataset.labels[index])
    return {
        "file": file,
        "source": source.keys[index],
        "label": label,
        "class": source.dataset.classes[label],
        "round": round_,  # 0: an original copied along
        "ops": records,
        "sha256": pixels_hash(image),
        "source_sha256": pixels_hash(source.dataset.images[index]),
    }


def _write_pngs(
    writers: ThreadPoolExecutor, folder: Path, files: Sequence[str], pixels: torch.Tensor
) -> None:
    """Write uint8 ``(N, C, H, W)`` images as grey or RGB PNG files, on the writer threads."""
    from PIL import Image

    arrays = pixels.cpu().numpy()

    def write(item: tuple[str, np.ndarray]) -> None:
        file, array = item
        path = folder / file
        path.parent.mkdir(parents=True, exist_ok=True)
        if array.shape[0] == 1:
            Image.fromarray(array[0], "L").save(path, format="PNG")
        else:
            Image.fromarray(np.ascontiguousarray(array.transpose(1, 2, 0)), "RGB").save(
                path, format="PNG"
            )

    list(writers.map(write, zip(files, arrays, strict=True)))


@dataclass
class RegenerateResult:
    """What :func:`regenerate` did.

    Attributes:
        regenerated: outputs rebuilt.
        identical: of those, how many have exactly the recorded pixels.
        different: the files whose pixels differ from the record.
        written: where the rebuilt files were written (None: checked only).
    """

    regenerated: int
    identical: int
    different: list[str]
    written: Path | None


def regenerate(
    manifest_path: str | os.PathLike[str] | Manifest,
    *,
    out: str | os.PathLike[str] | None = None,
    files: Sequence[str] | None = None,
    source_dir: str | os.PathLike[str] | None = None,
    progress: Progress | None = None,
) -> RegenerateResult:
    """Rebuild outputs of a manifest from their sources and recorded parameters.

    Args:
        manifest_path: ``augment-manifest.json`` (or the folder holding it), or a manifest
            already read by :func:`read_manifest`.
        out: write the rebuilt PNGs into this folder, at their recorded paths (None: only
            compare them with the record).
        files: only these outputs (paths as in the manifest); default all.
        source_dir: where the source is now, if it moved.
        progress: called with ``(done, total)``.

    Raises:
        ConfigError: a file not in the manifest. DataError: a source missing or changed.
    """
    manifest = (
        manifest_path if isinstance(manifest_path, Manifest) else read_manifest(manifest_path)
    )
    outputs = manifest.outputs
    if files is not None:
        wanted = {Path(f).as_posix() for f in files}
        unknown = sorted(wanted - {e["file"] for e in outputs})
        if unknown:
            raise ConfigError(f"not in {manifest.path}: {', '.join(unknown)}")
        outputs = [e for e in outputs if e["file"] in wanted]
    pipeline, shape = manifest.pipeline, manifest.image_shape
    sources = read_sources(manifest, sorted({e["source"] for e in outputs}), source_dir=source_dir)
    target = Path(out).expanduser() if out is not None else None
    different: list[str] = []
    with ThreadPoolExecutor(max_workers=WRITERS) as writers:
        for first in range(0, len(outputs), BATCH):
            chunk = outputs[first : first + BATCH]
            originals = torch.stack([sources[e["source"]] for e in chunk])
            params = pipeline.params_from_records([e["ops"] for e in chunk], shape)
            pixels = pipeline.apply(originals, params)
            for entry, image in zip(chunk, pixels, strict=True):
                if pixels_hash(image) != entry["sha256"]:
                    different.append(entry["file"])
            if target is not None:
                _write_pngs(writers, target, [e["file"] for e in chunk], pixels)
            if progress:
                progress(first + len(chunk), len(outputs))
    return RegenerateResult(
        regenerated=len(outputs),
        identical=len(outputs) - len(different),
        different=different,
        written=target,
    )
