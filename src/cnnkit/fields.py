"""Type and range checks of the JSON files cnnkit reads back (run card, split file, augment
manifest). Each failure is one error of the reader's kind naming the file and the field."""

from __future__ import annotations

import json
import math
from collections.abc import Collection
from pathlib import Path
from typing import Any, NoReturn

from cnnkit.errors import CnnkitError

MAX_INPUT_SIDE = 4096  # the largest image height or width a file may declare
MAX_CHANNELS = 64
MAX_CLASSES = 100_000


def read_json(
    file: Path, missing: CnnkitError, error: type[CnnkitError], unreadable: str = "unreadable"
) -> Any:
    """The JSON value in ``file``, before its fields are checked.

    Raises:
        ``missing``: there is no such file.
        ``error``: ``<file>: <unreadable> (<reason>)`` when it cannot be read or is not JSON.
    """
    try:
        return json.loads(file.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise missing from None
    except (OSError, ValueError, RecursionError) as exc:
        raise error(f"{file}: {unreadable} ({exc})") from exc


class FieldChecker:
    """Checks of the values of one JSON file; each failure names the file and the field.

    Args:
        file: the file, as shown in messages.
        error: the error type raised.
        damaged: what the message says after the problem (how the file came to be wrong).
    """

    def __init__(self, file: str, error: type[CnnkitError], damaged: str) -> None:
        self.file = file
        self.error = error
        self.damaged = damaged

    def fail(self, field: str, problem: str) -> NoReturn:
        raise self.error(f"{self.file}: {field} {problem}; {self.damaged}")

    def shown(self, value: Any) -> str:
        text = json.dumps(value) if _is_json(value) else repr(value)
        return text if len(text) <= 60 else text[:57] + "..."

    def mapping(self, value: Any, field: str) -> None:
        if not isinstance(value, dict):
            self.fail(field, f"must be a JSON object, not {self.shown(value)}")

    def keys(
        self, value: dict[str, Any], field: str, *, required: Collection[str], allowed=()
    ) -> None:
        """``value`` holds every required key and no key outside required + allowed."""
        missing = [k for k in required if k not in value]
        if missing:
            self.fail(f"{field}.{missing[0]}" if field else missing[0], "is missing")
        extra = [k for k in value if k not in required and k not in allowed]
        if extra:
            self.fail(f"{field}.{extra[0]}" if field else str(extra[0]), "is not a known field")

    def sequence(self, value: Any, field: str) -> None:
        if not isinstance(value, list):
            self.fail(field, f"must be a list, not {self.shown(value)}")

    def text(self, value: Any, field: str) -> None:
        if not isinstance(value, str):
            self.fail(field, f"must be a string, not {self.shown(value)}")

    def integer(self, value: Any, field: str, *, low: int | None = None, high: int | None = None):
        if not isinstance(value, int) or isinstance(value, bool):
            self.fail(field, f"must be a whole number, not {self.shown(value)}")
        if (low is not None and value < low) or (high is not None and value > high):
            bounds = f"{low if low is not None else '..'}..{high if high is not None else ''}"
            self.fail(field, f"is {self.shown(value)}, out of range {bounds}")

    def number(self, value: Any, field: str, *, low: float | None = None) -> None:
        if not isinstance(value, int | float) or isinstance(value, bool):
            self.fail(field, f"must be a number, not {self.shown(value)}")
        if not math.isfinite(value) or (low is not None and value < low):
            self.fail(field, f"is {self.shown(value)}, not a finite number >= {low or 0}")

    def choice(self, value: Any, field: str, choices: Collection[Any]) -> None:
        if not _is_json(value) or value not in choices or isinstance(value, bool):
            shown = ", ".join(json.dumps(c) for c in choices)
            self.fail(field, f"is {self.shown(value)}, not one of {shown}")

    def shape(self, value: Any, field: str) -> None:
        if not isinstance(value, list) or len(value) != 3:
            self.fail(field, f"must be [channels, height, width], not {self.shown(value)}")
        self.integer(value[0], f"{field}[0] (channels)", low=1, high=MAX_CHANNELS)
        self.integer(value[1], f"{field}[1] (height)", low=1, high=MAX_INPUT_SIDE)
        self.integer(value[2], f"{field}[2] (width)", low=1, high=MAX_INPUT_SIDE)

    def file_name(self, value: str, field: str) -> None:
        if not value or "/" in value or "\\" in value or value in (".", ".."):
            self.fail(field, f"must name a file inside the run folder, not {self.shown(value)}")

    def relative_path(self, value: Any, field: str) -> None:
        """A string path that stays inside the folder it is relative to."""
        self.text(value, field)
        parts = value.replace("\\", "/").split("/")
        if not value or value.startswith(("/", "\\")) or ".." in parts or ":" in parts[0]:
            self.fail(field, f"must be a path inside the folder, not {self.shown(value)}")


def _is_json(value: Any) -> bool:
    try:
        json.dumps(value)
    except (TypeError, ValueError):
        return False
    return True
