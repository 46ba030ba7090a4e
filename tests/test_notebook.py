"""What a Jupyter notebook shows: figures inline, short reprs, HTML tables, a live bar.

The last test executes a real notebook in a real IPython kernel (nbclient) and reads what
Jupyter would render from the outputs it saved.
"""

from __future__ import annotations

import base64
import io
import json

import numpy as np
import pytest
import torch
from PIL import Image

from cnnkit.data.dataset import Dataset, Splits
from cnnkit.data.pictures import plot_class_examples
from cnnkit.evaluate.plots import plot_confusion_matrix
from cnnkit.figure import InlineFigure
from cnnkit.layers.summary import summary
from cnnkit.models.registry import build_model
from cnnkit.notebook import html_table


def test_figures_carry_a_png_for_jupyter_and_scripts_stay_unaffected() -> None:
    import matplotlib

    backend = matplotlib.get_backend()
    figure = plot_confusion_matrix(np.array([[5, 1], [2, 7]]), ["cat", "dog"])
    assert isinstance(figure, InlineFigure)
    png = Image.open(io.BytesIO(figure._repr_png_()))
    assert png.format == "PNG" and png.width > 300 and png.height > 300
    assert matplotlib.get_backend() == backend  # no global backend switch
    data = Dataset(
        images=torch.zeros(4, 1, 8, 8, dtype=torch.uint8),
        labels=torch.tensor([0, 1, 0, 1]),
        classes=("a", "b"),
    )
    assert isinstance(plot_class_examples(data), InlineFigure)


def test_dataset_and_splits_repr_is_short_and_never_the_pixels(mnist_parts) -> None:
    train = mnist_parts["train"]
    text = repr(train)
    assert len(text) < 200 and "tensor" not in text
    assert "60,000 images 1x28x28 uint8, 10 classes (0, 1, 2, 3, ..., 9)" in text
    html = train._repr_html_()
    assert "<table>" in html and "5,923" in html  # class 0's count
    splits = Splits(train=train.subset(range(100)), val=None, test=mnist_parts["test"])
    assert repr(splits).startswith("<Splits train 100, test 10,000: 1x28x28 uint8")
    assert "<th>split</th>" in splits._repr_html_()


def test_summary_prints_its_table_once_and_shows_html_in_notebooks() -> None:
    result = summary(build_model("lenet"))
    text = str(result)
    assert text.count("Layer (type)") == 1 and "Total params: 3,255,914" in text
    assert repr(result) == (
        "<ModelSummary 'lenet': input (None, 1, 28, 28), 7 layers, 3,255,914 parameters "
        "(3,255,914 trainable)>"
    )
    html = result._repr_html_()
    assert html.count("<tr>") == 1 + len(result.layers)  # header + one row per layer
    assert "Total params: 3,255,914" in html


def test_html_tables_escape_their_cells() -> None:
    html = html_table([("<script>", "a&b")], header=("x", "y"), caption="<c>")
    assert "<script>" not in html and "&lt;script&gt;" in html and "a&amp;b" in html
    assert "&lt;c&gt;" in html


NOTEBOOK = [
    "import cnnkit\n"
    "from cnnkit.evaluate.evaluation import evaluate_split\n"
    "from cnnkit.evaluate.plots import plot_confusion_matrix\n"
    "config = cnnkit.TrainConfig(data_dir={data_dir!r}, val_size=200, model='fastnet_tiny',\n"
    "    epochs=2, runs_dir={runs!r}, name='nb', device='cpu', precision='fp32')",
    "splits = cnnkit.load_dataset('mnist', data_dir={data_dir!r}, val_size=200)\nsplits",
    "splits.train",
    "result = cnnkit.run_training(config)",
    "result.run",
    "model = result.run.load_model()\ncnnkit.summary(model)",
    "print(cnnkit.summary(model))",
    "evaluation = evaluate_split(result.run, device='cpu')\nevaluation",
    "plot_confusion_matrix(evaluation.metrics['confusion_matrix'], evaluation.metrics['classes'])",
]


@pytest.mark.slow
def test_a_real_notebook_shows_pictures_progress_and_tables(tiny_mnist_dir, tmp_path) -> None:
    import nbformat
    from nbclient import NotebookClient

    cells = [
        nbformat.v4.new_code_cell(source.format(data_dir=str(tiny_mnist_dir), runs=str(tmp_path)))
        for source in NOTEBOOK
    ]
    notebook = nbformat.v4.new_notebook(cells=cells)
    NotebookClient(notebook, timeout=300, kernel_name="python3").execute()
    nbformat.write(notebook, tmp_path / "executed.ipynb")
    outputs = [cell.outputs for cell in notebook.cells]
    everything = json.dumps(outputs)
    assert "<Figure size" not in everything and "tensor(" not in everything
    assert "Traceback" not in everything, everything[-3000:]

    def data(index: int, mime: str) -> str:
        found = [o["data"][mime] for o in outputs[index] if mime in o.get("data", {})]
        assert found, f"cell {index} shows no {mime}: {outputs[index]}"
        return found[-1]

    assert "<th>split</th>" in data(1, "text/html")  # Splits: a table
    assert "1,000 images" in data(2, "text/plain") and "<table>" in data(2, "text/html")
    # fit's progress: set-up line, then an HTML bar updated in place, one line per epoch
    progress = data(3, "text/html")
    assert progress.count("<progress") == 2 and 'value="10" max="10"' in progress
    assert "Epoch 2/2" in progress and "val_accuracy" in progress
    setup = json.dumps(outputs[3])
    assert "device cpu" in setup and "precision fp32" in setup
    assert "status" in data(4, "text/html") and "val accuracy" in data(4, "text/html")
    assert "Layer (type)" in data(5, "text/html")
    printed = "".join(o.get("text", "") for o in outputs[6] if o["output_type"] == "stream")
    assert printed.count("Layer (type)") == 1 and len(outputs[6]) == 1  # printed once
    assert data(7, "text/plain").startswith("<Evaluation of nb on 300 test samples")
    png = Image.open(io.BytesIO(base64.b64decode(data(8, "image/png"))))
    assert png.width > 300 and png.height > 300
    png.save(tmp_path / "confusion.png")  # kept beside the executed notebook, to look at
