"""The augmentation spec: one small format for Python, command-line flags and YAML files.

A step is written as ``NAME`` or ``NAME:SETTINGS``, the settings comma-separated
``key=value`` pairs, or one bare value for the transform's main setting::

    rotate:p=0.9,max=25        (max sets max_left and max_right)
    flip                       (flip_lr, p=0.5)
    translate:2                (up to 2 pixels)
    distort:grid=4,magnitude=3
    mixup:0.2                  (alpha)

Several steps in one string are separated by ``;``. In YAML or JSON a spec is a list of
steps, each such a string or a mapping ``{NAME: {settings}}`` (or ``{NAME: value}``)::

    - rotate: {p: 0.9, max_left: 25, max_right: 25}
    - flip_lr
    - translate: 2

A file (``.yaml``, ``.yml``, ``.json``) holds that list, or a mapping with the list under
``augment``. :func:`parse_augment` accepts any of these, the transform objects themselves,
or a mix; :meth:`Pipeline.describe` writes the canonical strings back.
"""

from __future__ import annotations

import dataclasses
import os
import typing
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from cnnkit.augment.mixing import MIXING
from cnnkit.augment.pipeline import Pipeline
from cnnkit.augment.transforms import PER_IMAGE, Transform
from cnnkit.errors import ConfigError, did_you_mean
from cnnkit.options import parse_value

TRANSFORMS: dict[str, type[Transform]] = {cls.name: cls for cls in (*PER_IMAGE, *MIXING)}
# other names users know the transforms by (Augmentor's, the textbook's, issue 4's recipes)
ALIASES: dict[str, tuple[str, dict[str, Any]]] = {
    "flip": ("flip_lr", {}),
    "mirror": ("flip_lr", {}),
    "flip_left_right": ("flip_lr", {}),
    "flip_top_bottom": ("flip_tb", {}),
    "translate-reflect": ("translate", {"fill": "reflect"}),
    "perspective": ("skew", {}),
    "elastic": ("distort", {}),
    "random_distortion": ("distort", {}),
    "random_erasing": ("erase", {}),
}
SPEC_FILE_SUFFIXES = (".yaml", ".yml", ".json")

Step = str | Mapping[str, Any] | Transform
AugmentSpec = Pipeline | Transform | str | os.PathLike[str] | Mapping[str, Any] | Sequence[Step]


def parse_augment(spec: AugmentSpec | None) -> Pipeline:
    """A :class:`Pipeline` from any spec form (see the module docstring); None -> empty.

    Raises:
        ConfigError: an unknown transform or setting, a bad value, or an unreadable file.
    """
    if spec is None:
        return Pipeline()
    if isinstance(spec, Pipeline):
        return spec
    return Pipeline([step for item in _items(spec) for step in _steps(item)])


def _items(spec: Any) -> list[Any]:
    if isinstance(spec, Transform | Mapping):
        return [spec]
    if isinstance(spec, str | os.PathLike):
        return [spec]
    if isinstance(spec, Sequence):
        return list(spec)
    raise ConfigError(f"cannot read an augmentation spec from {type(spec).__name__}: {spec!r}")


def _steps(item: Any) -> list[Transform]:
    if isinstance(item, Transform):
        return [item]
    if isinstance(item, os.PathLike) or (
        isinstance(item, str) and item.strip().lower().endswith(SPEC_FILE_SUFFIXES)
    ):
        return list(read_spec_file(item).steps)
    if isinstance(item, str):
        return [parse_step(part) for part in item.split(";") if part.strip()]
    if isinstance(item, Mapping):
        if "augment" in item and len(item) == 1:
            return list(parse_augment(item["augment"]).steps)
        return [make_step(str(name), settings) for name, settings in item.items()]
    raise ConfigError(
        f"an augmentation step must be a string like 'rotate:p=0.9,max=25' or a mapping "
        f"like {{rotate: {{max: 25}}}}, got {item!r}"
    )


def read_spec_file(path: str | os.PathLike[str]) -> Pipeline:
    """Read a YAML or JSON augmentation spec file.

    Raises:
        ConfigError: the file is missing, unparsable, or describes no valid pipeline.
    """
    import yaml

    file = Path(path).expanduser()
    try:
        text = file.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(
            f"{file}: no such augmentation spec file; give an existing .yaml/.json file or "
            "the steps themselves, e.g. --augment 'rotate:p=0.9,max=25'"
        ) from None
    except OSError as exc:
        raise ConfigError(f"{file}: cannot read it ({exc})") from exc
    try:
        data = yaml.safe_load(text)  # YAML is a superset of JSON
    except yaml.YAMLError as exc:
        raise ConfigError(f"{file}: not valid YAML/JSON ({exc})") from exc
    if data is None:
        raise ConfigError(f"{file}: empty; list the augmentation steps, e.g. '- rotate: 25'")
    try:
        return parse_augment(data)
    except ConfigError as exc:
        raise ConfigError(f"{file}: {exc}") from exc


