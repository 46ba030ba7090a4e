"""The option language of the command line: ``key=value`` settings joined by ``,``.

``--reduce-lr factor=0.5,patience=10,min_delta=1e-4``, ``--model-option init=normal`` and
``--augment rotate:p=0.5,max=15`` all write values the same way; :func:`parse_value` reads
one. Numbers are numbers however they are written (``10``, ``-3``, ``.5``, ``1e-4``,
``1E+3``) — YAML 1.1 alone reads ``1e-4`` as text — then YAML's scalars (``true``,
``null``, ``[32, 64]``), else the text itself.
"""

from __future__ import annotations

from typing import Any

from cnnkit.errors import ConfigError


def parse_value(text: str) -> Any:
    """``"10"`` -> 10, ``"1e-4"`` -> 0.0001, ``"true"`` -> True, ``"normal"`` -> "normal"."""
    import yaml

    text = text.strip()
    for number in (int, float):
        try:
            return number(text)
        except ValueError:
            pass
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError:
        return text


def parse_pairs(pairs: list[str], *, what: str = "option") -> dict[str, Any]:
    """``["init=normal", "rate=0.2"]`` -> ``{"init": "normal", "rate": 0.2}``.

    Raises:
        ConfigError: an item is not ``key=value``.
    """
    options: dict[str, Any] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"{what} {pair!r} must look like key=value")
        options[key.strip()] = parse_value(value)
    return options


def parse_settings(text: str, *, what: str = "option") -> dict[str, Any]:
    """``"factor=0.5,patience=10"`` -> ``{"factor": 0.5, "patience": 10}``."""
    return parse_pairs([part for part in text.split(",") if part.strip()], what=what)
