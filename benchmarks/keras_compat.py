"""Benchmark: the textbooks' Keras programs under real Keras 3 and under cnnkit.keras.

Each program below is written once, as the source's listings write it, with ``KERAS`` where
the import names the framework; the only change between the two runs is that word (``keras``
for Keras 3 on TensorFlow, ``cnnkit.keras`` for cnnkit). Each run is a fresh Python process
that imports its framework, then runs the program (timed: data preparation, model, fit,
evaluate, predict); the test accuracy is the same top-1 count for both, from ``predict``.

Keras 3 + TensorFlow is never a cnnkit dependency: install it into a separate virtual
environment and point ``--keras-python`` at it::

    python3 -m venv /work/kerasvenv
    /work/kerasvenv/bin/pip install keras tensorflow-cpu scikit-learn
    ./run python benchmarks/keras_compat.py --keras-python /work/kerasvenv/bin/python

The machine is offline, so Keras's ``load_data`` (which downloads) is given the same arrays
cnnkit's ``load_data`` returns, from a file this script writes before the runs.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

from common import describe_machine, load_average, markdown_table, median, write_section

# -- the programs ---------------------------------------------------------------------------------

MINIMAL = """
import numpy as np
from KERAS.datasets import mnist
from KERAS.models import Sequential
from KERAS.layers import Dense
from KERAS.utils import to_categorical

(x_train, y_train), (x_test, y_test) = mnist.load_data()
x_train = x_train[:N_TRAIN].reshape(-1, 784).astype("float32") / 255
x_test = x_test[:N_TEST].reshape(-1, 784).astype("float32") / 255
y_train = to_categorical(y_train[:N_TRAIN], num_classes=10)
y_test = to_categorical(y_test[:N_TEST], num_classes=10)

model = Sequential()
model.add(Dense(10, activation="sigmoid", input_shape=(784,)))
model.summary()
model.compile(loss="binary_crossentropy", optimizer="sgd", metrics=["accuracy"])
model.fit(x_train, y_train, batch_size=100, epochs=EPOCHS, verbose=VERBOSE)
test_loss, test_acc = model.evaluate(x_test, y_test, verbose=0)
predictions = model.predict(x_test, verbose=0)
test_accuracy = float(np.mean(predictions.argmax(axis=1) == y_test.argmax(axis=1)))
"""

LENET = """
import numpy as np
from KERAS.datasets import mnist
from KERAS.models import Sequential
from KERAS.layers import Conv2D, Dense, Flatten, MaxPooling2D, Reshape
from KERAS.utils import to_categorical

(x_train, y_train), (x_test, y_test) = mnist.load_data()
x_train = x_train[:N_TRAIN].reshape(-1, 784).astype("float32") / 255
x_test = x_test[:N_TEST].reshape(-1, 784).astype("float32") / 255
y_train = to_categorical(y_train[:N_TRAIN], 10)
y_test = to_categorical(y_test[:N_TEST], 10)

model = Sequential()
model.add(Reshape((28, 28, 1), input_shape=(784,)))
model.add(Conv2D(32, (5, 5), padding="SAME", activation="relu"))
model.add(MaxPooling2D(pool_size=(2, 2)))
model.add(Conv2D(64, (5, 5), padding="SAME", activation="relu"))
model.add(MaxPooling2D(pool_size=(2, 2)))
model.add(Flatten())
model.add(Dense(1024, activation="relu"))
model.add(Dense(10, activation="softmax"))
model.summary()
model.compile(loss="categorical_crossentropy", optimizer="sgd", metrics=["accuracy"])
model.fit(x_train, y_train, batch_size=100, epochs=EPOCHS, verbose=VERBOSE)
test_loss, test_acc = model.evaluate(x_test, y_test, verbose=0)
predictions = model.predict(x_test, verbose=0)
test_accuracy = float(np.mean(predictions.argmax(axis=1) == y_test.argmax(axis=1)))
"""

BATCHNORM = """
import numpy as np
from sklearn.metrics import balanced_accuracy_score, classification_report, confusion_matrix
from KERAS import Input, Model
from KERAS.callbacks import EarlyStopping, ReduceLROnPlateau
from KERAS.datasets import mnist
from KERAS.layers import (Activation, BatchNormalization, Conv2D, Dense, Dropout, Flatten,
                          MaxPooling2D)
