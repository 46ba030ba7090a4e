"""The data health report behind ``cnnkit data check``.

It looks for what quietly spoils a training run or its measurement:

- **class balance** per split: counts, the imbalance ratio (largest class / smallest),
  classes with no samples at all, classes missing from validation or test;
- **files** (folder sources): unreadable files (corrupt, truncated, not an image) that
  were skipped, hidden files and folders that were ignored, files outside class folders,
  empty class folders, names whose extension lies about the format, the distribution of
  sizes and pixel modes, what was converted (CMYK, 16-bit, alpha, palettes, EXIF
  rotation) and how many images were resized, padded or cropped to the one size;
- **duplicates**: exact duplicates (identical pixels) and near duplicates — images whose
  16x16 grey thumbnails (area averages) differ by a root-mean-square of at most
  :data:`NEAR_RMS` grey levels out of 255 (a re-encoded JPEG, a slightly resized or
  brightened copy); within a split they are warnings, **across splits they are leaks**:
  the model is tested on pictures it was trained on.

Near duplicates are found without comparing all pairs: thumbnails are projected on their
top principal components, candidate pairs come from a k-d tree radius search (a
projection never lengthens a distance, so no pair within the threshold is missed) and
each candidate is then checked on the full thumbnails.
"""

from __future__ import annotations

import hashlib
from collections import Counter, defaultdict
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import torch

from cnnkit.data.dataset import Dataset, Splits
from cnnkit.data.folder import FolderReport
from cnnkit.data.images import GREY_MODES

NEAR_RMS = 4.0  # grey levels (of 255): RMS difference of 16x16 thumbnails
THUMB = 16  # thumbnail side in pixels
COMPONENTS = 10  # principal components used to find candidate near-duplicate pairs
IMBALANCE_WARN = 1.5  # largest / smallest class count above which imbalance is a warning
EXAMPLES = 5  # file names or ids quoted per finding
CHUNK = 4096  # images per block when computing thumbnails


@dataclass(frozen=True)
class Finding:
    """One thing the report found: ``level`` is ``error``, ``warning`` or ``info``."""

    level: str
    topic: str
    message: str
    examples: tuple[str, ...] = ()


@dataclass(frozen=True)
class SplitSummary:
    """Size and class balance of one split."""

    name: str
    samples: int
    class_counts: tuple[int, ...]

    @property
    def imbalance(self) -> float:
        """Largest class count / smallest (infinite when a class has none)."""
        present = [c for c in self.class_counts if c]
        if not present:
            return float("inf")
        smallest = min(self.class_counts)
        return float("inf") if smallest == 0 else max(present) / smallest


@dataclass(frozen=True)
class DuplicateGroup:
    """Samples with identical (``exact``) or nearly identical (``near``) pictures."""

    kind: str
    members: tuple[tuple[str, str], ...]  # (split, sample id)

    @property
    def splits(self) -> tuple[str, ...]:
        return tuple(sorted({split for split, _ in self.members}))

    @property
    def leak(self) -> bool:
        return len(self.splits) > 1


@dataclass
class HealthReport:
    """Everything ``cnnkit data check`` prints; :meth:`to_dict` gives it as JSON."""

    source: str
    classes: tuple[str, ...]
    image_shape: tuple[int, int, int]
    splits: list[SplitSummary]
    findings: list[Finding] = field(default_factory=list)
    duplicates: list[DuplicateGroup] = field(default_factory=list)
    folder: FolderReport | None = None
    near_rms: float = NEAR_RMS

    def count(self, level: str) -> int:
        return sum(1 for f in self.findings if f.level == level)

    def to_dict(self) -> dict[str, Any]:
        folder = None
        if self.folder is not None:
            # not asdict(): it rebuilds a Counter from (key, count) pairs, counting the pairs
            folder = {
                name: dict(value) if isinstance(value, Counter) else value
                for name, value in vars(self.folder).items()
            }
            folder["root"] = str(self.folder.root)
            folder["sizes"] = {f"{h}x{w}": n for (h, w), n in self.folder.sizes.most_common()}
        return {
            "source": self.source,
            "classes": list(self.classes),
            "image_shape": list(self.image_shape),
            "splits": [
                {
                    "name": s.name,
                    "samples": s.samples,
                    "class_counts": list(s.class_counts),
                    "imbalance": None if s.imbalance == float("inf") else round(s.imbalance, 3),
                }
                for s in self.splits
            ],
            "findings": [asdict(f) for f in self.findings],
            "duplicates": [
                {"kind": g.kind, "leak": g.leak, "members": [list(m) for m in g.members]}
                for g in self.duplicates
            ],
            "near_rms": self.near_rms,
            "folder": folder,
        }


