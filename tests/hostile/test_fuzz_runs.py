"""Property tests: tampered run cards and checkpoints give only cnnkit errors, in bounded
memory (the address space is capped at 1.5 GB above the process's size while they run, so
an allocation sized by a file fails the test instead of passing unseen)."""

from __future__ import annotations

import contextlib
import copy
import json
import resource
import shutil
from pathlib import Path

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cnnkit.errors import CnnkitError
from cnnkit.predict import Predictor
from cnnkit.train.checkpoint import load_checkpoint
from cnnkit.train.job import resume_training

pytestmark = pytest.mark.usefixtures("single_thread")

HEADROOM = 1536 << 20

SIZES = st.sampled_from([0, 1, -1, 3, 27, 29, 4097, 30000, 2**31, 2**32 - 1, 2**63, 10**30])
JSON_VALUES = st.recursive(
    st.none()
    | st.booleans()
    | SIZES
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(max_size=5),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=3), inner, max_size=3)
    ),
    max_leaves=8,
)
SHAPES = st.lists(SIZES, min_size=0, max_size=4)


@contextlib.contextmanager
def bounded_memory():
    size_kb = next(
        int(line.split()[1])
        for line in Path("/proc/self/status").read_text().splitlines()
        if line.startswith("VmSize:")
    )
    soft, hard = resource.getrlimit(resource.RLIMIT_AS)
    resource.setrlimit(resource.RLIMIT_AS, (size_kb * 1024 + HEADROOM, hard))
    try:
        yield
    finally:
        resource.setrlimit(resource.RLIMIT_AS, (soft, hard))


def paths(card, prefix=()):
    """Every key path in the card (sections, fields, list items)."""
    if isinstance(card, dict):
        for key, value in card.items():
            yield (*prefix, key)
            yield from paths(value, (*prefix, key))
    elif isinstance(card, list):
        for i, value in enumerate(card[:3]):
            yield (*prefix, i)
            yield from paths(value, (*prefix, i))


def put(document, path, value):
    target = document
    for key in path[:-1]:
        target = target[key]
    target[path[-1]] = value


@pytest.fixture(scope="module")
def pristine(trained, tmp_path_factory):
    folder = Path(shutil.copytree(trained.path, tmp_path_factory.mktemp("fuzz") / "run"))
    card = json.loads((folder / "run.json").read_text())
    return folder, card, sorted(paths(card), key=str)


@settings(
    max_examples=80, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(data=st.data())
def test_tampered_run_cards_give_only_cnnkit_errors(pristine, data) -> None:
    folder, card, where = pristine
    tampered = copy.deepcopy(card)
    for _ in range(data.draw(st.integers(1, 3))):
        path = data.draw(st.sampled_from(where))
        with contextlib.suppress(KeyError, IndexError, TypeError):
            value = data.draw(SHAPES if path[-1] == "input_shape" else JSON_VALUES, label=str(path))
            put(tampered, path, value)
    (folder / "run.json").write_text(json.dumps(tampered))
    try:
        with bounded_memory():
            predictor = Predictor(folder, device="cpu")
            predictions = predictor.predict_images(
                torch.zeros((1, *predictor.preprocessing.input_shape), dtype=torch.uint8)
            )
            json.dumps([p.to_dict() for p in predictions], allow_nan=False)
    except CnnkitError:
        pass
    finally:
        (folder / "run.json").write_text(json.dumps(card))


SNAPSHOT_FIELDS = [
    ("format",), ("step",), ("lr_scale",), ("history",), ("summary",), ("partial",),
    ("position",), ("position", "epoch"), ("position", "batch"), ("rng",), ("rng", "torch"),
    ("optimizer",), ("optimizer", "state"), ("optimizer", "param_groups"), ("callbacks",),
    ("scaler",), ("model",),
]  # fmt: skip


@pytest.fixture(scope="module")
def interrupted(trained, tmp_path_factory):
    """The trained run marked interrupted: --resume would finish it from last.pt."""
    folder = Path(shutil.copytree(trained.path, tmp_path_factory.mktemp("fuzz") / "run"))
    card = json.loads((folder / "run.json").read_text())
    card["status"] = "interrupted"
    (folder / "run.json").write_text(json.dumps(card))
    return folder, load_checkpoint(folder / "checkpoints" / "last.pt")


def tensors():
    return st.builds(
        lambda shape, dtype: torch.zeros([min(abs(s), 5) for s in shape], dtype=dtype),
        SHAPES,
        st.sampled_from([torch.uint8, torch.float32, torch.int32, torch.float64]),
    )


@settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(data=st.data())
def test_tampered_checkpoints_give_only_cnnkit_errors(interrupted, data) -> None:
    folder, snapshot = interrupted
    last = folder / "checkpoints" / "last.pt"
    tampered = copy.deepcopy(snapshot)
    path = data.draw(st.sampled_from(SNAPSHOT_FIELDS))
    put(tampered, path, data.draw(JSON_VALUES | tensors(), label=str(path)))
    torch.save(tampered, last)
    before = (folder / "run.json").read_bytes()
    try:
        with bounded_memory():
            resume_training(str(folder))
    except CnnkitError:
        assert json.loads((folder / "run.json").read_bytes()) == json.loads(before)  # put back
    finally:
        torch.save(snapshot, last)
        (folder / "run.json").write_bytes(before)