from KERAS.optimizers import RMSprop
from KERAS.utils import to_categorical

(x_train, y_train), (x_test, y_test) = mnist.load_data()
x_train = x_train[:N_TRAIN].reshape(-1, 28, 28, 1).astype("float32") / 255
x_test = x_test[:N_TEST].reshape(-1, 28, 28, 1).astype("float32") / 255
y_train = to_categorical(y_train[:N_TRAIN], 10)
y_test = to_categorical(y_test[:N_TEST], 10)

inputs = Input(shape=(28, 28, 1))
x = Conv2D(32, (3, 3), padding="same")(inputs)
x = BatchNormalization()(x)
x = Activation("relu")(x)
x = MaxPooling2D((2, 2))(x)
x = Dropout(0.25)(x)
x = Conv2D(64, (3, 3), padding="same")(x)
x = BatchNormalization()(x)
x = Activation("relu")(x)
x = MaxPooling2D((2, 2))(x)
x = Dropout(0.25)(x)
x = Flatten()(x)
x = Dense(128, activation="relu")(x)
x = Dropout(0.5)(x)
outputs = Dense(10, activation="softmax")(x)
model = Model(inputs=inputs, outputs=outputs)
model.summary()
model.compile(optimizer=RMSprop(learning_rate=0.001), loss="categorical_crossentropy",
              metrics=["accuracy"])
callbacks = [
    ReduceLROnPlateau(monitor="val_loss", factor=0.5, patience=1, min_lr=1e-5, verbose=1),
    EarlyStopping(monitor="val_loss", min_delta=1e-4, patience=2, verbose=1,
                  restore_best_weights=True),
]
hist = model.fit(x_train, y_train, batch_size=128, epochs=EPOCHS, validation_split=0.1,
                 callbacks=callbacks, verbose=VERBOSE)
print("val_accuracy per epoch:", [round(v, 4) for v in hist.history["val_accuracy"]])
model.save_weights(WEIGHTS)
model.load_weights(WEIGHTS)
y_pred = model.predict(x_test, verbose=0).argmax(axis=1)
y_true = y_test.argmax(axis=1)
print(classification_report(y_true, y_pred, digits=4))
print(confusion_matrix(y_true, y_pred))
print("balanced accuracy:", balanced_accuracy_score(y_true, y_pred))
test_accuracy = float(np.mean(y_pred == y_true))
"""

VIDEO = """
import numpy as np
import KERAS as keras
from KERAS import layers

(x_train, y_train), (x_test, y_test) = keras.datasets.fashion_mnist.load_data()
x_train = x_train[:N_TRAIN].astype("float32") / 255.0
x_test = x_test[:N_TEST].astype("float32") / 255.0
y_train, y_test = y_train[:N_TRAIN], y_test[:N_TEST]

# Sequential API
model = keras.Sequential(
    [
        keras.Input(shape=(28, 28)),
        layers.Flatten(),
        layers.Dense(512, activation="relu"),
        layers.Dense(256, activation="relu"),
        layers.Dense(10),
    ]
)
model.compile(
    loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
    optimizer=keras.optimizers.Adam(learning_rate=0.001),
    metrics=["accuracy"],
)
model.fit(x_train, y_train, batch_size=32, epochs=EPOCHS, verbose=2)
model.evaluate(x_test, y_test, batch_size=32, verbose=2)

