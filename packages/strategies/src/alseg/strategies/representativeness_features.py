"""The items of a representativeness query: feature vectors (model embeddings or downsampled images) and cases.

Every rank streams its share of the labelled and pool items (:func:`~alseg.core.inference.map_pool` gathers them),
so every rank holds the same rows and makes the same selection. Projection (PCA) and clustering run on the CPU with
scikit-learn, seeded by the round's seed; scikit-learn is imported only then (its import takes seconds).
"""

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import Tensor
from torch.utils.data import DataLoader

from alseg.core.errors import ConfigError, PluginError
from alseg.core.inference import map_pool, stream_embeddings, stream_images
from alseg.core.model import PytorchModel
from alseg.core.query_view import QueryView

FEATURES = ("image", "model")
CLUSTERINGS = ("kmeans", "mean_shift")


@dataclass(frozen=True)
class QueryItems:
    """The rows of a query: the pool items (ascending id), then the labelled items (ascending id).

    Attributes:
        pool_ids: The pool's ids, sorted: rows ``0 .. P-1``.
        labelled_ids: The labelled items' ids, sorted: rows ``P .. N-1``.
        case_ids: The case (volume) of every row: ``case_id`` metadata, or the id itself.
        features: Float32 feature vectors ``(N, D)`` on the CPU, or None when none were asked for.
    """

    pool_ids: list[str]
    labelled_ids: list[str]
    case_ids: list[str]
    features: Tensor | None

    @property
    def labelled(self) -> Tensor:
        """Boolean ``(N,)``: true for the labelled rows."""
        return torch.arange(len(self.case_ids)) >= len(self.pool_ids)


def gather_items(
    model: PytorchModel, data_module: QueryView, features: str | None, image_size: int, requested_by: str
) -> QueryItems:
    """Streams the pool and the labelled items and returns their rows, gathered over the ranks.

    Args:
        model: Runs ``embedding_step`` for ``features="model"``; not used otherwise.
        data_module: The strategy's view of the data module.
        features: ``model`` (``embedding_step``), ``image`` (:func:`pooled_images`), or None for cases only.
        image_size: Size per spatial axis of the pooled images.
        requested_by: The strategy's name, for messages.

    Raises:
        PluginError: The model has no ``embedding_step``, a feature vector is not finite, or the pool loader yields
            no items although the pool is not empty.
    """
    if features is None:  # cases only: from the item metadata, no image is loaded
        pool_ids, labelled_ids = sorted(data_module.unlabeled_ids()), sorted(data_module.labeled_ids())
        cases = [str(meta["case_id"]) for meta in data_module.item_metadata(pool_ids + labelled_ids)]
        return QueryItems(pool_ids, labelled_ids, cases, None)
    pool = _stream(model, data_module, None, features, image_size, requested_by)
    if not pool and data_module.unlabeled_set_size() > 0:
        raise PluginError(
            f"The data module's pool loader yielded no items, but unlabeled_set_size() is "
            f"{data_module.unlabeled_set_size()}."
        )
    labelled = (
        _stream(model, data_module, data_module.labeled_dataloader(), features, image_size, requested_by)
        if data_module.training_set_size()
        else {}
    )
    pool_ids, labelled_ids = sorted(pool), sorted(labelled)
    rows = [pool[i] for i in pool_ids] + [labelled[i] for i in labelled_ids]
    vectors = torch.stack([vector for vector, _ in rows]) if rows else None
    if vectors is not None:
        bad = torch.nonzero(~torch.isfinite(vectors).all(dim=1)).flatten()
        if bad.numel():
            raise PluginError(f"The feature vector of item {(pool_ids + labelled_ids)[int(bad[0])]!r} is not finite.")
    return QueryItems(pool_ids, labelled_ids, [case for _, case in rows], vectors)