def check_health(
    splits: Splits,
    *,
    source: str = "",
    folder: FolderReport | None = None,
    near_rms: float = NEAR_RMS,
) -> HealthReport:
    """Examine ``splits`` (and, for a folder source, what reading it found).

    Args:
        splits: the data as it would be trained on.
        source: the source string, for the report.
        folder: the folder report of a folder source.
        near_rms: near-duplicate threshold (grey levels); 0 looks for exact duplicates only.
    """
    parts = splits.items()
    train = splits.train
    report = HealthReport(
        source=source or train.source,
        classes=train.classes,
        image_shape=train.image_shape,
        splits=[SplitSummary(name, len(ds), tuple(ds.class_counts())) for name, ds in parts],
        folder=folder,
        near_rms=near_rms,
    )
    _balance(report)
    if folder is not None:
        _files(report, folder)
    report.duplicates = find_duplicates(parts, near_rms=near_rms)
    _duplicate_findings(report)
    order = {"error": 0, "warning": 1, "info": 2}
    report.findings.sort(key=lambda f: order[f.level])
    return report


# -- balance --------------------------------------------------------------------------------


def _balance(report: HealthReport) -> None:
    classes = report.classes
    if len(classes) < 2:
        report.findings.append(
            Finding(
                "error", "classes", f"only {len(classes)} class; a classifier needs two or more"
            )
        )
    for summary in report.splits:
        empty = [classes[i] for i, n in enumerate(summary.class_counts) if n == 0]
        if empty and summary.name == "train":
            report.findings.append(
                Finding(
                    "error",
                    "balance",
                    f"train has no samples of {len(empty)} class(es); the model cannot learn "
                    "them — add images or remove the class",
                    tuple(empty[:EXAMPLES]),
                )
            )
        elif empty:
            report.findings.append(
                Finding(
                    "warning",
                    "balance",
                    f"{summary.name} has no samples of {len(empty)} class(es); they are not "
                    "measured",
                    tuple(empty[:EXAMPLES]),
                )
            )
        present = [n for n in summary.class_counts if n]
        if len(present) < 2:
            continue
        ratio = max(present) / min(present)
        if ratio == 1:
            report.findings.append(
                Finding("info", "balance", f"{summary.name}: balanced, {present[0]} per class")
            )
            continue
        smallest = classes[summary.class_counts.index(min(present))]
        largest = classes[summary.class_counts.index(max(present))]
        level = "warning" if ratio > IMBALANCE_WARN else "info"
        advice = "; use balanced accuracy and consider class weights" if level == "warning" else ""
        report.findings.append(
            Finding(
                level,
                "balance",
                f"{summary.name}: imbalance ratio {ratio:.2f} (largest {largest} "
                f"{max(present)}, smallest {smallest} {min(present)}){advice}",
            )
        )


# -- files ----------------------------------------------------------------------------------


