"""fit's thread count follows the cores other processes leave free (cnnkit.train.threads)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from cnnkit.train.threads import (
    INTERVAL,
    AdaptiveThreads,
    CpuTimes,
    others_cores,
    read_cpu_times,
)


class FakeCpus:
    """Readings in which other processes keep ``others`` cores busy and this process ``own``."""

    def __init__(self) -> None:
        self.now, self.busy, self.own = 0.0, 0.0, 0.0
        self.others, self.mine = 0.0, 2.0
        self.threads: list[int] = []

    def clock(self) -> float:
        return self.now

    def read(self) -> CpuTimes:
        return CpuTimes(wall=self.now, busy=self.busy, own=self.own)

    def run(self, seconds: float) -> None:
        self.now += seconds
        self.own += self.mine * seconds
        self.busy += (self.mine + self.others) * seconds


def governor(cpus: FakeCpus, most: int = 2, cores: int = 2) -> AdaptiveThreads:
    return AdaptiveThreads(
        most, cores, read=cpus.read, set_threads=cpus.threads.append, clock=cpus.clock
    )


def steps(threads: AdaptiveThreads, cpus: FakeCpus, count: int, seconds: float = 0.125) -> None:
    """``count`` steps of ``seconds`` each (4 steps between readings)."""
    for _ in range(count):
        cpus.run(seconds)
        threads.after_step()


def test_others_cores_is_busy_time_less_this_process_per_second() -> None:
    before = CpuTimes(wall=10.0, busy=100.0, own=50.0)
    after = CpuTimes(wall=12.0, busy=103.5, own=52.0)  # 3.5 busy, 2.0 ours, over 2 s
    assert others_cores(before, after) == pytest.approx(0.75)
    assert others_cores(after, after) == 0.0


def test_one_thread_beside_a_busy_process_and_back_when_it_ends() -> None:
    cpus = FakeCpus()
    threads = governor(cpus)
    with threads.adapting():
        steps(threads, cpus, 16)  # quiet: stays at 2
        assert cpus.threads == []
        cpus.others, cpus.mine = 0.7, 1.3  # a busy process takes 0.7 of a core
        steps(threads, cpus, 4)  # one reading asks for 1: not enough
        assert cpus.threads == []
        steps(threads, cpus, 4)
        assert cpus.threads == [1] and threads.threads == 1
        cpus.others, cpus.mine = 1.0, 1.0
        steps(threads, cpus, 20)
        assert cpus.threads == [1]  # steady while the other process runs
        cpus.others = 0.0  # it ended
        steps(threads, cpus, 4)
        assert cpus.threads == [1]
        steps(threads, cpus, 4)
        assert cpus.threads == [1, 2] and threads.threads == 2
    assert threads.record() == {
        "adaptive": True,
        "off_because": None,
        "most": 2,
        "steps_at": {"2": 24, "1": 28},
    }


def test_a_single_busy_reading_changes_nothing() -> None:
    cpus = FakeCpus()
    threads = governor(cpus)
    with threads.adapting():
        for _ in range(5):
            cpus.others = 1.0
            steps(threads, cpus, 4)  # one busy reading...
            cpus.others = 0.2
            steps(threads, cpus, 4)  # ...then a quiet one
    assert cpus.threads == [] and threads.record()["steps_at"] == {"2": 40}


def test_readings_wait_for_the_interval() -> None:
    cpus = FakeCpus()
    reads = []
    threads = governor(cpus)
    threads._read = lambda: reads.append(cpus.now) or cpus.read()  # type: ignore[method-assign]
    with threads.adapting():
        steps(threads, cpus, 40, seconds=1 / 16)
    assert reads[0] == 0.0 and len(reads) == 1 + int(40 / 16 / INTERVAL)


def test_many_cores_keep_the_ones_left_free() -> None:
    cpus = FakeCpus()
    cpus.mine = 16.0
    threads = governor(cpus, most=16, cores=16)
    with threads.adapting():
        cpus.others, cpus.mine = 1.0, 15.0  # one busy process on 16 cores
        steps(threads, cpus, 20)
        assert cpus.threads == [15]
    assert cpus.threads == [15, 16]  # put back when training ends


def test_the_count_is_put_back_when_training_fails() -> None:
    cpus = FakeCpus()
    cpus.others, cpus.mine = 1.0, 1.0
    threads = governor(cpus)
    with pytest.raises(RuntimeError), threads.adapting():
        steps(threads, cpus, 20)
        raise RuntimeError
    assert cpus.threads == [1, 2] and threads.threads == 2


def test_off_never_reads_or_changes_anything() -> None:
    cpus = FakeCpus()
    cpus.others = 2.0
    threads = AdaptiveThreads(
        2, 2, off="OMP_NUM_THREADS=2", read=pytest.fail, set_threads=pytest.fail
    )
    with threads.adapting():
        steps(threads, cpus, 50)
    assert threads.record() == {
        "adaptive": False,
        "off_because": "OMP_NUM_THREADS=2",
        "most": 2,
        "steps_at": {"2": 50},
    }


@pytest.mark.parametrize(
    "env, device, threads, off",
    [
        ({"OMP_NUM_THREADS": "2"}, "cpu", 2, "OMP_NUM_THREADS=2"),
        ({}, "cuda", 2, "training on cuda"),
        ({}, "cpu", 1, "one thread"),
        ({}, "cpu", 2, None),
    ],
)
def test_when_it_is_on(monkeypatch, env, device, threads, off) -> None:
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setattr(torch, "get_num_threads", lambda: threads)
    if off is None and read_cpu_times() is None:
        pytest.skip("no /proc/stat here")
    assert AdaptiveThreads.for_training(torch.device(device)).off == off


def test_read_cpu_times_counts_the_cpus_this_process_may_use(tmp_path: Path) -> None:
    allowed = sorted(os.sched_getaffinity(0))
    lines = ["cpu  999 0 999 999 0 0 0 0 0 0"]
    lines += [f"cpu{n} 100 1 10 5000 7 2 3 50 0 0" for n in allowed]
    lines += [f"cpu{max(allowed) + 1} 900 0 900 0 0 0 0 0 0 0", "intr 1 2 3"]
    stat = tmp_path / "stat"
    stat.write_text("\n".join(lines) + "\n")
    reading = read_cpu_times(stat)
    assert reading is not None
    assert reading.busy == pytest.approx(116 * len(allowed) / os.sysconf("SC_CLK_TCK"))
    assert read_cpu_times(tmp_path / "missing") is None


BUSY_FIT = """
import json, os, subprocess, sys
import torch
from cnnkit.openmp import flushes_denormals
supported = torch.set_flush_denormal(True)  # as the command does, before the threads start
from cnnkit.data.preprocess import Preprocessing
from cnnkit.data.sources import load_dataset
from cnnkit.models.registry import build_model
from cnnkit.train.callbacks import Callback
from cnnkit.train.loop import fit

