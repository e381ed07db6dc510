"""Evaluation across processes with torch.distributed: rank r of K evaluates shard r/K
(shards.py), rank 0 gathers the shard results and merges them into the one-process result.

Launched by torchrun (``torchrun --nproc_per_node=K -m qrobench.cli run …``; several nodes
through torchrun's rendezvous) or by ``qrobench run --workers K``, which calls torchrun for
one machine. gloo on the CPU, nccl on GPUs (rank r uses ``cuda:LOCAL_RANK``). Only the result
records travel between ranks (``gather_object``), so any backend torch supports will do.
"""

from __future__ import annotations

import os
import sys

import torch
import torch.distributed as dist

from ..errors import QrobenchError
from .results import Result
from .shards import Shard

COMMAND_ENV = "QROBENCH_COMMAND"  # the user's command line, passed from --workers to the ranks


def launched_by_torchrun() -> bool:
    return int(os.environ.get("WORLD_SIZE", "1")) > 1


def start(device: str) -> tuple[Shard, str]:
    """Join the process group; this rank's shard and device."""
    rank, world = int(os.environ["RANK"]), int(os.environ["WORLD_SIZE"])
    local = int(os.environ.get("LOCAL_RANK", "0"))
    use_cuda = device.startswith("cuda") or (device == "auto" and torch.cuda.is_available())
    if use_cuda:
        if not torch.cuda.is_available():
            raise QrobenchError("--device cuda was asked for but no CUDA device is available; use --device cpu")
        device = f"cuda:{local % torch.cuda.device_count()}"
        torch.cuda.set_device(device)
    else:
        device = "cpu"
    if not dist.is_initialized():
        dist.init_process_group(backend="nccl" if use_cuda else "gloo")
    return Shard(rank, world), device


def gather(result: Result) -> list[Result] | None:
    """Every rank's result on rank 0 (None on the others)."""
    rank = dist.get_rank()
    box = [None] * dist.get_world_size() if rank == 0 else None
    dist.gather_object(result.to_dict(), box, dst=0)
    return [Result.from_dict(d, f"rank {i}") for i, d in enumerate(box)] if rank == 0 else None


def finish() -> None:
    if dist.is_initialized():
        dist.barrier()
        dist.destroy_process_group()


def launch(workers: int, argv: list[str], command: str) -> int:
    """Run ``qrobench <argv>`` as ``workers`` ranks on this machine: torchrun's own launcher
    (``torchrun --standalone``) called from Python, so qrobench's options never meet
    torchrun's option parser (which reads ``--n`` as an abbreviation of its own)."""
    from torch.distributed.elastic.multiprocessing.errors import ChildFailedError
    from torch.distributed.launcher.api import LaunchConfig, elastic_launch

    if workers < 1:
        raise QrobenchError(f"--workers must be a positive number of processes, got {workers}")
    config = LaunchConfig(min_nodes=1, max_nodes=1, nproc_per_node=workers, run_id=f"qrobench-{os.getpid()}",
                          rdzv_backend="c10d", rdzv_endpoint="localhost:0", max_restarts=0,
                          monitor_interval=0.5)
    os.environ[COMMAND_ENV] = command
    os.environ.setdefault("OMP_NUM_THREADS", str(max(1, (os.cpu_count() or 1) // workers)))
    try:
        elastic_launch(config, sys.executable)("-m", "qrobench.cli", *argv)
    except ChildFailedError as e:
        print(f"qrobench: error: a rank failed ({e.get_first_failure()[1].message})", file=sys.stderr)
        return 2
    finally:
        os.environ.pop(COMMAND_ENV, None)
    return 0