def _stream(
    model: PytorchModel,
    data_module: QueryView,
    loader: DataLoader | None,
    features: str,
    image_size: int,
    requested_by: str,
) -> dict[str, tuple[Tensor, str]]:
    """Returns ``{id: (feature vector, case id)}`` of a loader's items (the pool by default)."""
    if features == "model":
        stream = stream_embeddings(model, data_module, loader, requested_by=requested_by)
        return map_pool(stream, lambda batch, embeddings: list(zip(embeddings.cpu(), _case_ids(batch), strict=True)))

    def per_item(batch: dict[str, Any], images: Tensor) -> list[tuple[Tensor, str]]:
        return list(zip(pooled_images(images, image_size).cpu(), _case_ids(batch), strict=True))

    return map_pool(stream_images(loader or data_module.unlabeled_dataloader()), per_item)


def pooled_images(images: Tensor, size: int) -> Tensor:
    """Adaptive average pooling of 2D or 3D images to ``size`` per spatial axis, flattened.

    Args:
        images: A batch ``(B, C, H, W)`` or ``(B, C, D, H, W)``.
        size: Output size per spatial axis, ``>= 1``.

    Returns:
        Float32 vectors ``(B, C * size**2)`` or ``(B, C * size**3)``, equally long for every item.
    """
    pool = {4: torch.nn.functional.adaptive_avg_pool2d, 5: torch.nn.functional.adaptive_avg_pool3d}.get(images.ndim)
    if pool is None:
        raise PluginError(
            f"Image features need 2D or 3D images (B, C, *S); got a batch of shape {tuple(images.shape)}."
        )
    return pool(images.to(torch.float32), size).flatten(1)


def project(features: Tensor, dimensionality: int, seed: int) -> Tensor:
    """PCA of the feature vectors to ``dimensionality`` components, fitted on and applied to the same vectors.

    Args:
        features: Feature vectors ``(N, D)``.
        dimensionality: Number of components, at most ``D`` and ``N``.
        seed: ``random_state`` of the (possibly randomised) SVD.

    Returns:
        Float32 projections ``(N, dimensionality)``.
    """
    count, length = features.shape
    if dimensionality > min(count, length):
        raise ConfigError(
            f"The 'feature_dimensionality' option of the strategy must be at most the length of the feature vectors "
            f"({length}) and their number ({count}). Got {dimensionality}."
        )
    from sklearn.decomposition import PCA

    projected = PCA(n_components=dimensionality, random_state=seed).fit_transform(features.double().numpy())
    return torch.from_numpy(projected).to(torch.float32)


def cluster(features: Tensor, method: str, clusters: int, bandwidth: float | None, seed: int) -> Tensor:
    """Cluster index of every feature vector: seeded k-means, or mean shift.

    Args:
        features: Feature vectors ``(N, D)``.
        method: ``kmeans`` or ``mean_shift``.
        clusters: Number of k-means clusters, at most ``N``.
        bandwidth: Mean-shift bandwidth; None estimates it (scikit-learn's ``estimate_bandwidth``, seeded).
        seed: ``random_state`` of k-means and of the bandwidth estimate.

    Returns:
        Cluster indices ``(N,)``, int64.
    """
    from sklearn.cluster import KMeans, MeanShift, estimate_bandwidth

    x = features.double().numpy()
    if method == "kmeans":
        if clusters > len(x):
            raise ConfigError(
                f"The 'clusters' option of the strategy must be at most the number of labelled and pool items "
                f"({len(x)}). Got {clusters}."
            )
        labels = KMeans(n_clusters=clusters, random_state=seed, n_init=10).fit_predict(x)
    else:
        width = bandwidth or estimate_bandwidth(x, random_state=seed)
        # Identical vectors have an estimated bandwidth of 0: they are one cluster.
        labels = MeanShift(bandwidth=width).fit_predict(x) if width > 0 else np.zeros(len(x), dtype=np.int64)
    return torch.from_numpy(np.asarray(labels, dtype=np.int64))


def _case_ids(batch: dict[str, Any]) -> list[str]:
    return [str(i) for i in batch.get("case_id", batch["id"])]
