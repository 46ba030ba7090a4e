"""Metrics from fixed predictions agree with scikit-learn's; predictions.csv is complete."""

from __future__ import annotations

import csv
import itertools

import numpy as np
import pytest
import torch
from sklearn import metrics as sk

from cnnkit.errors import DataError
from cnnkit.evaluate.metrics import (
    Predictions,
    compute_metrics,
    most_confused,
    normalize_rows,
    top_k_accuracy,
    write_predictions_csv,
)

CLASSES = ("cat", "dog", "bird", "frog", "ship", "truck", "plane")


@pytest.fixture
def predictions() -> Predictions:
    """600 samples of 7 unbalanced classes, about 60% right; class 'plane' never occurs."""
    rng = np.random.default_rng(7)
    labels = rng.choice(6, size=600, p=[0.4, 0.2, 0.15, 0.1, 0.1, 0.05])
    logits = rng.normal(size=(600, 7)).astype(np.float32)
    logits[np.arange(600), labels] += rng.choice([0.0, 3.0], size=600, p=[0.4, 0.6])
    ids = tuple(f"folder/{CLASSES[y]}/img_{i}.png" for i, y in enumerate(labels))
    return Predictions(torch.from_numpy(logits), torch.from_numpy(labels), CLASSES, ids)


def test_metrics_equal_scikit_learn(predictions) -> None:
    m = compute_metrics(predictions, top_k=3)
    y = predictions.labels.numpy()
    scores = predictions.logits.numpy()
    pred = scores.argmax(1)
    labels = list(range(len(CLASSES)))
    assert m["samples"] == 600
    assert m["accuracy"] == pytest.approx(sk.accuracy_score(y, pred))
    with pytest.warns(UserWarning):  # sklearn warns: 'plane' predicted but never true
        balanced = sk.balanced_accuracy_score(y, pred)
    assert m["balanced_accuracy"] == pytest.approx(balanced)
    assert m["ber"] == pytest.approx(1 - balanced)
    probabilities = predictions.probabilities.double().numpy()
    probabilities /= probabilities.sum(axis=1, keepdims=True)
    assert m["loss"] == pytest.approx(sk.log_loss(y, probabilities, labels=labels), rel=1e-5)
    for k in (1, 3):
        assert m["top_k_accuracy"][str(k)] == pytest.approx(
            sk.top_k_accuracy_score(y, scores, k=k, labels=labels)
        )
    assert m["confusion_matrix"] == sk.confusion_matrix(y, pred, labels=labels).tolist()
    expected = sk.confusion_matrix(y, pred, labels=labels, normalize="true")
    np.testing.assert_allclose(m["confusion_matrix_normalized"], expected, atol=1e-4)
    report = sk.classification_report(
        y, pred, labels=labels, target_names=CLASSES, output_dict=True, zero_division=0
    )
    assert m["report"] == report
    assert m["classes"] == list(CLASSES)


def test_balanced_error_rate_on_a_hand_checked_case() -> None:
    # class a: 8 of 10 right (recall 0.8); class b: 1 of 2 right (recall 0.5)
    labels = torch.tensor([0] * 10 + [1] * 2)
    predicted = torch.tensor([0] * 8 + [1] * 2 + [1, 0])
    logits = torch.nn.functional.one_hot(predicted, 2).float() * 5
    m = compute_metrics(Predictions(logits, labels, ("a", "b"), tuple(map(str, range(12)))))
    assert m["accuracy"] == pytest.approx(9 / 12)
    assert m["balanced_accuracy"] == pytest.approx((0.8 + 0.5) / 2)
    assert m["ber"] == pytest.approx(0.35)
    assert "5" not in m["top_k_accuracy"]  # k larger than the class count is left out


def test_most_confused_pairs_are_the_largest_off_diagonal_cells() -> None:
    matrix = np.array([[50, 3, 0], [9, 40, 1], [0, 9, 20]])
    pairs = most_confused(matrix, ["a", "b", "c"], count=3)
    assert [(p["true"], p["predicted"], p["count"]) for p in pairs] == [
        ("b", "a", 9),
        ("c", "b", 9),
        ("a", "b", 3),
    ]
    assert pairs[1]["rate"] == pytest.approx(9 / 29, abs=1e-4)
    assert most_confused(np.eye(3, dtype=int) * 5, ["a", "b", "c"], count=5) == []


def test_normalize_rows_keeps_empty_rows_at_zero() -> None:
    rows = normalize_rows(np.array([[1, 3], [0, 0]]))
    np.testing.assert_allclose(rows, [[0.25, 0.75], [0.0, 0.0]])


def test_top_k_and_top_losses(predictions) -> None:
    assert top_k_accuracy(predictions.logits, predictions.labels, 7) == 1.0
    worst = predictions.top_losses(5)
    losses = predictions.losses
    assert len(worst) == 5 and float(losses[worst[0]]) == float(losses.max())
    assert all(losses[a] >= losses[b] for a, b in itertools.pairwise(worst))


def test_predictions_csv_has_one_row_per_sample_in_order(predictions, tmp_path) -> None:
    file = tmp_path / "predictions.csv"
    write_predictions_csv(file, predictions)
    with file.open(newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert len(rows) == len(predictions)
    assert list(rows[0]) == ["id", "true", "predicted", "loss", *(f"p_{c}" for c in CLASSES)]
    for i in (0, 123, 599):
        row = rows[i]
        assert row["id"] == predictions.ids[i]
        assert row["true"] == CLASSES[int(predictions.labels[i])]
        assert row["predicted"] == CLASSES[int(predictions.predicted[i])]
        probabilities = [float(row[f"p_{c}"]) for c in CLASSES]
        assert sum(probabilities) == pytest.approx(1.0, abs=1e-4)
        assert max(probabilities) == pytest.approx(float(predictions.probabilities[i].max()))


def test_bad_predictions_are_refused() -> None:
    with pytest.raises(DataError, match="gives 3 outputs but the data has 2 classes"):
        Predictions(torch.zeros(4, 3), torch.zeros(4, dtype=torch.int64), ("a", "b"), ("x",) * 4)
    with pytest.raises(DataError, match="3 sample ids for 4 predictions"):
        Predictions(torch.zeros(4, 2), torch.zeros(4, dtype=torch.int64), ("a", "b"), ("x",) * 3)
    with pytest.raises(DataError, match=r"logits \(N, K\) and labels \(N,\)"):
        Predictions(torch.zeros(4), torch.zeros(4, dtype=torch.int64), ("a", "b"), ("x",) * 4)
    empty = Predictions(torch.zeros(0, 2), torch.zeros(0, dtype=torch.int64), ("a", "b"), ())
    with pytest.raises(DataError, match="the evaluated split is empty"):
        compute_metrics(empty)
