"""Process-group helpers: this process's place in a ``torch.distributed`` run, and gathering objects from all ranks.

Outside a distributed run (no process group, or a group of one) every helper behaves as for a single rank 0.
"""

from typing import TypeVar

import torch.distributed as dist

T = TypeVar("T")


def is_distributed() -> bool:
    """Returns whether a process group of more than one rank is initialized."""
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def rank() -> int:
    """Returns this process's rank in the default group (0 outside distributed runs)."""
    return dist.get_rank() if is_distributed() else 0


def world_size() -> int:
    """Returns the number of ranks in the default group (1 outside distributed runs)."""
    return dist.get_world_size() if is_distributed() else 1


def all_gather_objects(obj: T) -> list[T]:
    """Returns every rank's ``obj`` (picklable), in rank order; ``[obj]`` outside distributed runs.

    A collective call: every rank must make it.
    """
    if not is_distributed():
        return [obj]
    gathered: list[T] = [obj] * world_size()
    dist.all_gather_object(gathered, obj)
    return gathered
