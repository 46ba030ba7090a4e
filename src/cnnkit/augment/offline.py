"""Offline augmentation, Augmentor-style: a folder or a dataset in, augmented PNG files out.

:func:`open_source` reads the images — a folder of class sub-folders (or train/ test/
folders of them), read by :mod:`cnnkit.data.folder`, or a named data source such as
``mnist`` — and :func:`augment_to_folder` writes augmented copies into a new folder that
mirrors the class folders, choosing the source images by one of three rules:

- ``sample=N``: N images in total, each from a source image drawn at random (Augmentor's
  ``Pipeline.sample(N)``); ``rounds=R`` repeats it (the textbook's two rounds of ten);
- ``per_class=N``: every class ends up with N images — with ``copy_originals`` the originals
  count, so an imbalanced folder comes out balanced;
- ``per_image=K``: K augmentations of every source image (per round).

Beside the images it writes ``augment-manifest.json``: the pipeline, the seed, how the source
was read, and for every output its source file, the steps that acted on it with their drawn
parameters and a SHA-256 of its pixels. :func:`regenerate` rebuilds any output from the
manifest alone, exactly, and says whether it matches. ``preview.png`` shows originals next
to their augmentations.

The output folder is staged beside the destination and renamed into place at the end, so it
is either complete or absent; it is never inside the source folder unless asked for
(``inside_source=True``), since a later read of the source would take it for a class.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import shutil
import tempfile
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch

from cnnkit.augment.pipeline import Pipeline
from cnnkit.augment.spec import parse_augment
from cnnkit.data.dataset import Dataset
from cnnkit.data.folder import PREFIX as FOLDER_PREFIX
from cnnkit.data.folder import FolderOptions, parse_folder_source, read_folder
from cnnkit.data.images import FIT_MODES, load_image
from cnnkit.data.png_folder import class_folder_names
from cnnkit.errors import ConfigError, DataError
from cnnkit.fields import MAX_CLASSES, FieldChecker

log = logging.getLogger(__name__)

MANIFEST = "augment-manifest.json"
PREVIEW = "preview.png"
FORMAT = "cnnkit-augment/1"
BATCH = 256  # images augmented at once
WRITERS = 4  # threads encoding PNG files (Pillow releases the GIL while compressing)

Progress = Callable[[int, int], None]  # (done, total)


@dataclass(frozen=True)
class AugmentSource:
    """Images to augment and how to find each one again.

    Attributes:
        dataset: the images (uint8 ``(N, C, H, W)``), labels and classes.
        folders: per image, the output sub-folder mirroring its place (``cat``,
            ``train/cat``).
        stems: per image, the base of its output file names.
        keys: per image, what the manifest records as its source: the file path relative to
            the folder, or the dataset sample id.
        record: how to read the source again (the manifest's ``source``).
        root: the source folder (None for a named data source).
    """

    dataset: Dataset
    folders: tuple[str, ...]
    stems: tuple[str, ...]
    keys: tuple[str, ...]
    record: dict[str, Any]
    root: Path | None = None


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


def open_source(
    src: str,
    *,
    split: str = "train",
    start: int = 0,
    count: int | None = None,
    data_dir: str | os.PathLike[str] | None = None,
) -> AugmentSource:
    """Read the images to augment.

    Args:
        src: a folder (``photos`` or ``folder:photos?size=64x64``) with one sub-folder per
            class (or train/ test/ folders of them: all parts are read and mirrored), or a
            data source name (``mnist``, ``fashion-mnist``, ...).
        split: for a data source, which part (``train`` or ``test``); the whole part, no
            validation held out.
        start: the first image to use.
        count: how many images to use (default: all from ``start``).
        data_dir: for a data source, the folder its files are in.

    Raises:
        ConfigError: a bad range or split. DataError, DataNotFoundError: unreadable source.
    """
    if src.startswith(FOLDER_PREFIX) or Path(src).expanduser().is_dir():
        source = _open_folder(src)
    else:
        source = _open_dataset(src, split, data_dir)
    n = len(source.dataset)
    if not 0 <= start < n:
        raise ConfigError(f"--start {start} is outside the {n} images of {source.record['name']}")
    stop = n if count is None else min(n, start + count)
    if (start, stop) == (0, n):
        return source
    keep = range(start, stop)
    return replace(
        source,
        dataset=source.dataset.subset(list(keep)),
        folders=tuple(source.folders[i] for i in keep),
        stems=tuple(source.stems[i] for i in keep),
        keys=tuple(source.keys[i] for i in keep),
    )


def _open_folder(src: str) -> AugmentSource:
    if src.startswith(FOLDER_PREFIX):
        root, options = parse_folder_source(src)
    else:
        root, options = Path(src).expanduser(), FolderOptions()
    # a class with no image is no reason to refuse (it gets no outputs); report what is read
    options = replace(options, allow_empty=True)
    data = read_folder(root, options)
    root = data.report.root
    parts = [data.parts[name] for name in ("train", "val", "test") if name in data.parts]
    dataset = Dataset.concat(parts, source=f"{FOLDER_PREFIX}{root}") if len(parts) > 1 else parts[0]
    relative = [Path(path).relative_to(root) for path in dataset.sample_ids()]
    channels, (height, width) = data.report.channels, data.report.size
    return AugmentSource(
        dataset=dataset,
        folders=tuple(p.parent.as_posix() for p in relative),
        stems=tuple(p.stem for p in relative),
        keys=tuple(p.as_posix() for p in relative),
        record={
            "kind": "folder",
            "name": str(root),
            "root": str(root),
            "channels": channels,
            "size": [height, width],
            "fit": options.fit,
        },
        root=root,
    )


def _open_dataset(name: str, split: str, data_dir: str | os.PathLike[str] | None) -> AugmentSource:
    from cnnkit.data.sources import read_source

    parts = read_source(name, None if data_dir is None else Path(data_dir)).parts
    if split not in parts:
        raise ConfigError(f"{name} has no {split!r} part; choose one of {', '.join(parts)}")
    dataset = parts[split]
    folders = class_folder_names(dataset.classes)
    width = len(str(max(len(dataset) - 1, 0)))
    return AugmentSource(
        dataset=dataset,
        folders=tuple(folders[label] for label in dataset.labels.tolist()),
        stems=tuple(f"{i:0{width}d}" for i in range(len(dataset))),
        keys=dataset.sample_ids(),
        record={
            "kind": "dataset",
            "name": name,
            "split": split,
            "data_dir": None if data_dir is None else str(Path(data_dir).absolute()),
        },
    )


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
    names = _Names()
    originals = list(range(len(dataset))) if copy_originals else []
    total = len(originals) + len(plan)
    done = 0
    entries: list[dict[str, Any]] = []
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{target.name}.partial-", dir=target.parent))
    try:
        with ThreadPoolExecutor(max_workers=WRITERS) as writers:
            for first in range(0, len(originals), BATCH):
                copied = originals[first : first + BATCH]
                files = [names.original(source.folders[i], source.stems[i]) for i in copied]
                pixels = dataset.images[copied]
                _write_pngs(writers, staging, files, pixels)
                for i, file, image in zip(copied, files, pixels, strict=True):
                    entries.append(_entry(source, i, file, 0, [], image))
                done += len(copied)
                if progress:
                    progress(done, total)
            shape = dataset.image_shape
            for first in range(0, len(plan), BATCH):
                chunk = plan[first : first + BATCH]
                index = [i for i, _ in chunk]
                params = pipeline.sample(len(chunk), shape, generator)
                pixels = pipeline.apply(dataset.images[index], params)
                files = [names.augmented(source.folders[i], source.stems[i]) for i in index]
                _write_pngs(writers, staging, files, pixels)
                for k, ((i, round_), file) in enumerate(zip(chunk, files, strict=True)):
                    records = pipeline.records(params, k)
                    entries.append(_entry(source, i, file, round_, records, pixels[k]))
                done += len(chunk)
                if progress:
                    progress(done, total)
        manifest = {
            "format": FORMAT,
            "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            "seed": seed,
            "pipeline": pipeline.describe(),
            "source": source.record,
            "classes": list(dataset.classes),
            "image_shape": list(dataset.image_shape),
            "settings": {
                "sample": sample,
                "per_class": per_class,
                "per_image": per_image,
                "rounds": rounds,
                "copy_originals": copy_originals,
                "batch": BATCH,
            },
            "outputs": entries,
        }
        (staging / MANIFEST).write_text(json.dumps(manifest, indent=1) + "\n", encoding="utf-8")
        drawn = None
        if preview and plan:
            from cnnkit.augment.preview import plot_outputs
            from cnnkit.data.pictures import save_figure

            figure = plot_outputs(
                staging / MANIFEST, source, rows=preview_rows, columns=preview_columns
            )
            drawn = save_figure(figure, staging / PREVIEW)
        if target.exists():
            target.rmdir()
        os.replace(staging, target)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    os.chmod(target, 0o755)  # mkdtemp makes it private; the images are for sharing
    counts: dict[str, int] = {}
    for entry in entries:
        counts[entry["class"]] = counts.get(entry["class"], 0) + 1
    return AugmentResult(
        folder=target,
        augmented=len(plan),
        originals=len(originals),
        per_class={name: counts.get(name, 0) for name in dataset.classes},
        manifest=target / MANIFEST,
        preview=target / PREVIEW if drawn else None,
    )


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


def _pixels_hash(image: torch.Tensor) -> str:
    return hashlib.sha256(image.contiguous().numpy().tobytes()).hexdigest()


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
        "sha256": _pixels_hash(image),
        "source_sha256": _pixels_hash(source.dataset.images[index]),
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


# -- reading a manifest back -------------------------------------------------------------


@dataclass(frozen=True)
class Manifest:
    """A parsed ``augment-manifest.json``.

    Attributes:
        path: the file.
        pipeline: the pipeline rebuilt from its recorded steps.
        data: the whole JSON document.
    """

    path: Path
    pipeline: Pipeline
    data: dict[str, Any]

    @property
    def outputs(self) -> list[dict[str, Any]]:
        return list(self.data["outputs"])

    @property
    def image_shape(self) -> tuple[int, int, int]:
        c, h, w = self.data["image_shape"]
        return int(c), int(h), int(w)


def read_manifest(path: str | os.PathLike[str]) -> Manifest:
    """Read and check a manifest (a file, or the output folder holding one).

    Every field is checked before use: types, ranges, labels that name a class, output paths
    that stay inside the folder, hashes, and step records this pipeline can replay.

    Raises:
        DataError: missing or unreadable, or a field is wrong (``<file>: <field> ...``).
    """
    file = Path(path).expanduser()
    if file.is_dir():
        file = file / MANIFEST
    try:
        data = json.loads(file.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise DataError(f"{file}: no such manifest; `cnnkit augment` writes {MANIFEST}") from None
    except (OSError, ValueError, RecursionError) as exc:
        raise DataError(f"{file}: unreadable ({exc})") from exc
    check = FieldChecker(str(file), DataError, "the manifest was changed or damaged")
    check.mapping(data, "the manifest")
    check.keys(
        data,
        "",
        required=("format", "seed", "pipeline", "source", "classes", "image_shape", "outputs"),
        allowed=("created", "settings"),
    )
    if data["format"] != FORMAT:
        check.fail("format", f"is {check.shown(data['format'])}, not {FORMAT!r}")
    check.integer(data["seed"], "seed")
    for key in ("created",):
        if key in data:
            check.text(data[key], key)
    if "settings" in data:
        check.mapping(data["settings"], "settings")
    check.sequence(data["pipeline"], "pipeline")
    for i, step in enumerate(data["pipeline"]):
        check.text(step, f"pipeline[{i}]")
    try:
        pipeline = parse_augment(list(data["pipeline"]))
    except ConfigError as exc:
        check.fail("pipeline", f"cannot be rebuilt ({exc})")
    classes = data["classes"]
    check.sequence(classes, "classes")
    if not 1 <= len(classes) <= MAX_CLASSES:
        check.fail("classes", f"names {len(classes)} classes; 1..{MAX_CLASSES} expected")
    for i, name in enumerate(classes):
        check.text(name, f"classes[{i}]")
    check.shape(data["image_shape"], "image_shape")
    check.choice(data["image_shape"][0], "image_shape[0] (channels)", (1, 3))
    _check_source(check, data["source"], data["image_shape"])
    _check_outputs(check, data, pipeline)
    return Manifest(path=file, pipeline=pipeline, data=data)


def _check_source(check: FieldChecker, record: Any, shape: list[int]) -> None:
    check.mapping(record, "source")
    check.choice(record.get("kind"), "source.kind", ("folder", "dataset"))
    if record["kind"] == "dataset":
        check.keys(record, "source", required=("kind", "name", "split", "data_dir"))
        for key in ("name", "split"):
            check.text(record[key], f"source.{key}")
        if record["data_dir"] is not None:
            check.text(record["data_dir"], "source.data_dir")
        return
    check.keys(record, "source", required=("kind", "name", "root", "channels", "size", "fit"))
    for key in ("name", "root"):
        check.text(record[key], f"source.{key}")
    check.choice(record["fit"], "source.fit", FIT_MODES)
    check.integer(record["channels"], "source.channels")
    check.sequence(record["size"], "source.size")
    for i, side in enumerate(record["size"]):
        check.integer(side, f"source.size[{i}]")
    if record["channels"] != shape[0]:
        check.fail("source.channels", f"is {check.shown(record['channels'])}, not {shape[0]}")
    if record["size"] != shape[1:]:
        check.fail("source.size", f"is {check.shown(record['size'])}, not {shape[1:]}")


def _check_outputs(check: FieldChecker, data: dict[str, Any], pipeline: Pipeline) -> None:
    outputs, classes = data["outputs"], data["classes"]
    folder = data["source"]["kind"] == "folder"
    check.sequence(outputs, "outputs")
    files: set[str] = set()
    sources: dict[str, str] = {}
    keys = ("file", "source", "label", "class", "round", "ops", "sha256", "source_sha256")
    for i, entry in enumerate(outputs):
        field = f"outputs[{i}]"
        check.mapping(entry, field)
        check.keys(entry, field, required=keys)
        check.relative_path(entry["file"], f"{field}.file")
        if not entry["file"].endswith(".png"):
            check.fail(f"{field}.file", f"is {check.shown(entry['file'])}, not a .png file")
        if entry["file"].lower() in files:
            check.fail(f"{field}.file", f"{check.shown(entry['file'])} is listed twice")
        files.add(entry["file"].lower())
        if folder:
            check.relative_path(entry["source"], f"{field}.source")
        else:
            check.text(entry["source"], f"{field}.source")
        check.integer(entry["label"], f"{field}.label", low=0, high=len(classes) - 1)
        if entry["class"] != classes[entry["label"]]:
            check.fail(
                f"{field}.class",
                f"is {check.shown(entry['class'])} but label {entry['label']} is "
                f"{check.shown(classes[entry['label']])}",
            )
        check.integer(entry["round"], f"{field}.round", low=0)
        check.sequence(entry["ops"], f"{field}.ops")
        for j, op in enumerate(entry["ops"]):
            check.mapping(op, f"{field}.ops[{j}]")
        for key in ("sha256", "source_sha256"):
            value = entry[key]
            check.text(value, f"{field}.{key}")
            if not _SHA256.fullmatch(value):
                check.fail(f"{field}.{key}", f"is {check.shown(value)}, not a SHA-256 hex digest")
        if sources.setdefault(entry["source"], entry["source_sha256"]) != entry["source_sha256"]:
            check.fail(f"{field}.source_sha256", "differs from another output of the same source")
    shape = tuple(data["image_shape"])
    replayable = (ConfigError, TypeError, ValueError, RuntimeError, OverflowError)
    try:
        params = pipeline.params_from_records([e["ops"] for e in outputs], shape)
    except replayable:
        for i, entry in enumerate(outputs):  # find the first record it cannot replay
            try:
                pipeline.params_from_records([entry["ops"]], shape)
            except replayable as exc:
                check.fail(f"outputs[{i}].ops", f"cannot be replayed ({str(exc)[:200]})")
        check.fail("outputs", "cannot be replayed")
    for step in params:
        for key, value in step.items():
            if value.is_floating_point() and not bool(torch.isfinite(value).all()):
                i = int((~torch.isfinite(value)).reshape(len(outputs), -1).any(1).nonzero()[0])
                check.fail(f"outputs[{i}].ops", f"holds a {key} that is not a finite number")


_SHA256 = re.compile(r"[0-9a-f]{64}")


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


def source_images(
    manifest: Manifest,
    keys: Sequence[str],
    *,
    source_dir: str | os.PathLike[str] | None = None,
) -> dict[str, torch.Tensor]:
    """The source images named by ``keys`` (manifest ``source`` values), read as when the
    manifest was written: ``{key: uint8 (C, H, W)}``.

    Args:
        manifest: the manifest.
        keys: which sources.
        source_dir: read a folder source from here instead of its recorded folder (moved),
            or a data source's files from here.

    Raises:
        DataError: a source is missing or its pixels changed since.
    """
    record = manifest.data["source"]
    entries = {e["source"]: e for e in manifest.outputs}
    images: dict[str, torch.Tensor] = {}
    if record.get("kind") == "folder":
        root = Path(source_dir or record["root"])
        size = tuple(record["size"])
        for key in keys:
            pixels = load_image(
                root / key,
                channels=record["channels"],
                size=size,
                fit=record["fit"],  # type: ignore[arg-type]
            )
            images[key] = torch.from_numpy(pixels.copy())
    else:
        from cnnkit.data.sources import read_source

        folder = source_dir or record.get("data_dir")
        parts = read_source(record["name"], None if folder is None else Path(folder)).parts
        dataset = parts[record["split"]]
        position = {sample_id: i for i, sample_id in enumerate(dataset.sample_ids())}
        for key in keys:
            if key not in position:
                raise DataError(f"{record['name']}: no sample {key!r} any more")
            images[key] = dataset.images[position[key]]
    for key, image in images.items():
        if _pixels_hash(image) != entries[key]["source_sha256"]:
            raise DataError(
                f"{key}: the source image changed since {manifest.path} was written; its "
                "outputs cannot be regenerated from it"
            )
    return images


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
    sources = source_images(manifest, sorted({e["source"] for e in outputs}), source_dir=source_dir)
    target = Path(out).expanduser() if out is not None else None
    different: list[str] = []
    with ThreadPoolExecutor(max_workers=WRITERS) as writers:
        for first in range(0, len(outputs), BATCH):
            chunk = outputs[first : first + BATCH]
            originals = torch.stack([sources[e["source"]] for e in chunk])
            params = pipeline.params_from_records([e["ops"] for e in chunk], shape)
            pixels = pipeline.apply(originals, params)
            for entry, image in zip(chunk, pixels, strict=True):
                if _pixels_hash(image) != entry["sha256"]:
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
