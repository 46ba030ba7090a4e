"""Classic classifiers on top of backbone features: the textbook's "cut off the top" recipe.

Each head is a scikit-learn pipeline; the linear and kernel ones standardise the features
first (their regularisation assumes comparable scales). Names:

- ``logreg`` — multinomial logistic regression;
- ``svm`` — support vector machine, RBF kernel;
- ``rf`` — random forest of 300 trees;
- ``mlp`` — one hidden layer of 256 ReLU units, Adam, early stopping.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import torch

from cnnkit.errors import ConfigError, did_you_mean

HEADS: dict[str, str] = {
    "logreg": "logistic regression (standardised features)",
    "svm": "SVM with an RBF kernel (standardised features)",
    "rf": "random forest, 300 trees",
    "mlp": "MLP, one hidden layer of 256 ReLU units, early stopping",
}


def _builders(seed: int) -> dict[str, Callable[[], Any]]:
    from sklearn.ensemble import RandomForestClassifier
    from sklearn.linear_model import LogisticRegression
    from sklearn.neural_network import MLPClassifier
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler
    from sklearn.svm import SVC

    return {
        "logreg": lambda: make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000)),
        "svm": lambda: make_pipeline(StandardScaler(), SVC(kernel="rbf", random_state=seed)),
        "rf": lambda: RandomForestClassifier(n_estimators=300, random_state=seed),
        "mlp": lambda: make_pipeline(
            StandardScaler(),
            MLPClassifier(
                hidden_layer_sizes=(256,),
                alpha=1e-3,
                early_stopping=True,
                max_iter=500,
                random_state=seed,
            ),
        ),
    }


def parse_heads(text: str) -> list[str]:
    """``"logreg,svm"`` -> ``["logreg", "svm"]``, each checked by :func:`check_head`."""
    names = [name.strip() for name in text.split(",") if name.strip()]
    if not names:
        raise ConfigError(f"no head named in {text!r}; choose from {', '.join(HEADS)}")
    for name in names:
        check_head(name)
    return names


def check_head(name: str) -> None:
    """Raise ConfigError (with a did-you-mean) when ``name`` is not a known head."""
    if name not in HEADS:
        hint = did_you_mean(name, HEADS, cutoff=0.4)
        raise ConfigError(
            f"unknown head {name!r}.{hint} Heads: "
            + ", ".join(f"{key} ({text})" for key, text in HEADS.items())
        )


def make_head(name: str, *, seed: int = 0) -> Any:
    """A fresh, unfitted scikit-learn classifier for head ``name``."""
    check_head(name)
    return _builders(seed)[name]()


def fit_head(name: str, features: torch.Tensor, labels: torch.Tensor, *, seed: int = 0) -> Any:
    """Fit head ``name`` on features ``(N, D)`` and labels ``(N,)``; returns the fitted head."""
    head = make_head(name, seed=seed)
    head.fit(features.numpy(), labels.numpy())
    return head


def score_head(head: Any, features: torch.Tensor, labels: torch.Tensor) -> dict[str, float]:
    """``accuracy`` and ``balanced_accuracy`` of a fitted head on ``features``."""
    from sklearn.metrics import accuracy_score, balanced_accuracy_score

    predicted = np.asarray(head.predict(features.numpy()))
    truth = labels.numpy()
    return {
        "accuracy": float(accuracy_score(truth, predicted)),
        "balanced_accuracy": float(balanced_accuracy_score(truth, predicted)),
    }
