"""CPU inference: images/s and latency of a run's model through each engine cnnkit has.

    ./run python benchmarks/inference.py RUN [--repeats 5] [--files 2000] [--requests 200]

RUN is a trained run (``./run cnnkit train`` writes one). The run is copied to a temporary
folder and exported there (``cnnkit export --int8``), so RUN itself is not touched. Measured
in one process, engines interleaved in every repeat, medians over repeats:

- **model**: images/s on the run's test split in batches of 1,000 (uint8 in, logits out,
  normalisation included), and the latency of one image (median of many single calls);
- **predict**: ``Predictor.predict_files`` on PNG files of the test split (decode + model +
  top-k): what ``cnnkit predict RUN FOLDER`` does;
- **serve**: ``cnnkit serve``'s app on 127.0.0.1, one client posting one PNG per request
  over a kept-alive connection: requests/s and latency.

The reference, "before", is this same code with the PyTorch model in the NCHW layout that
``cnnkit predict`` used before it ran channels-last (``prefers_channels_last`` patched off):
the speed-up column is each engine against it, measured in the same run. Top-1 accuracy on
the whole test split is reported for every engine.
"""

from __future__ import annotations

import argparse
import contextlib
import http.client
import io
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from urllib.parse import urlparse

import torch
from common import describe_machine, load_average, markdown_table, write_section
from PIL import Image

import cnnkit.models.forward
from cnnkit.export import export_run
from cnnkit.predict import Predictor
from cnnkit.run import Run

ENGINES = ("before", "torch", "onnx", "onnx-int8")


@contextlib.contextmanager
def engine_predictor(run: Run, engine: str) -> Iterator[Predictor]:
    """A Predictor for ``engine``; "before" is torch with the old NCHW layout."""
    if engine != "before":
        yield Predictor(run, device="cpu", engine=engine)
        return
    original = cnnkit.models.forward.prefers_channels_last
    cnnkit.models.forward.prefers_channels_last = lambda *args: False  # type: ignore[assignment]
    try:
        yield Predictor(run, device="cpu", engine="torch")
    finally:
        cnnkit.models.forward.prefers_channels_last = original


def seconds(function: Callable[[], object]) -> float:
    start = time.perf_counter()
    function()
    return time.perf_counter() - start


def write_pngs(images: torch.Tensor, folder: Path) -> list[Path]:
    folder.mkdir(parents=True)
    paths = []
    for i, image in enumerate(images):
        path = folder / f"{i:05d}.png"
        array = image.permute(1, 2, 0).numpy()
        Image.fromarray(array[..., 0] if array.shape[-1] == 1 else array).save(path)
        paths.append(path)
    return paths