def parse_step(text: str) -> Transform:
    """One step from ``NAME[:SETTINGS]``, e.g. ``"rotate:p=0.9,max=25"`` or ``"translate:2"``."""
    name, _, rest = text.strip().partition(":")
    settings: dict[str, Any] = {}
    bare: list[Any] = []
    for part in rest.split(","):
        if not part.strip():
            continue
        key, sep, value = part.partition("=")
        if sep:
            settings[key.strip()] = parse_value(value)
        else:
            bare.append(parse_value(key))
    if len(bare) > 1:
        raise ConfigError(
            f"augmentation {text!r}: only one setting may be given without a name; write the "
            "others as key=value"
        )
    if bare and not settings:
        return make_step(name, bare[0])
    return make_step(name, {**settings, **_bare(name, bare)})


def _bare(name: str, bare: list[Any]) -> dict[str, Any]:
    """A bare value given along with named settings goes to the main setting."""
    if not bare:
        return {}
    cls, _ = _resolve(name.strip())
    if cls.main is None:
        raise ConfigError(f"{cls.name} has no main setting; write its settings as key=value")
    return {cls.main: bare[0]}


def _resolve(name: str) -> tuple[type[Transform], dict[str, Any]]:
    key = name.strip().lower()
    if key in TRANSFORMS:
        return TRANSFORMS[key], {}
    if key in ALIASES:
        real, preset = ALIASES[key]
        return TRANSFORMS[real], dict(preset)
    known = sorted({*TRANSFORMS, *ALIASES})
    hint = did_you_mean(key, known)
    raise ConfigError(
        f"unknown augmentation {name!r}.{hint} Known: {', '.join(sorted(TRANSFORMS))}"
    )


def make_step(name: str, settings: Mapping[str, Any] | Any = None) -> Transform:
    """The transform ``name`` with ``settings`` (a mapping, or one value for its main
    setting, or None for the defaults).

    Raises:
        ConfigError: unknown name or setting, or a value of the wrong kind.
    """
    cls, values = _resolve(name)
    if settings is None:
        settings = {}
    elif not isinstance(settings, Mapping):
        if cls.main is None:
            raise ConfigError(f"{cls.name} has no main setting; give its settings as a mapping")
        settings = {cls.main: settings}
    hints = typing.get_type_hints(cls)
    fields = [f.name for f in dataclasses.fields(cls)]
    for key, value in settings.items():
        key = str(key)
        targets = cls.shorthands.get(key, (key,))
        for target in targets:
            if target not in fields:
                extra = "".join(
                    f", {short} (sets {' and '.join(full)})"
                    for short, full in cls.shorthands.items()
                )
                raise ConfigError(
                    f"{cls.name}: unknown setting {key!r}; it takes {', '.join(fields)}{extra}"
                )
            values[target] = _coerce(cls.name, target, hints[target], value)
    return cls(**values)


def _coerce(op: str, key: str, hint: Any, value: Any) -> Any:
    """Check and convert one setting's value to its declared type."""
    wrong = ConfigError(f"{op}: {key}={value!r} is not a valid value ({_kind(hint)})")
    if isinstance(value, bool) and hint is not bool:
        raise wrong
    if hint is float:
        if not isinstance(value, int | float):
            raise wrong
        return float(value)
    if hint is int:
        if isinstance(value, float) and value.is_integer():
            return int(value)
        if not isinstance(value, int):
            raise wrong
        return value
    if hint is str:
        if isinstance(value, int | float):
            raise wrong
        return str(value)
    if hint == float | str:
        return float(value) if isinstance(value, int | float) else str(value)
    if hint == tuple[int, int] | None:
        return _size(value, wrong)
    raise wrong  # pragma: no cover - every declared setting type is handled above


def _size(value: Any, wrong: ConfigError) -> tuple[int, int] | None:
    if value is None:
        return None
    if isinstance(value, int):
        return (value, value)
    if isinstance(value, str):
        height, _, width = value.lower().partition("x")
        try:
            return (int(height), int(width or height))
        except ValueError:
            raise wrong from None
    if isinstance(value, Sequence) and len(value) == 2 and all(isinstance(v, int) for v in value):
        return (int(value[0]), int(value[1]))
    raise wrong


def _kind(hint: Any) -> str:
    if hint == tuple[int, int] | None:
        return "pixels: 24 or 24x20"
    if hint == float | str:
        return "a number or a word"
    return {float: "a number", int: "a whole number", str: "a word"}.get(hint, str(hint))


def vocabulary() -> list[tuple[str, str, dict[str, Any]]]:
    """Every transform: name, first line of its description, default settings."""
    rows = []
    for name, cls in TRANSFORMS.items():
        doc = (cls.__doc__ or "").strip().split("\n\n")[0]
        rows.append((name, " ".join(doc.split()), cls().settings()))
    return rows
