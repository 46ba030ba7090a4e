"""Shared by the evaluation tests: the report of the small trained run (``trained``, in
tests/conftest.py), made once."""

from __future__ import annotations

import pytest

from cnnkit.evaluate.report import write_report


@pytest.fixture(scope="package")
def report(trained):
    return write_report(trained, device="cpu")
