"""Damaged split files and augment manifests through the real commands: one clear error
naming the file and the field, exit code 1, no traceback, and nothing saved changed."""

from __future__ import annotations

import json
import math
import shutil
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cnnkit.augment.offline import MANIFEST, augment_to_folder, open_source
from cnnkit.augment.spec import parse_augment
from cnnkit.data.split import read_split_file
from cnnkit.errors import CnnkitError
from tests.augment.test_offline import write_folder
from tests.hostile.conftest import cli, snapshot


def _one_clear_error(code: int, out: str, err: str, file: str, message: str) -> None:
    assert code == 1, (out, err)
    assert "Traceback" not in err + out and out == ""
    # one message (wrapped only where it is longer than the terminal), nothing around it
    assert err.startswith("error:") and err.count("error:") == 1 and "\n\n" not in err, err
    text = " ".join(err.split())
    assert file in text and message in text, text


def _set(record: dict, path: str, value) -> None:
    *parents, last = path.split(".")
    for key in parents:
        record = record[int(key) if key.isdigit() else key]
    record[int(last) if last.isdigit() else last] = value


# -- split.json -----------------------------------------------------------------------------

SPLITS = [
    (lambda r: [1, 2], "the split file must be a JSON object, not [1, 2]"),
    (lambda r: {**r, "format": "cnnkit-split/2"}, 'format is "cnnkit-split/2", not'),
    (lambda r: {k: v for k, v in r.items() if k != "parts"}, "parts is missing"),
    (lambda r: {**r, "extra": 1}, "extra is not a known field"),
    (lambda r: {**r, "parts": {**r["parts"], "holdout": []}}, "parts.holdout is not a known"),
    (lambda r: {**r, "parts": {**r["parts"], "train": 7}}, "parts.train must be a list, not 7"),
    (lambda r: {**r, "parts": {**r["parts"], "train": []}}, "parts.train is empty"),
    (lambda r: {**r, "parts": {**r["parts"], "train": [3]}}, "parts.train[0] must be an id or"),
    (
        lambda r: {**r, "parts": {**r["parts"], "train": [["mnist:train/", 0, 10**15]]}},
        "parts name 1,000,000,000,000,",  # refused before a single id is made
    ),
    (
        lambda r: {**r, "parts": {**r["parts"], "train": [["mnist:train/", 0, 10**19]]}},
        "parts.train[0][2] (stop) is 10000000000000000000, out of range",
    ),
    (
        lambda r: {**r, "parts": {**r["parts"], "train": [["mnist:train/", 5, 5]]}},
        "parts.train[0][2] (stop) is 5, out of range 6..",
    ),
    (
        lambda r: {**r, "parts": {**r["parts"], "train": [["mnist:train/", True, 5]]}},
        "parts.train[0][1] (first) must be a whole number, not true",
    ),
    (
        lambda r: {**r, "parts": {**r["parts"], "val": ["mnist:train/0", *r["parts"]["val"][1:]]}},
        "sample 'mnist:train/0' is listed twice",
    ),
]


@pytest.mark.parametrize(("tamper", "message"), SPLITS)
def test_evaluate_refuses_a_tampered_split_file(run_copy, monkeypatch, capsys, tamper, message):
    record = json.loads((run_copy / "split.json").read_text())
    (run_copy / "split.json").write_text(json.dumps(tamper(record)))
    before = snapshot(run_copy)
    out_dir = run_copy.parent / "eval"
    code, out, err = cli(monkeypatch, capsys, "evaluate", str(run_copy), "--out", str(out_dir))
    _one_clear_error(code, out, err, "split.json", message)
    assert snapshot(run_copy) == before
    assert not out_dir.exists()