def serve_rate(predictor: Predictor, body: bytes, requests: int) -> tuple[float, float]:
    """Requests/s and median latency (ms) of single-image POSTs to the demo app."""
    from cnnkit.serve.app import create_app
    from cnnkit.serve.server import serve_in_background

    with serve_in_background(create_app(predictor)) as url:
        address = urlparse(url)
        connection = http.client.HTTPConnection(address.hostname, address.port, timeout=30)
        headers = {"Content-Type": "application/octet-stream"}
        latencies = []
        for i in range(requests + 5):
            start = time.perf_counter()
            connection.request("POST", "/api/predict?top_k=3&gradcam=0", body=body, headers=headers)
            response = connection.getresponse()
            response.read()
            if response.status != 200:
                raise SystemExit(f"the demo answered {response.status}")
            if i >= 5:  # the first requests warm the server up
                latencies.append(time.perf_counter() - start)
        connection.close()
    return len(latencies) / sum(latencies), statistics.median(latencies) * 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run", type=Path)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--files", type=int, default=2000, help="PNG files for predict")
    parser.add_argument("--requests", type=int, default=200, help="POSTs per serve repeat")
    parser.add_argument("--single", type=int, default=200, help="single-image calls per repeat")
    parser.add_argument("--no-write", action="store_true", help="print, don't touch RESULTS.md")
    args = parser.parse_args()

    machine = describe_machine()
    scratch = Path(tempfile.mkdtemp(prefix="cnnkit-bench-inference-"))
    try:
        run_folder = scratch / args.run.name
        shutil.copytree(args.run, run_folder, ignore=shutil.ignore_patterns("export"))
        run = Run.open(run_folder)
        exported = export_run(run, formats=["onnx"], int8=True)
        sizes = {name: path.stat().st_size / 1e6 for name, path in exported.files.items()}
        model_name = run.card.model.name
        test = run.load_data("test")
        files = write_pngs(test.images[: args.files], scratch / "pngs")
        buffer = io.BytesIO()
        Image.open(files[0]).save(buffer, format="PNG")
        body = buffer.getvalue()

        figures: dict[str, dict[str, list[float]]] = {e: {} for e in ENGINES}
        accuracy: dict[str, float] = {}
        for repeat in range(args.repeats):
            for engine in ENGINES:
                with engine_predictor(run, engine) as predictor:
                    logits = predictor.logits(test.images[:1000])  # warm-up
                    rows = figures[engine]
                    taken = seconds(lambda: predictor.logits(test.images))
                    rows.setdefault("batch", []).append(len(test.images) / taken)
                    one = test.images[:1]
                    single = [seconds(lambda: predictor.logits(one)) for _ in range(args.single)]  # noqa: B023
                    rows.setdefault("single_ms", []).append(statistics.median(single) * 1000)
                    taken = seconds(lambda: predictor.predict_files(files, top_k=3))
                    rows.setdefault("predict", []).append(len(files) / taken)
                    rate, latency = serve_rate(predictor, body, args.requests)
                    rows.setdefault("serve", []).append(rate)
                    rows.setdefault("serve_ms", []).append(latency)
                    if repeat == 0:
                        logits = predictor.logits(test.images)
                        accuracy[engine] = float((logits.argmax(1) == test.labels).float().mean())
            print(f"repeat {repeat + 1}/{args.repeats} done", file=sys.stderr)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)

    med = {e: {k: statistics.median(v) for k, v in rows.items()} for e, rows in figures.items()}
    base = med["before"]
    table = []
    for engine in ENGINES:
        m = med[engine]
        table.append(
            [
                engine,
                f"{m['batch']:,.0f}",
                f"{m['batch'] / base['batch']:.2f}x",
                f"{m['single_ms']:.2f}",
                f"{m['predict']:,.0f}",
                f"{m['predict'] / base['predict']:.2f}x",
                f"{m['serve']:,.0f}",
                f"{m['serve'] / base['serve']:.2f}x",
                f"{m['serve_ms']:.1f}",
                f"{accuracy[engine] * 100:.2f}%",
            ]
        )
    int8 = exported.int8
    body_text = f"""Machine: {machine}; load at the end: {load_average()}.

Run `{args.run.name}` ({model_name}), its test split of
{len(test.images):,} images; medians over {args.repeats} repeats, engines interleaved.
"before" is the PyTorch path as `cnnkit predict` ran it before this benchmark's change (NCHW).
model = images/s in batches of 1,000 and the latency of one image; predict =
`Predictor.predict_files` on {len(files):,} PNG files (decode + model + top-3); serve = the
demo app on 127.0.0.1, one client, one PNG per POST without Grad-CAM (`gradcam=0`; a
Grad-CAM answer runs the PyTorch model whatever the engine), {args.requests} requests per repeat.

{
        markdown_table(
            [
                "engine",
                "model img/s",
                "vs before",
                "1-image ms",
                "predict files/s",
                "vs before",
                "serve req/s",
                "vs before",
                "serve ms",
                "test top-1",
            ],
            table,
        )
    }

int8 export (`cnnkit export --int8`): {int8.calibration_images if int8 else 0} calibration
images from the training split; top-1 on the {int8.samples if int8 else 0:,} test images
{int8.int8_accuracy * 100 if int8 else 0:.2f}% against float32's
{int8.fp32_accuracy * 100 if int8 else 0:.2f}%; file
{sizes.get("int8", 0):.1f} MB against {sizes["onnx"]:.1f} MB.
"""
    print(body_text)
    if not args.no_write:
        write_section("inference", "CPU inference: torch, ONNX Runtime fp32 and int8", body_text)


if __name__ == "__main__":
    main()
