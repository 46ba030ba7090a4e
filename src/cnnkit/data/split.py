"""Seeded, stratified (and optionally group-aware) splits of a dataset, and split files.

A split is a pure function of the labels, the sizes, the seed and — when given — the
groups: samples of one group (one subject, one object photographed many times) always
land in the same part, so near-duplicates of one subject cannot leak from training into
validation or test. Groups come from a regular expression applied to each sample id
(for a folder, the file path): its first capture group, or the whole match, names the
group; a sample it does not match is a group of its own.

A split file (``split.json``, written into every run directory) lists the ids of the
samples of each part, in order. Applying it to the same data gives exactly the same
parts, so a split can be reused by another run (``--split-file runs/<name>``) and a run's
evaluation reads exactly the test set it was measured on. For a folder the ids are stored
relative to the folder, so the file still applies when the folder moves.
"""

from __future__ import annotations

import logging
import os
import re
import warnings
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from cnnkit.atomic import write_json
from cnnkit.data.dataset import Dataset, Splits
from cnnkit.errors import ConfigError, DataError
from cnnkit.fields import FieldChecker, read_json
from cnnkit.run_files import SPLIT_FILE

log = logging.getLogger(__name__)

SPLIT_FORMAT = "cnnkit-split/1"


def held_out_count(size: int | float, n: int) -> int:
    """A count (int) or a fraction (0 < float < 1) of ``n`` as a number of samples (≥ 1)."""
    if isinstance(size, float) and not 0.0 < size < 1.0:
        raise ConfigError(f"a split fraction must be between 0 and 1, got {size}")
    return max(1, round(size * n)) if isinstance(size, float) else int(size)