@pytest.mark.parametrize(("tamper", "message"), [SPLITS[i] for i in (0, 5, 8, 11)])
def test_train_with_a_tampered_split_file(
    run_copy, tiny_mnist_dir, tmp_path, monkeypatch, capsys, tamper, message
):
    record = json.loads((run_copy / "split.json").read_text())
    (run_copy / "split.json").write_text(json.dumps(tamper(record)))
    before = snapshot(run_copy)
    runs = tmp_path / "runs"
    code, _, err = cli(
        monkeypatch, capsys, "train", "--data-dir", str(tiny_mnist_dir), "--split-file",
        str(run_copy), "--runs-dir", str(runs), "--name", "again", "--epochs", "1",
        "--device", "cpu",
    )  # fmt: skip
    _one_clear_error(code, "", err, "split.json", message)
    assert snapshot(run_copy) == before
    assert not (runs / "again" / "weights.safetensors").exists()


def test_an_unreadable_split_file(run_copy, monkeypatch, capsys) -> None:
    (run_copy / "split.json").write_text('{"format": ')
    code, out, err = cli(monkeypatch, capsys, "evaluate", str(run_copy))
    _one_clear_error(code, out, err, "split.json", "unreadable split file")


JSON = st.recursive(
    st.none()
    | st.booleans()
    | st.sampled_from([0, -1, 1, 2**32 - 1, 2**63, 10**30, 0.5, math.inf])
    | st.text(max_size=5),
    lambda inner: (
        st.lists(inner, min_size=1, max_size=3)
        | st.dictionaries(st.text(max_size=5), inner, min_size=1, max_size=3)
    ),
    max_leaves=8,
)


FIELDS = ["format", "parts", "parts.train", "parts.train.0", "parts.train.0.1",
          "parts.train.0.2", "parts.test", "parts.test.0.2", "settings", "source"]  # fmt: skip


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    where=st.sampled_from(FIELDS),
    value=JSON,
)
def test_any_tampered_split_file_is_a_cnnkit_error(tmp_path_factory, where, value) -> None:
    """Types, huge and zero sizes in any field: a cnnkit error or a well-formed record."""
    stored = {
        "format": "cnnkit-split/1",
        "source": "mnist",
        "settings": {},
        "parts": {"train": [["mnist:train/", 0, 3], "mnist:train/9"], "test": [["t/", 0, 2]]},
    }
    try:
        _set(stored, where, value)
    except (TypeError, IndexError, KeyError):
        return
    file = tmp_path_factory.mktemp("split") / "split.json"
    file.write_text(json.dumps(stored))
    try:
        record = read_split_file(file, samples=1000)
    except CnnkitError as exc:
        assert "split.json" in str(exc)
        return
    assert sum(len(ids) for ids in record["parts"].values()) <= 1000
    assert all(isinstance(i, str) for ids in record["parts"].values() for i in ids)


# -- augment-manifest.json --------------------------------------------------------------------


@pytest.fixture(scope="module")
def augmented(tmp_path_factory) -> Path:
    """A folder augmented once (rotate every image), with its manifest."""
    root = tmp_path_factory.mktemp("augment")
    photos = write_folder(root / "photos")
    out = root / "out"
    augment_to_folder(
        open_source(str(photos)), parse_augment("rotate:p=1"), out, per_image=1, preview=False
    )
    return out


def _drop(key: str):
    return lambda m: {k: v for k, v in m.items() if k != key}


def _output(change):
    def tamper(m):
        change(m["outputs"][0])
        return m

    return tamper