# Functional API
inputs = keras.Input(shape=(28, 28))
x = layers.Flatten()(inputs)
x = layers.Dense(512)(x)
x = keras.activations.relu(x)
x = layers.Dense(256, activation="relu")(x)
outputs = layers.Dense(10)(x)
model = keras.Model(inputs=inputs, outputs=outputs)
model.compile(
    loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
    optimizer=keras.optimizers.Adam(learning_rate=0.001),
    metrics=["accuracy"],
)
model.fit(x_train, y_train, batch_size=32, epochs=EPOCHS, verbose=2)
model.evaluate(x_test, y_test, batch_size=32, verbose=2)
test_accuracy = float(np.mean(model.predict(x_test, verbose=0).argmax(axis=1) == y_test))
"""

#: name -> (program, settings for the benchmark run: samples and epochs)
PROGRAMS = {
    "minimal (Dense sigmoid + binary CE, SGD)": (MINIMAL, {"N_TRAIN": 60000, "EPOCHS": 5}),
    "LeNet on flat 784 vectors (Reshape, SAME, softmax, SGD)": (
        LENET,
        {"N_TRAIN": 12000, "EPOCHS": 2},
    ),
    "BatchNorm/Dropout functional net (RMSprop, callbacks, sklearn)": (
        BATCHNORM,
        {"N_TRAIN": 12000, "EPOCHS": 4},
    ),
    "video lesson: Sequential + functional MLPs (from_logits, verbose=2)": (
        VIDEO,
        {"N_TRAIN": 20000, "EPOCHS": 3},
    ),
}


def program_text(program: str, package: str, settings: dict[str, object]) -> str:
    """The runnable program: the settings, then the listing with its import swapped."""
    header = "".join(f"{key} = {value!r}\n" for key, value in settings.items())
    return header + textwrap.dedent(program).replace("KERAS", package)


# -- running ------------------------------------------------------------------------------------

PRELUDE = """
import json, os, sys, time
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
import numpy as np
import {package} as framework
if {patch}:  # offline: Keras's downloads replaced by the arrays cnnkit's load_data gave
    _data = np.load({data!r})
    def _loader(name):
        def load_data(*args, **kwargs):
            return ((_data[name + "_x_train"], _data[name + "_y_train"]),
                    (_data[name + "_x_test"], _data[name + "_y_test"]))
        return load_data
    framework.datasets.mnist.load_data = _loader("mnist")
    framework.datasets.fashion_mnist.load_data = _loader("fashion_mnist")
_program = open({path!r}).read()
_started = time.perf_counter()
_scope = {{"__name__": "__main__"}}
exec(compile(_program, "listing", "exec"), _scope)
print("RESULT " + json.dumps({{"seconds": time.perf_counter() - _started,
                              "test_accuracy": _scope["test_accuracy"]}}))