def _files(report: HealthReport, folder: FolderReport) -> None:
    """What the folder reader noticed, as findings: one per row below whose test holds."""
    h, w = folder.size
    colour = "grey" if folder.channels == 1 else "RGB"
    other_sizes = sum(n for size, n in folder.sizes.items() if size != folder.size)
    modes = sum(folder.modes.values())
    grey = sum(n for mode, n in folder.modes.items() if mode in GREY_MODES)
    # (test, level, topic, message, examples)
    rows: list[tuple[object, str, str, str, Sequence[str]]] = [
        (
            folder.empty_classes,
            "error",
            "files",
            f"{len(folder.empty_classes)} class folder(s) hold no readable image; training "
            "fails on them (add images, remove the folder, or allow_empty=1)",
            folder.empty_classes[:EXAMPLES],
        ),
        (
            folder.unreadable,
            "warning",
            "files",
            f"{len(folder.unreadable)} unreadable file(s) skipped (corrupt, truncated or "
            "not an image)",
            [f"{path}: {reason}" for path, reason in folder.unreadable[:EXAMPLES]],
        ),
        (
            folder.missing_classes,
            "warning",
            "files",
            f"{len(folder.missing_classes)} class folder(s) missing from a split",
            folder.missing_classes[:EXAMPLES],
        ),
        (
            folder.extension_mismatch,
            "warning",
            "files",
            f"{len(folder.extension_mismatch)} file(s) whose extension does not match "
            "their content (read by content)",
            [f"{p} is {fmt}" for p, fmt in folder.extension_mismatch[:EXAMPLES]],
        ),
        (
            folder.hidden,
            "info",
            "files",
            f"{len(folder.hidden)} hidden file(s)/folder(s) ignored",
            folder.hidden[:EXAMPLES],
        ),
        (
            folder.links_out,
            "warning",
            "files",
            f"{len(folder.links_out)} link(s) to folders outside their class folder not "
            "followed (copy the images in, or link the files themselves)",
            folder.links_out[:EXAMPLES],
        ),
        (
            folder.ignored,
            "info",
            "files",
            f"{len(folder.ignored)} entr(y/ies) outside the class folders ignored",
            folder.ignored[:EXAMPLES],
        ),
        (
            len(folder.sizes) > 1 or folder.fitted,
            "warning",
            "sizes",
            f"{len(folder.sizes)} different sizes; {len(folder.fitted)} image(s) brought to "
            f"{h}x{w} (height x width) by fit={folder.fit} ({other_sizes} of other sizes by "
            "header)",
            [f"{sh}x{sw}: {n}" for (sh, sw), n in folder.sizes.most_common(EXAMPLES)],
        ),
        (
            grey and grey != modes,
            "warning",
            "channels",
            f"grey and colour images mixed ({grey} grey of {modes}); all were made {colour} "
            "(channels=1 or 3 chooses)",
            [f"{mode}: {n}" for mode, n in folder.modes.most_common(EXAMPLES)],
        ),
        (
            folder.conversions,
            "info",
            "channels",
            f"{sum(folder.conversions.values())} image(s) converted to {colour} uint8",
            [f"{what}: {n}" for what, n in folder.conversions.most_common(EXAMPLES)],
        ),
        (
            folder.rotated,
            "info",
            "files",
            f"{len(folder.rotated)} image(s) turned upright by their EXIF orientation",
            folder.rotated[:EXAMPLES],
        ),
    ]
    for found, level, topic, text, examples in rows:
        if found:
            report.findings.append(Finding(level, topic, text, tuple(examples)))


# -- duplicates -----------------------------------------------------------------------------


def find_duplicates(
    parts: Sequence[tuple[str, Dataset]], *, near_rms: float = NEAR_RMS
) -> list[DuplicateGroup]:
    """Groups of exact and near duplicates across all ``parts`` (see the module docstring).

    A group holds either identical pictures (``exact``) or pictures linked by chains of
    near-identical pairs (``near``); a group that spans splits is a leak.
    """
    members = [(name, sample) for name, ds in parts for sample in ds.sample_ids()]
    if len(members) < 2:
        return []
    exact_of = np.empty(len(members), dtype=np.int64)  # first index with the same pixels
    first: dict[bytes, int] = {}
    offset = 0
    for _, ds in parts:
        flat = ds.images.reshape(len(ds), -1).numpy()
        for i in range(len(ds)):
            digest = hashlib.blake2b(flat[i].tobytes(), digest_size=16).digest()
            exact_of[offset + i] = first.setdefault(digest, offset + i)
        offset += len(ds)
    groups: list[DuplicateGroup] = []
    by_first: dict[int, list[int]] = defaultdict(list)
    for i, f in enumerate(exact_of.tolist()):
        by_first[f].append(i)
    for indices in by_first.values():
        if len(indices) > 1:
            groups.append(DuplicateGroup("exact", tuple(members[i] for i in indices)))
    if near_rms > 0:
        unique = np.array(sorted(by_first), dtype=np.int64)  # one sample per distinct picture
        thumbs = _thumbnails(parts)[unique]
        parent = {int(i): int(i) for i in unique}

        def find(i: int) -> int:
            while parent[i] != i:
                parent[i] = parent[parent[i]]
                i = parent[i]
            return i

        for a, b in _near_pairs(thumbs, near_rms):
            ra, rb = find(int(unique[a])), find(int(unique[b]))
            if ra != rb:
                parent[max(ra, rb)] = min(ra, rb)
        clusters: dict[int, list[int]] = defaultdict(list)
        for i in unique.tolist():
            clusters[find(i)].append(i)
        for roots in clusters.values():
            if len(roots) > 1:
                indices = sorted(j for r in roots for j in by_first[r])
                groups.append(DuplicateGroup("near", tuple(members[i] for i in indices)))
    return groups


