"""``augment-manifest.json``: reading it back, checking every field, and finding the source
images it names (:func:`cnnkit.augment.offline.augment_to_folder` writes it)."""

from __future__ import annotations

import hashlib
import os
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from cnnkit.augment.pipeline import Pipeline
from cnnkit.augment.spec import parse_augment
from cnnkit.data.images import FIT_MODES, load_image
from cnnkit.errors import ConfigError, DataError
from cnnkit.fields import MAX_CLASSES, FieldChecker, read_json

MANIFEST = "augment-manifest.json"
FORMAT = "cnnkit-augment/1"


def pixels_hash(image: torch.Tensor) -> str:
    """SHA-256 of a uint8 image's pixels (what the manifest records per output and source)."""
    return hashlib.sha256(image.contiguous().numpy().tobytes()).hexdigest()


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
    missing = DataError(f"{file}: no such manifest; `cnnkit augment` writes {MANIFEST}")
    data = read_json(file, missing, DataError)
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
        if pixels_hash(image) != entries[key]["source_sha256"]:
            raise DataError(
                f"{key}: the source image changed since {manifest.path} was written; its "
                "outputs cannot be regenerated from it"
            )
    return images
