"""Data-parallel training on PyTorch's own engine: under torchrun (WORLD_SIZE > 1) each process trains on
its share of the parallel streams and DistributedDataParallel averages the gradients."""
from __future__ import annotations

import os

import torch
import torch.distributed as dist


def rank_and_world(device: torch.device) -> tuple:
    """(rank, world size), joining the process group that torchrun describes in the environment."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world == 1:
        return 0, 1
    if not dist.is_initialized():
        if device.type == "cuda":  # this rank's own GPU (process_device): NCCL refuses two ranks on one GPU
            torch.cuda.set_device(device)
        dist.init_process_group(backend="nccl" if device.type == "cuda" else "gloo")
    return dist.get_rank(), dist.get_world_size()


def process_device(device: torch.device) -> torch.device:
    """This process's own GPU under torchrun (cuda:LOCAL_RANK), else ``device`` unchanged."""
    if device.type == "cuda" and int(os.environ.get("WORLD_SIZE", "1")) > 1:
        return torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
    return device


def sum_over_processes(values: list, world: int) -> list:
    if world == 1:
        return values
    on = torch.device("cuda", torch.cuda.current_device()) if dist.get_backend() == "nccl" else "cpu"
    t = torch.tensor(values, dtype=torch.float64, device=on)
    dist.all_reduce(t)
    return t.tolist()


def gather_objects(obj, world: int) -> list:
    if world == 1:
        return [obj]
    out = [None] * world
    dist.all_gather_object(out, obj)
    return out


def broadcast_object(obj, world: int):
    if world == 1:
        return obj
    box = [obj]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def barrier(world: int):
    if world > 1:
        dist.barrier()


def launch(nproc: int, command: list):
    """Run ``command`` (a Python interpreter and its arguments) as ``nproc`` processes on this machine with
    PyTorch's elastic launcher, the engine behind torchrun."""
    import uuid

    from torch.distributed.launcher.api import LaunchConfig, elastic_launch

    config = LaunchConfig(min_nodes=1, max_nodes=1, nproc_per_node=nproc, run_id=uuid.uuid4().hex,
                          rdzv_backend="c10d", rdzv_endpoint="127.0.0.1:0", max_restarts=0, monitor_interval=1)
    elastic_launch(config, entrypoint=command[0])(*command[1:])
