"""The exceptions cnnkit raises. Every message says what is wrong and how to fix it."""

from __future__ import annotations

import difflib
from collections.abc import Collection, Iterable


class CnnkitError(Exception):
    """Base class of every error cnnkit raises on purpose."""


class ConfigError(CnnkitError):
    """An argument, option or configuration value is invalid."""


class DataError(CnnkitError):
    """A data file or dataset is malformed, inconsistent or unusable."""


class DataNotFoundError(DataError):
    """A dataset is not on this machine; the message says where it looked and how to get it."""


class DownloadError(DataError):
    """A download failed or its content did not match the expected checksum."""


class ModelError(CnnkitError):
    """A model name, spec or shape is invalid."""


class RunError(CnnkitError):
    """A run directory is missing, incomplete or inconsistent."""


class TrainingError(CnnkitError):
    """Training cannot continue (for example the loss became NaN)."""


class TrainingInterrupted(KeyboardInterrupt):
    """Ctrl-C stopped training at a consistent point (after a resumable checkpoint, if asked).

    A KeyboardInterrupt, not a CnnkitError, so code that handles Ctrl-C still sees one.

    Attributes:
        history: the per-epoch logs of the epochs that finished.
        training: the decisions recorded so far (``interrupted`` is True).
        run_path: the run directory to resume, when a training job was interrupted.
        resume: the command that continues it (``cnnkit train --resume RUN``), if any.
    """

    run_path: str | None = None
    resume: str | None = None

    def __init__(self, history: list[dict[str, float]], training: dict[str, object]) -> None:
        super().__init__("training interrupted")
        self.history = history
        self.training = training


def did_you_mean(name: object, choices: Iterable[str], *, n: int = 1, cutoff: float = 0.6) -> str:
    """`` Did you mean 'a' or 'b'?`` for the choices closest to ``name``, or ``""``: the hint
    that unknown-name errors put after their first sentence."""
    close = difflib.get_close_matches(str(name), list(choices), n=n, cutoff=cutoff)
    return f" Did you mean {' or '.join(repr(c) for c in close)}?" if close else ""


def unknown_name(
    error: type[CnnkitError], kind: str, name: str, known: Collection[str], listing: str, *, n: int
) -> CnnkitError:
    """The error for a name missing from a table the CLI lists: ``unknown <kind> '<name>'.
    Did you mean ...? `cnnkit <listing>` lists the <count> <listing>.``"""
    return error(
        f"unknown {kind} {name!r}.{did_you_mean(name, known, n=n)} `cnnkit {listing}` lists "
        f"the {len(known)} {listing}."
    )
