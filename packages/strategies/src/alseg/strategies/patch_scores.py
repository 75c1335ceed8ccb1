"""Scores of the boxes of a patch pool: a voxel-score map per pool volume by sliding windows, box means by a box filter.

Memory stays bounded: one volume at a time (its windows in batches of ``sw_batch_size``), and each window's
probabilities (``[n, C, *W]``, or ``[K, n, C, *W]`` with MC samples) are reduced to voxel scores ``[n, 1, *W]``
inside the window, so MONAI's :func:`~monai.inferers.sliding_window_inference` only stitches one score map
``[1, 1, *S]`` per volume; no probability map of a volume (let alone of the pool) is ever held. Under
``torch.distributed`` the pool volumes are dealt out over the ranks and the box scores gathered, so every rank
holds the scores of every box.
"""

from collections.abc import Callable, Iterator, Sequence
from contextlib import ExitStack, contextmanager
from typing import Any

import numpy as np
import torch
from monai.inferers import sliding_window_inference
from torch import Tensor

from alseg.core.errors import ConfigError
from alseg.core.inference import Placement, current_placement, gather_pool, stream_images
from alseg.core.mc_dropout import mc_dropout
from alseg.core.model import PytorchModel
from alseg.core.patch_pool import PatchPool
from alseg.core.query_view import QueryView

VoxelScores = Callable[[Tensor, bool], Tensor]
"""Probabilities ``[B, C, *S]`` (or ``[K, B, C, *S]``) and ``multi_label`` → voxel scores ``[B, *S]``."""


def box_means(score_map: Tensor, size: Sequence[int]) -> Tensor:
    """The mean voxel score of the box of ``size`` starting at every voxel where one fits (a box filter).

    Args:
        score_map: Voxel scores ``[X, Y, Z]``.
        size: Box size ``(sx, sy, sz)``, at most the map's shape.

    Returns:
        Float32 ``[X - sx + 1, Y - sy + 1, Z - sz + 1]``: entry ``(x, y, z)`` is the mean over the box whose first
        voxel is ``(x, y, z)``.
    """
    pooled = score_map.to(torch.float32)
    # Separable: three 1D box filters cost sx + sy + sz per voxel, not sx·sy·sz. Each is the mean over a sliding view
    # (Tensor.unfold), a vectorised reduction that is much cheaper on CPU than avg_pool3d with a 1D kernel.
    for axis, extent in enumerate(size):
        pooled = pooled.unfold(axis, extent, 1).mean(dim=-1)
    return pooled


def score_boxes(
    model: PytorchModel,
    data_module: QueryView,
    pool: PatchPool,
    voxel_scores: VoxelScores,
    mc_samples: int | None = None,
    seed: int = 0,
    sw_batch_size: int = 4,
    overlap: float = 0.25,
) -> dict[str, float]:
    """The score of every pool box: the mean of its voxel scores on the sliding-window score map of its volume.

    Args:
        model: Runs in eval mode (restored after), where :func:`~alseg.core.inference.current_placement` says.
        data_module: The strategy's view; :meth:`~alseg.core.query_view.QueryView.pool_case_dataloader` streams the
            pool volumes.
        pool: The patch pool (boxes, ``window`` of the sliding windows).
        voxel_scores: The strategy's per-voxel score (:mod:`alseg.strategies.scoring`).
        mc_samples: None for one deterministic pass, K for K MC-dropout samples per window.
        seed: Seed of the dropout masks; each volume draws from its own state, derived from ``seed`` and its case
            id, so the samples do not depend on how the volumes are split over the ranks.
        sw_batch_size: Windows per forward pass.
        overlap: Overlap of neighbouring windows, in [0, 1) (MONAI's; overlapping window scores are averaged).

    Returns:
        Pool id → score (higher = label first), over the whole pool on every rank.
    """
    if model.input_dimensionality() != 3:
        raise ConfigError(
            f"The 'annotation_unit' option 'patch' needs a 3D model; {type(model).__name__} has "
            f"input_dimensionality {model.input_dimensionality()}."
        )
    where = current_placement(model)
    model.to(where.device)
    multi_label = data_module.multi_label()
    boxes_of: dict[str, list[tuple[str, tuple[int, ...]]]] = {}
    for item_id, box in sorted(pool.pool.items()):
        boxes_of.setdefault(box.case_id, []).append((item_id, box.start))

    def window_scores(windows: Tensor) -> Tensor:
        batch = where.convert_input({"image": windows})
        if mc_samples is None:
            probabilities = model.predict_step(batch, 0).float()
        else:
            probabilities = torch.stack([model.predict_step(batch, 0).float() for _ in range(mc_samples)])
        return voxel_scores(probabilities, multi_label)[:, None]

    local: dict[str, float] = {}
    for batch, image in stream_images(data_module.pool_case_dataloader(), where.device):
        case_id = str(batch["case_id"][0])
        with _inference(model, where, mc_samples, seed, case_id):
            score_map = sliding_window_inference(
                image, tuple(pool.window), sw_batch_size, window_scores, overlap=overlap, mode="constant"
            )
        means = box_means(score_map[0, 0], pool.patch_size).cpu()
        local.update((item_id, float(means[start])) for item_id, start in boxes_of.get(case_id, []))
    return gather_pool(local)


@contextmanager
def _inference(model: PytorchModel, where: Placement, mc_samples: int | None, seed: int, case_id: str) -> Iterator[Any]:
    """Eval and inference mode, the placement's precision, MC dropout with masks seeded by the case; modes restored."""
    modes = [module.training for module in model.modules()]
    model.eval()
    devices = [where.device] if where.device.type == "cuda" else []
    try:
        with ExitStack() as stack:
            stack.enter_context(torch.inference_mode())
            stack.enter_context(where.forward_context())
            if mc_samples is not None:
                stack.enter_context(mc_dropout(model))
                stack.enter_context(torch.random.fork_rng(devices=devices, device_type=where.device.type))
                key = np.random.SeedSequence([seed, *case_id.encode()]).generate_state(1)[0]
                torch.manual_seed(int(key))
            yield
    finally:
        for module, mode in zip(model.modules(), modes, strict=True):
            module.training = mode