cores = len(os.sched_getaffinity(0))
busy = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(cores)]
seen = []

class Threads(Callback):
    def on_train_batch_end(self, batch):
        seen.append(torch.get_num_threads())

try:
    images = load_dataset("mnist").train.subset(range(6000))
    history = fit(build_model("lenet"), train=images, epochs=1, batch_size=100, verbose=0,
                  preprocessing=Preprocessing.from_dataset(images), callbacks=[Threads()])
finally:
    for process in busy:
        process.kill()
print(json.dumps([history.training["threads"], history[-1]["accuracy"], min(seen),
                  torch.get_num_threads(), flushes_denormals() == supported]))
"""


@pytest.mark.slow
def test_fit_beside_busy_processes_trains_on_fewer_threads_and_puts_them_back() -> None:
    env = {k: v for k, v in os.environ.items() if k != "OMP_NUM_THREADS"}
    if len(os.sched_getaffinity(0)) < 2:
        pytest.skip("one core: nothing to adapt")
    result = subprocess.run(
        [sys.executable, "-c", BUSY_FIT],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
        check=True,
    )
    record, accuracy, fewest, after, flushing_kept = json.loads(
        result.stdout.strip().splitlines()[-1]
    )
    assert record["adaptive"] and sum(record["steps_at"].values()) == 60
    assert fewest < record["most"] and str(fewest) in record["steps_at"]
    assert after == record["most"]  # put back when training ends
    assert accuracy > 0.5  # 60 LeNet steps learn MNIST whatever the thread count
    assert flushing_kept  # threads after a change flush denormals as the first ones did


@pytest.mark.usefixtures("single_thread")
def test_fit_records_its_threads_in_the_training_decisions(mnist_parts, monkeypatch) -> None:
    from cnnkit.data.preprocess import Preprocessing
    from cnnkit.models.registry import build_model
    from cnnkit.train.loop import fit

    train = mnist_parts["train"].subset(range(200))
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    history = fit(
        build_model("fastnet_tiny"),
        train=train,
        preprocessing=Preprocessing.from_dataset(train),
        epochs=1,
        batch_size=100,
        verbose=0,
    )
    assert history.training["threads"] == {
        "adaptive": False,
        "off_because": "OMP_NUM_THREADS=1",
        "most": 1,
        "steps_at": {"1": 2},
    }