def stratified_indices(
    labels: np.ndarray,
    size: int | float,
    *,
    seed: int,
    groups: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Split sample indices into (kept, held out), preserving class proportions.

    Args:
        labels: int labels ``(N,)``.
        size: held-out part as a count (int ≥ 1) or a fraction (0 < float < 1).
        seed: the split is a pure function of ``labels``, ``size``, ``groups`` and ``seed``.
        groups: optional int group of each sample ``(N,)``; a group is never divided.
            The held-out size is then approximate (whole groups move).

    Returns:
        Two sorted int64 index arrays that together cover ``0..N-1`` once.
    """
    from sklearn.model_selection import train_test_split

    n = len(labels)
    held = held_out_count(size, n)
    if not 0 < held < n:
        raise ConfigError(f"cannot hold out {held} of {n} samples; choose 1..{n - 1}")
    if groups is not None:
        return _grouped_indices(labels, groups, held, seed)
    counts = np.bincount(labels)
    classes = int((counts > 0).sum())
    stratify = labels if counts[counts > 0].min() >= 2 and classes <= min(held, n - held) else None
    if stratify is None:
        log.warning(
            "too few samples per class to stratify a %d-sample split; splitting at random", held
        )
    kept, out = train_test_split(
        np.arange(n), test_size=held, random_state=seed, shuffle=True, stratify=stratify
    )
    return np.sort(kept), np.sort(out)


def _grouped_indices(
    labels: np.ndarray, groups: np.ndarray, held: int, seed: int
) -> tuple[np.ndarray, np.ndarray]:
    from sklearn.model_selection import StratifiedGroupKFold

    n = len(labels)
    n_groups = len(np.unique(groups))
    folds = max(2, min(n_groups, round(n / held)))
    if n_groups < 2:
        raise ConfigError(
            "all samples fall into one group; a group-aware split needs at least two groups "
            "(check the --group-by pattern)"
        )
    splitter = StratifiedGroupKFold(n_splits=folds, shuffle=True, random_state=seed)
    with warnings.catch_warnings():  # "least populated class has fewer members than n_splits"
        warnings.simplefilter("ignore", UserWarning)
        kept, out = next(splitter.split(np.zeros(n), labels, groups))
    return np.sort(kept), np.sort(out)


def group_ids(ids: Sequence[str], pattern: str) -> np.ndarray:
    """Group number of each sample id: ``pattern``'s first capture group or whole match.

    Raises:
        ConfigError: the pattern is not a valid regular expression, or matches no id.
    """
    try:
        regex = re.compile(pattern)
    except re.error as exc:
        raise ConfigError(
            f"--group-by {pattern!r} is not a valid regular expression ({exc})"
        ) from exc
    keys = []
    unmatched = 0
    for i, sample in enumerate(ids):
        found = regex.search(sample)
        if found is None:
            keys.append(f"\0unmatched/{i}")
            unmatched += 1
        else:
            keys.append(found.group(1) if regex.groups else found.group(0))
    if ids and unmatched == len(ids):
        raise ConfigError(
            f"--group-by {pattern!r} matches none of the {len(ids)} sample ids (e.g. "
            f"{ids[0]!r}); write a pattern whose first (...) group names the group"
        )
    if unmatched:
        log.warning(
            "--group-by matched %d of %d samples; the rest are groups of one",
            len(ids) - unmatched,
            len(ids),
        )
    return np.unique(np.asarray(keys), return_inverse=True)[1]


def hold_out(
    dataset: Dataset,
    size: int | float,
    *,
    seed: int,
    part: str = "validation",
    group_by: str | None = None,
) -> tuple[Dataset, Dataset]:
    """Hold out a stratified (group-aware with ``group_by``) part; returns ``(kept, held)``."""
    groups = group_ids(dataset.sample_ids(), group_by) if group_by else None
    kept, held = stratified_indices(dataset.labels.numpy(), size, seed=seed, groups=groups)
    base = dataset.source.split(" ", 1)[0]
    return (
        dataset.subset(kept, name=f"{base} (train part, seed {seed})"),
        dataset.subset(held, name=f"{base} ({part} part, seed {seed})"),
    )


def split_validation(train: Dataset, size: int | float, *, seed: int) -> tuple[Dataset, Dataset]:
    """Hold out a stratified validation set from ``train``; returns ``(train, val)``."""
    return hold_out(train, size, seed=seed)


# -- split files ----------------------------------------------------------------------------


def _key(sample_id: str, root: Path | None) -> str:
    if root is not None:
        try:
            return Path(sample_id).relative_to(root).as_posix()
        except ValueError:
            pass
    return sample_id


def split_record(
    splits: Splits, *, source: str, root: Path | None = None, **settings: Any
) -> dict[str, Any]:
    """The JSON record of a split: the ids of each part, in order, and how it was made."""
    return {
        "format": SPLIT_FORMAT,
        "source": source,
        "settings": settings,
        "parts": {name: [_key(i, root) for i in ds.sample_ids()] for name, ds in splits.items()},
    }


def write_split_file(path: str | os.PathLike[str], record: Mapping[str, Any]) -> None:
    """Write a split record (see :func:`split_record`) as JSON, atomically.

    Runs of ids that differ only by a consecutive number (``mnist:test/0``,
    ``mnist:test/1``, ...) are stored as ``[prefix, first, stop]`` (``stop`` excluded).
    """
    on_disk = dict(record)
    on_disk["parts"] = {name: _compress(keys) for name, keys in record["parts"].items()}
    write_json(path, on_disk)


_NUMBERED = re.compile(r"(.*?)(0|[1-9][0-9]*)")


def _compress(keys: Sequence[str]) -> list[str | list[Any]]:
    out: list[str | list[Any]] = []
    for key in keys:
        found = _NUMBERED.fullmatch(key)
        last = out[-1] if out else None
        if found and isinstance(last, list) and last[0] == found[1] and last[2] == int(found[2]):
            last[2] += 1
        elif found:
            out.append([found[1], int(found[2]), int(found[2]) + 1])
        else:
            out.append(key)
    return [item[0] + str(item[1]) if isinstance(item, list) and item[2] - item[1] == 1 else item
            for item in out]  # fmt: skip


class SplitFileError(DataError):
    """A split file is unreadable or a field of it is wrong (changed or damaged)."""


MAX_SAMPLES = 100_000_000  # the most sample ids a split file may name
PARTS = ("train", "val", "test")


def read_split_file(path: str | os.PathLike[str], *, samples: int | None = None) -> dict[str, Any]:
    """Read and check a split file; ``path`` may be the file or a run directory holding
    ``split.json``.

    Args:
        path: the file or its run directory.
        samples: how many samples the data holds, if known: the file may name that many
            at most (checked before its ids are expanded).

    Raises:
        ConfigError: no such file. SplitFileError: unreadable, or a field is wrong
            (``<file>: <field> ...``). DataError: more samples than ``samples``.
    """
    file = Path(path)
    if file.is_dir():
        file = file / SPLIT_FILE
    missing = ConfigError(
        f"{file}: no such split file; pass a split.json or a run directory that has one"
    )
    record = read_json(file, missing, SplitFileError, "unreadable split file")
    check = FieldChecker(str(file), SplitFileError, "the split file was changed or damaged")
    check.mapping(record, "the split file")
    check.keys(record, "", required=("format", "parts"), allowed=("source", "settings"))
    if record["format"] != SPLIT_FORMAT:
        check.fail("format", f"is {check.shown(record['format'])}, not {SPLIT_FORMAT!r}")
    if "source" in record:
        check.text(record["source"], "source")
    if "settings" in record:
        check.mapping(record["settings"], "settings")
    parts = record["parts"]
    check.mapping(parts, "parts")
    check.keys(parts, "parts", required=("train",), allowed=PARTS)
    counts = {name: _count(check, items, f"parts.{name}") for name, items in parts.items()}
    total = sum(counts.values())
    if counts["train"] == 0:
        check.fail("parts.train", "is empty")
    if total > MAX_SAMPLES:
        check.fail("parts", f"name {total:,} samples, more than {MAX_SAMPLES:,}")
    if samples is not None and total > samples:  # before the ids are expanded
        raise DataError(
            f"{file}: parts name {total:,} samples but the data holds {samples:,}; the data "
            "changed since the split was made — point --data-dir at the original data, or make "
            "a new split"
        )
    record["parts"] = {name: _expand(items) for name, items in parts.items()}
    record["path"] = str(file)
    return record


def _count(check: FieldChecker, items: Any, field: str) -> int:
    """How many ids a stored part names (runs are ``[prefix, first, stop]``)."""
    check.sequence(items, field)
    count = 0
    for i, item in enumerate(items):
        if isinstance(item, str):
            count += 1
            continue
        where = f"{field}[{i}]"
        if not isinstance(item, list) or len(item) != 3:
            check.fail(where, f"must be an id or [prefix, first, stop], not {check.shown(item)}")
        check.text(item[0], f"{where}[0] (prefix)")
        check.integer(item[1], f"{where}[1] (first)", low=0, high=10**18)
        check.integer(item[2], f"{where}[2] (stop)", low=item[1] + 1, high=10**18)
        count += item[2] - item[1]
    return count


def _expand(items: list[str | list[Any]]) -> list[str]:
    keys: list[str] = []
    for item in items:
        if isinstance(item, str):
            keys.append(item)
        else:
            keys.extend(f"{item[0]}{i}" for i in range(item[1], item[2]))
    return keys


def apply_split_file(
    record: Mapping[str, Any], parts: Mapping[str, Dataset], root: Path | None = None
) -> Splits:
    """The parts named by a split record, taken from the data's own parts.

    Raises:
        DataError: the record and the data do not hold the same samples (the data
            changed), or the record names a sample twice.
    """
    where: dict[str, tuple[Dataset, int]] = {}
    for dataset in parts.values():
        for index, sample in enumerate(dataset.sample_ids()):
            where[_key(sample, root)] = (dataset, index)
    used: set[str] = set()
    out: dict[str, Dataset | None] = {"train": None, "val": None, "test": None}
    label = record.get("path", "split file")
    for name, keys in record["parts"].items():
        if name not in out:
            raise DataError(f"{label}: unknown part {name!r}; expected train, val and test")
        missing = [k for k in keys if k not in where]
        if missing:
            what = f"{len(missing)} sample(s) of its {name} part are not in the data"
            raise _data_changed(label, what, missing[0])
        twice = used.intersection(keys)
        if twice or len(set(keys)) != len(keys):
            raise DataError(f"{label}: sample {sorted(twice or keys)[0]!r} is listed twice")
        used.update(keys)
        if keys:
            out[name] = _take([where[k] for k in keys], f"{name} part of {Path(label).name}")
    left = [k for k in where if k not in used]
    if left:
        what = f"the data holds {len(left)} sample(s) the split file does not name"
        raise _data_changed(label, what, left[0])
    if out["train"] is None:
        raise DataError(f"{label}: the train part is empty")
    return Splits(train=out["train"], val=out["val"], test=out["test"])


def _data_changed(label: str, what: str, example: str) -> DataError:
    """The error for a split file and data that no longer hold the same samples."""
    return DataError(
        f"{label}: {what} (e.g. {example!r}); the data changed since the split was made — "
        "point --data-dir at the original data, or make a new split"
    )


def _take(refs: Sequence[tuple[Dataset, int]], name: str) -> Dataset:
    """The samples ``refs`` (dataset, index) in order, as one Dataset."""
    pieces: list[Dataset] = []
    start = 0
    while start < len(refs):  # runs of consecutive refs into the same dataset
        dataset = refs[start][0]
        stop = start
        while stop < len(refs) and refs[stop][0] is dataset:
            stop += 1
        pieces.append(dataset.subset([i for _, i in refs[start:stop]]))
        start = stop
    base = pieces[0].source.split(" ", 1)[0]
    return Dataset.concat(pieces, source=f"{base} ({name})")


def stratified_sample(
    dataset: Dataset, *, per_class: int | None = None, size: int | None = None, seed: int = 0
) -> Dataset:
    """A seeded, stratified sample of ``dataset``, in the dataset's order.

    Give exactly one of ``per_class`` (that many samples of every class, e.g. 100 per class
    of Fashion-MNIST) or ``size`` (that many samples in total, class proportions kept).
    The sample is a pure function of the data, the count and ``seed``.

    Raises:
        ConfigError: both or neither count given, or a count the data cannot provide.
    """
    if (per_class is None) == (size is None):
        raise ConfigError("give exactly one of per_class and size for a stratified sample")
    labels = dataset.labels.numpy()
    base = dataset.source.split(" ", 1)[0]
    if size is not None:
        if size == len(dataset):
            return dataset
        _, chosen = stratified_indices(labels, int(size), seed=seed)
        return dataset.subset(chosen, name=f"{base} (sample of {size}, seed {seed})")
    if per_class is None or per_class < 1:
        raise ConfigError(f"per_class must be at least 1, got {per_class}")
    rng = np.random.default_rng(seed)
    picks = []
    for label, count in enumerate(np.bincount(labels, minlength=dataset.num_classes)):
        if count < per_class:
            raise ConfigError(
                f"{base}: class {dataset.classes[label]!r} has {count} samples, fewer than "
                f"the {per_class} per class asked for; ask for at most {count}"
            )
        members = np.flatnonzero(labels == label)
        picks.append(rng.permutation(members)[:per_class])
    chosen = np.sort(np.concatenate(picks))
    return dataset.subset(chosen, name=f"{base} ({per_class} per class, seed {seed})")
