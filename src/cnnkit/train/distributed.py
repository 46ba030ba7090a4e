"""Data-parallel training across processes (DDP), as started by ``torchrun``.

``torchrun --nproc_per_node N -m cnnkit train ...`` starts N copies of the same command with
``RANK``/``WORLD_SIZE``/``LOCAL_RANK`` in their environment. Each process trains on its own
shard of every global batch; gradients are averaged across processes after each backward
pass (gloo on CPU, nccl on GPU), so all copies hold the same weights. Rank 0 alone writes
the run directory.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass

import torch
import torch.distributed as dist

from cnnkit.errors import ConfigError

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class DistributedContext:
    """This process's place in a data-parallel group.

    Attributes:
        rank: global process index, 0 .. world_size-1.
        world_size: number of processes.
        local_rank: process index on this machine (picks the GPU).
    """

    rank: int
    world_size: int
    local_rank: int

    @property
    def is_main(self) -> bool:
        """True in the one process that writes files and prints."""
        return self.rank == 0

    def all_reduce_sum(self, values: torch.Tensor) -> torch.Tensor:
        """Sum ``values`` over every process (returns a new tensor on ``values``'s device)."""
        backend_device = "cuda" if dist.get_backend() == "nccl" else "cpu"
        total = values.detach().to(backend_device, dtype=torch.float64, copy=True)
        dist.all_reduce(total)
        return total.to(values.device)

    def barrier(self) -> None:
        dist.barrier()


def launched_by_torchrun() -> bool:
    """Whether this process was started as one of several by ``torchrun``."""
    return int(os.environ.get("WORLD_SIZE", "1")) > 1


def init_distributed(device: torch.device) -> tuple[DistributedContext, torch.device]:
    """Join the process group torchrun set up; returns the context and this rank's device.

    On CUDA each process takes GPU ``LOCAL_RANK``. On CPU, unless ``OMP_NUM_THREADS`` says
    otherwise, the cores are shared out so processes on one machine do not oversubscribe.

    Raises:
        ConfigError: the torchrun environment is incomplete or the group cannot be joined.
    """
    try:
        rank = int(os.environ["RANK"])
        world_size = int(os.environ["WORLD_SIZE"])
        local_rank = int(os.environ.get("LOCAL_RANK", rank))
        local_world = int(os.environ.get("LOCAL_WORLD_SIZE", world_size))
    except (KeyError, ValueError) as exc:
        raise ConfigError(
            f"distributed training needs RANK and WORLD_SIZE set by torchrun ({exc}); "
            "start it as `torchrun --nproc_per_node N -m cnnkit train ...`"
        ) from None
    if device.type == "cuda":
        device = torch.device("cuda", local_rank)
        torch.cuda.set_device(device)
        backend = "nccl"
    else:
        backend = "gloo"
        if "OMP_NUM_THREADS" not in os.environ:
            torch.set_num_threads(max(1, (os.cpu_count() or 1) // local_world))
    if not dist.is_initialized():
        try:
            dist.init_process_group(backend=backend)
        except (RuntimeError, ValueError) as exc:
            raise ConfigError(f"could not join the {backend} process group: {exc}") from exc
    log.info("rank %d of %d on %s (%s)", rank, world_size, device, backend)
    return DistributedContext(rank, world_size, local_rank), device


def shutdown_distributed() -> None:
    """Leave the process group (no-op when none was joined)."""
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()