def _thumbnails(parts: Sequence[tuple[str, Dataset]]) -> np.ndarray:
    """Grey ``THUMB x THUMB`` area-average thumbnails, float32 ``(N, THUMB * THUMB)``."""
    import torch.nn.functional as F

    blocks = []
    for _, ds in parts:
        for start in range(0, len(ds), CHUNK):
            x = ds.images[start : start + CHUNK].to(torch.float32)
            if x.shape[1] == 3:
                x = (x * torch.tensor([0.299, 0.587, 0.114]).view(1, 3, 1, 1)).sum(1, keepdim=True)
            elif x.shape[1] != 1:
                x = x.mean(1, keepdim=True)
            small = F.interpolate(x, size=(THUMB, THUMB), mode="area")
            blocks.append(small.reshape(len(x), -1).numpy())
    return np.concatenate(blocks) if blocks else np.zeros((0, THUMB * THUMB), np.float32)


def _near_pairs(thumbs: np.ndarray, near_rms: float) -> list[tuple[int, int]]:
    """Index pairs whose thumbnails differ by RMS <= ``near_rms`` (exact search)."""
    from scipy.spatial import cKDTree

    n, d = thumbs.shape
    if n < 2:
        return []
    radius = near_rms * np.sqrt(d)  # RMS r over d values <=> Euclidean distance r * sqrt(d)
    data = thumbs.astype(np.float64)
    centred = data - data.mean(axis=0)
    k = min(COMPONENTS, d, n)
    _, vectors = np.linalg.eigh(centred.T @ centred)
    projected = centred @ vectors[:, -k:]
    candidates = cKDTree(projected).query_pairs(radius, output_type="ndarray")
    if len(candidates) == 0:
        return []
    a, b = candidates[:, 0], candidates[:, 1]
    rms = np.sqrt(((data[a] - data[b]) ** 2).mean(axis=1))
    keep = rms <= near_rms
    return list(zip(a[keep].tolist(), b[keep].tolist(), strict=True))


def _duplicate_findings(report: HealthReport) -> None:
    def describe(groups: list[DuplicateGroup]) -> tuple[str, ...]:
        return tuple(
            " = ".join(f"{split}:{_short(sample)}" for split, sample in g.members[:4])
            + (" ..." if len(g.members) > 4 else "")
            for g in groups[:EXAMPLES]
        )

    for kind in ("exact", "near"):
        groups = [g for g in report.duplicates if g.kind == kind]
        leaks = [g for g in groups if g.leak]
        within = [g for g in groups if not g.leak]
        what = "identical" if kind == "exact" else f"near-identical (RMS <= {report.near_rms:g})"
        if leaks:
            report.findings.append(
                Finding(
                    "error" if kind == "exact" else "warning",
                    "leak",
                    f"{len(leaks)} group(s) of {what} images shared between splits: the model "
                    "is measured on pictures it trained on (remove the copies, or use "
                    "--group-by so related pictures stay together)",
                    describe(leaks),
                )
            )
        if within:
            extra = sum(len(g.members) - 1 for g in within)
            report.findings.append(
                Finding(
                    "warning" if kind == "exact" else "info",
                    "duplicates",
                    f"{len(within)} group(s) of {what} images within a split ({extra} extra "
                    "copies)",
                    describe(within),
                )
            )


def _short(sample: str) -> str:
    """The last two path parts of a file id (``cat/001.png``); other ids as they are."""
    parts = sample.replace("\\", "/").split("/")
    return "/".join(parts[-2:]) if sample.startswith("/") and len(parts) > 2 else sample