"""


def write_data(path: Path) -> None:
    """The arrays both frameworks' ``load_data`` return, from cnnkit's sources."""
    import numpy as np

    from cnnkit.keras.datasets import fashion_mnist, mnist

    arrays = {}
    for name, module in (("mnist", mnist), ("fashion_mnist", fashion_mnist)):
        (x_train, y_train), (x_test, y_test) = module.load_data()
        arrays.update(
            {
                f"{name}_x_train": x_train,
                f"{name}_y_train": y_train,
                f"{name}_x_test": x_test,
                f"{name}_y_test": y_test,
            }
        )
    np.savez(path, **arrays)


def run_once(
    python: str, package: str, text: str, workdir: Path, data: Path, threads: int | None
) -> dict:
    listing = workdir / "listing.py"
    listing.write_text(text)
    script = PRELUDE.format(
        package=package, patch=package == "keras", data=str(data), path=str(listing)
    )
    env = dict(os.environ)
    if threads:  # both frameworks' thread pools: torch (OpenMP) and TensorFlow
        for key in ("OMP_NUM_THREADS", "TF_NUM_INTRAOP_THREADS", "TF_NUM_INTEROP_THREADS"):
            env[key] = str(threads)
    started = time.perf_counter()
    done = subprocess.run(
        [python, "-c", script], capture_output=True, text=True, cwd=workdir, timeout=1800, env=env
    )
    process_seconds = time.perf_counter() - started
    lines = [line for line in done.stdout.splitlines() if line.startswith("RESULT ")]
    if done.returncode != 0 or not lines:
        sys.stderr.write(done.stdout[-3000:] + done.stderr[-3000:])
        raise SystemExit(f"{package} failed on the listing (exit {done.returncode})")
    sys.stdout.write(done.stdout)
    return {**json.loads(lines[-1][len("RESULT ") :]), "process_seconds": process_seconds}


FIXED = {"N_TEST": 10000, "VERBOSE": 2}  # every program: the whole test set, Keras's lines


def row(name: str, results: dict) -> list[str]:
    """One table row: medians over the repeats of each framework."""

    def med(package: str, key: str) -> float:
        return median([r[key] for r in results[package]])

    keras_s, ours_s = med("keras", "seconds"), med("cnnkit.keras", "seconds")
    keras_p, ours_p = med("keras", "process_seconds"), med("cnnkit.keras", "process_seconds")
    return [
        f"{name} ({len(results['keras'])} runs each)",
        results["size"],
        f"{keras_s:.1f}",
        f"{ours_s:.1f}",
        f"{ours_s / keras_s:.2f}",
        f"{keras_p:.1f}",
        f"{ours_p:.1f}",
        f"{ours_p / keras_p:.2f}",
        f"{med('keras', 'test_accuracy'):.4f}",
        f"{med('cnnkit.keras', 'test_accuracy'):.4f}",
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--keras-python", required=True, help="python of a Keras 3 + TF venv")
    parser.add_argument("--repeats", type=int, default=1, help="runs per program and framework")
    parser.add_argument(
        "--threads",
        type=int,
        help="threads for both frameworks (default: theirs); 1 is steadier on a shared machine",
    )
    parser.add_argument("--only", help="run only programs whose name contains this")
    parser.add_argument(
        "--merge",
        type=Path,
        help="keep each program's runs in this JSON file and tabulate every program in it "
        "(to run the programs in separate chunks, e.g. with --only)",
    )
    parser.add_argument("--no-write", action="store_true", help="do not update RESULTS.md")
    parser.add_argument(
        "--quick", action="store_true", help="1,000 samples, 1 epoch: check both run (no write)"
    )
    args = parser.parse_args()
    machine = describe_machine()
    runs: dict[str, dict] = {}
    if args.merge and args.merge.is_file():
        runs = json.loads(args.merge.read_text())
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        data = workdir / "data.npz"
        write_data(data)
        for name, (program, settings) in PROGRAMS.items():
            if args.only and args.only not in name:
                continue
            results: dict[str, list[dict]] = {"keras": [], "cnnkit.keras": []}
            full = {**settings, **FIXED, "WEIGHTS": str(workdir / "w.weights.h5")}
            if args.quick:
                full.update(N_TRAIN=1000, EPOCHS=1, N_TEST=1000)
            for _ in range(args.repeats):
                for package, python in (
                    ("keras", args.keras_python),
                    ("cnnkit.keras", sys.executable),
                ):
                    print(f"\n== {name} :: {package} ==", flush=True)
                    text = program_text(program, package, full)
                    results[package].append(
                        run_once(python, package, text, workdir, data, args.threads)
                    )
            runs[name] = {**results, "size": f"{full['N_TRAIN']:,} x {full['EPOCHS']}"}
            if args.merge and not args.quick:
                args.merge.write_text(json.dumps(runs, indent=1))
    rows = [row(name, runs[name]) for name in PROGRAMS if name in runs]
    table = markdown_table(
        [
            "program",
            "train samples x epochs",
            "Keras 3/TF s",
            "cnnkit.keras s",
            "time ratio",
            "whole process: Keras s",
            "cnnkit s",
            "ratio",
            "Keras test acc",
            "cnnkit test acc",
        ],
        rows,
    )
    print("\n" + table)
    if not args.no_write and not args.quick:
        threads = f" --threads {args.threads}" if args.threads else ""
        chunks = " --merge FILE (the programs run in turn with --only)" if args.merge else ""
        command = (
            f"./run python benchmarks/keras_compat.py --keras-python ... --repeats {args.repeats}"
            + threads
            + chunks
        )
        body = (
            f"{machine}; load average at the end: {load_average()}"
            + (
                " (when the table was written; each chunk ran under the shared CPU lock)"
                if chunks
                else ""
            )
            + ".\n\n"
            f"`{command}`: each listing run unchanged but for its import, in a fresh "
            "process per run (seconds: the program after the framework's import; whole "
            "process: from starting Python to its exit, imports included; medians over the "
            "repeats); test accuracy: top-1 of `predict` on the 10,000 test images.\n\n" + table
        )
        threads_said = (
            f"each framework on {args.threads} thread(s)"
            if args.threads
            else "each framework with its default threads"
        )
        write_section(
            "keras_compat" + (f"_threads{args.threads}" if args.threads else ""),
            f"Keras 3 (TensorFlow) vs cnnkit.keras on the textbook listings ({threads_said})",
            body,
        )


if __name__ == "__main__":
    main()
