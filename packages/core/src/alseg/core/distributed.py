"""Process-group helpers: who this process is in a distributed run, and moving Python objects between ranks.

Every rank of a distributed run (Lightning DDP, ``torchrun``, SLURM's ``srun``) runs the whole script. Outside an
initialised process group these helpers act as for a single process, except :func:`is_rank_zero`, which also reads
the rank that the launcher put in the environment, so that a rank knows it must not write before the process group
exists (Lightning starts it in the first ``fit``).
"""

from __future__ import annotations

from typing import Any

import torch.distributed as dist
from lightning.fabric.utilities.rank_zero import rank_zero_only


def is_distributed() -> bool:
    """Returns True inside an initialised process group of more than one rank."""
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def rank() -> int:
    """Returns this process's rank in the process group (0 outside one)."""
    return dist.get_rank() if is_distributed() else 0


def world_size() -> int:
    """Returns the number of ranks in the process group (1 outside one)."""
    return dist.get_world_size() if is_distributed() else 1


def is_rank_zero() -> bool:
    """Returns True in the process that writes a run's files: rank 0, known from the launcher's environment too."""
    return rank() == 0 and (rank_zero_only.rank or 0) == 0


def all_gather_objects(obj: Any) -> list[Any]:
    """Returns the objects of every rank, in rank order (``[obj]`` outside a process group)."""
    if not is_distributed():
        return [obj]
    parts: list[Any] = [None] * dist.get_world_size()
    dist.all_gather_object(parts, obj)
    return parts