MANIFESTS = [
    (lambda m: [1], "the manifest must be a JSON object, not [1]"),
    (lambda m: {**m, "format": "cnnkit-augment/2"}, 'format is "cnnkit-augment/2", not'),
    (_drop("outputs"), "outputs is missing"),
    (lambda m: {**m, "hello": 1}, "hello is not a known field"),
    (lambda m: {**m, "seed": "x"}, 'seed must be a whole number, not "x"'),
    (lambda m: {**m, "pipeline": ["nonsense"]}, "pipeline cannot be rebuilt"),
    (lambda m: {**m, "image_shape": [1, 30000, 30000]}, "image_shape[1] (height) is 30000"),
    (lambda m: {**m, "image_shape": [2, 12, 12]}, "image_shape[0] (channels) is 2"),
    (lambda m: {**m, "classes": []}, "classes names 0 classes"),
    (lambda m: {**m, "source": {**m["source"], "kind": "web"}}, 'source.kind is "web"'),
    (lambda m: {**m, "source": {**m["source"], "size": [9, 9]}}, "source.size is [9, 9]"),
    (lambda m: {**m, "source": {**m["source"], "size": [12.0, 12]}}, "source.size[0] must be a"),
    (lambda m: {**m, "source": {**m["source"], "channels": 1.0}}, "source.channels must be a"),
    (lambda m: {**m, "outputs": {}}, "outputs must be a list, not {}"),
    (_output(lambda e: e.update(file="../../escape.png")), "outputs[0].file must be a path"),
    (_output(lambda e: e.update(file="/tmp/escape.png")), "outputs[0].file must be a path"),
    (_output(lambda e: e.update(source="../../etc/passwd")), "outputs[0].source must be a"),
    (_output(lambda e: e.update(label=99)), "outputs[0].label is 99, out of range 0..2"),
    (_output(lambda e: e.update(label="0")), 'outputs[0].label must be a whole number, not "0"'),
    (_output(lambda e: e.update({"class": "dog"})), 'outputs[0].class is "dog" but label'),
    (_output(lambda e: e.update(sha256="zz")), 'outputs[0].sha256 is "zz", not a SHA-256'),
    (_output(lambda e: e.pop("round")), "outputs[0].round is missing"),
    (_output(lambda e: e.update(ops=[{"step": 5, "op": "rotate"}])), "outputs[0].ops cannot be"),
    (_output(lambda e: e["ops"][0].update(angle="x")), "outputs[0].ops cannot be replayed"),
    (_output(lambda e: e["ops"][0].update(angle=[1, 2, 3])), "outputs[0].ops cannot be"),
    (_output(lambda e: e["ops"][0].update(angle=math.nan)), "outputs[0].ops holds a angle"),
    (_output(lambda e: e.update(ops=[7])), "outputs[0].ops[0] must be a JSON object, not 7"),
    (
        lambda m: {**m, "outputs": [m["outputs"][0], m["outputs"][0]]},
        "outputs[1].file",
    ),
]


@pytest.mark.parametrize(("tamper", "message"), MANIFESTS)
def test_regenerate_refuses_a_tampered_manifest(
    augmented, tmp_path, monkeypatch, capsys, tamper, message
) -> None:
    folder = Path(shutil.copytree(augmented, tmp_path / "out"))
    manifest = json.loads((folder / MANIFEST).read_text())
    (folder / MANIFEST).write_text(json.dumps(tamper(manifest)))
    before = snapshot(tmp_path)
    target = tmp_path / "again"
    code, out, err = cli(
        monkeypatch, capsys, "augment", "--regenerate", str(folder / MANIFEST), "--out", str(target)
    )
    _one_clear_error(code, out, err, MANIFEST, message)
    assert snapshot(tmp_path) == before
    assert not target.exists() and not (tmp_path.parent / "escape.png").exists()


def test_the_untampered_manifest_regenerates(augmented, tmp_path, monkeypatch, capsys) -> None:
    code, out, err = cli(
        monkeypatch, capsys, "augment", "--regenerate", str(augmented), "--out", str(tmp_path)
    )
    assert code == 0, err
    assert "8 outputs regenerated" in out and "8 identical" in out


@pytest.mark.parametrize(("tamper", "message"), [SPLITS[i] for i in (2, 6)])
def test_resume_with_a_tampered_split_file(run_copy, monkeypatch, capsys, tamper, message):
    record = json.loads((run_copy / "split.json").read_text())
    (run_copy / "split.json").write_text(json.dumps(tamper(record)))
    before = snapshot(run_copy)
    code, _, err = cli(monkeypatch, capsys, "train", "--resume", str(run_copy), "--epochs", "2")
    text = " ".join(err.split())
    _one_clear_error(code, "", err, "split.json", message)
    assert "differs from the data" not in text
    assert snapshot(run_copy) == before  # the card is put back as it was
