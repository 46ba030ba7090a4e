"""The training loop: one readable function, written for speed.

In-memory data lives on the training device as one uint8 tensor; each epoch draws one
permutation and cuts batches by indexing it (no per-sample Python, no DataLoader).
Everything else — progress, history, stopping — happens in callbacks.
"""

from __future__ import annotations

import time
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from cnnkit.data.dataset import Dataset
from cnnkit.data.preprocess import Preprocessing
from cnnkit.errors import ConfigError
from cnnkit.inference import loss_and_accuracy
from cnnkit.train.callbacks import Callback, CallbackList, Logs, TrainState
from cnnkit.train.optim import make_optimizer


def fit(
    model: nn.Module,
    *,
    train: Dataset,
    val: Dataset | None = None,
    preprocessing: Preprocessing,
    optimizer: torch.optim.Optimizer | str = "adam",
    lr: float = 1e-3,
    epochs: int = 10,
    batch_size: int = 100,
    callbacks: Sequence[Callback] = (),
    device: torch.device | str = "cpu",
    seed: int = 0,
) -> list[Logs]:
    """Train ``model`` on ``train`` with cross-entropy, validating on ``val`` after each epoch.

    Args:
        model: any ``nn.Module`` mapping ``(N, C, H, W)`` floats to ``(N, K)`` logits.
        train: training data (uint8 images, int64 labels).
        val: optional validation data, evaluated without gradients after each epoch.
        preprocessing: turns uint8 batches into model inputs (see :class:`Preprocessing`).
        optimizer: an optimizer over ``model``'s parameters, or a name (``adam``, ``sgd``).
        lr: learning rate, used when ``optimizer`` is a name.
        epochs: passes over ``train``.
        batch_size: samples per optimizer step; the last batch of an epoch may be smaller.
        callbacks: hooks called around epochs and batches (progress, history, ...).
        device: where the model, the data and the arithmetic live.
        seed: seeds the per-epoch shuffling.

    Returns:
        One logs dict per epoch: ``epoch``, ``loss``, ``accuracy``, ``lr``, ``time``
        and, with ``val``, ``val_loss`` and ``val_accuracy``.
    """
    if epochs < 1 or batch_size < 1:
        raise ConfigError(f"epochs and batch size must be positive, got {epochs} and {batch_size}")
    if len(train) == 0:
        raise ConfigError("the training set is empty")
    device = torch.device(device)
    model.to(device)
    if isinstance(optimizer, str):
        optimizer = make_optimizer(optimizer, model.parameters(), lr=lr)
    # The whole split lives on the device once; batches are views cut by an index tensor.
    images = train.images.to(device)
    labels = train.labels.to(device)
    shuffler = torch.Generator().manual_seed(seed)
    steps = (len(train) + batch_size - 1) // batch_size
    state = TrainState(model=model, epochs=epochs, steps_per_epoch=steps)
    hooks = CallbackList(callbacks)
    hooks.set_state(state)
    hooks.on_train_begin()
    for epoch in range(epochs):
        state.epoch = epoch
        hooks.on_epoch_begin(epoch)
        started = time.perf_counter()
        model.train()
        order = torch.randperm(len(train), generator=shuffler).to(device)
        # running sums stay on the device: no host sync per step
        loss_sum = torch.zeros((), device=device)
        correct = torch.zeros((), device=device, dtype=torch.int64)
        for batch in range(steps):
            index = order[batch * batch_size : (batch + 1) * batch_size]
            inputs = preprocessing(images[index])
            targets = labels[index]
            logits = model(inputs)
            loss = F.cross_entropy(logits, targets)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            loss_sum += loss.detach() * len(index)
            correct += (logits.detach().argmax(1) == targets).sum()
            state.step += 1
            hooks.on_train_batch_end(batch)
        logs: Logs = {
            "epoch": epoch + 1,
            "loss": float(loss_sum) / len(train),
            "accuracy": float(correct) / len(train),
        }
        if val is not None:
            metrics = loss_and_accuracy(model, val, preprocessing=preprocessing, device=device)
            logs["val_loss"], logs["val_accuracy"] = metrics["loss"], metrics["accuracy"]
        logs["lr"] = float(optimizer.param_groups[0]["lr"])
        logs["time"] = time.perf_counter() - started
        state.history.append(logs)
        hooks.on_epoch_end(epoch, logs)
        if state.stop_training:
            break
    hooks.on_train_end()
    return state.history
