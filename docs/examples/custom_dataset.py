"""A custom data module: 2D slices stored as NumPy files, one pair of files per slice.

Layout of ``data_dir`` (``write_example_data`` writes a small synthetic one)::

    images/<case>_<slice>.npy   float32 [C, H, W]
    masks/<case>_<slice>.npy    uint8 [H, W], 0 background, 1 lesion

Runs as it is: ``tests/docs/test_examples.py`` checks it with the conformance kit and trains on it through
``alseg-train`` (see the Extending page of the documentation). ``python custom_dataset.py DIR`` writes example data.
"""

import sys
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset

from alseg.core import ActiveLearningDataModule, DataError, PluginError


class ItemList(Dataset):
    """The items of a list of ids; the list is shared with the data module, so labelling shows at once."""

    def __init__(self, module: "NpyFolderDataModule", ids: list[str], with_label: bool) -> None:
        self.module, self.ids, self.with_label = module, ids, with_label

    def __len__(self) -> int:
        return len(self.ids)

    def __getitem__(self, index: int) -> dict[str, Any]:
        return self.module.item(self.ids[index], self.with_label)


class NpyFolderDataModule(ActiveLearningDataModule):
    """Slices of ``images/`` and ``masks/``; cases split into training, validation and test by a seeded permutation.

    Args:
        data_dir: The folder holding ``images/`` and ``masks/``.
        val_cases: Cases held out for validation.
        test_cases: Cases held out for testing.
        initial_training_set_size: Training slices labelled at the start, drawn with ``seed`` (labels not read).
        seed: Seed of the split and of the initial set (None: the run's seed under alseg-train).
        **kwargs: Options of ActiveLearningDataModule: batch_size, pool_batch_size, num_workers, pin_memory.
    """

    def __init__(
        self,
        data_dir: str,
        val_cases: int = 1,
        test_cases: int = 1,
        initial_training_set_size: int = 4,
        seed: int | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.data_dir = Path(data_dir)
        rng = np.random.default_rng(0 if seed is None else seed)
        ids = sorted(path.stem for path in (self.data_dir / "images").glob("*.npy"))
        if not ids:
            raise DataError(f"No images/*.npy files in {self.data_dir}.")
        cases = sorted({self.case_of(i) for i in ids})
        if len(cases) <= val_cases + test_cases:
            raise DataError(f"{self.data_dir} has {len(cases)} cases; needs more than {val_cases + test_cases}.")
        order = [cases[i] for i in rng.permutation(len(cases))]
        val, test = set(order[:val_cases]), set(order[val_cases : val_cases + test_cases])
        self.val_ids = [i for i in ids if self.case_of(i) in val]
        self.test_ids = [i for i in ids if self.case_of(i) in test]
        candidates = [i for i in ids if self.case_of(i) not in val | test]
        chosen = set(rng.choice(len(candidates), initial_training_set_size, replace=False).tolist())
        self.training_ids = [i for n, i in enumerate(candidates) if n in chosen]  # grows as the oracle labels
        self.pool_ids = [i for n, i in enumerate(candidates) if n not in chosen]  # shrinks as the oracle labels
        self.pseudo_labels: dict[str, torch.Tensor] = {}

    @staticmethod
    def case_of(item_id: str) -> str:
        """The case of a slice id ``<case>_<slice>``."""
        return item_id.rsplit("_", 1)[0]

    def item(self, item_id: str, with_label: bool) -> dict[str, Any]:
        """One item: image, id, case and slice index; the label only where the oracle has answered."""
        image = np.load(self.data_dir / "images" / f"{item_id}.npy")
        item: dict[str, Any] = {
            "image": torch.from_numpy(image.astype(np.float32)),  # float32 [C, H, W]
            "id": item_id,  # a string that names the item for the whole run
            "case_id": self.case_of(item_id),  # metrics gather the slices of a case into one volume
            "slice_index": int(item_id.rsplit("_", 1)[1]),
        }
        if with_label:  # training, validation and test items only: pool items never carry a label
            pseudo = self.pseudo_labels.get(item_id)
            item["label"] = pseudo if pseudo is not None else self.read_mask(item_id)  # int64 [1, H, W]
            item["pseudo_labeled"] = pseudo is not None
        return item

    def read_mask(self, item_id: str) -> torch.Tensor:
        """The ground truth of one slice as class indices ``int64 [1, H, W]``."""
        mask = np.load(self.data_dir / "masks" / f"{item_id}.npy")
        return torch.from_numpy(mask.astype(np.int64))[None]

    def _create_training_set(self) -> Dataset:
        return ItemList(self, self.training_ids, with_label=True)

    def _create_validation_set(self) -> Dataset | None:
        return ItemList(self, self.val_ids, with_label=True)

    def _create_test_set(self) -> Dataset | None:
        return ItemList(self, self.test_ids, with_label=True)

    def _create_unlabeled_set(self) -> Dataset:
        return ItemList(self, self.pool_ids, with_label=False)

    def label_items(self, ids: list[str], pseudo_labels: dict[str, Any] | None = None) -> None:
        # The oracle: move pool items to the training set, with their ground truth or the given pseudo labels.
        pseudo_labels = pseudo_labels or {}
        wanted = [*ids, *pseudo_labels]
        pool = set(self.pool_ids)
        wrong = [i for i in wanted if i not in pool]
        if wrong or len(set(wanted)) != len(wanted):
            raise PluginError(f"label_items: ids not in the unlabelled pool, or repeated: {wrong or wanted}.")
        for item_id, label in pseudo_labels.items():
            self.pseudo_labels[item_id] = torch.as_tensor(label, dtype=torch.int64)
        moved = set(wanted)
        self.pool_ids[:] = [i for i in self.pool_ids if i not in moved]  # in place: the datasets share the lists
        self.training_ids.extend(wanted)

    def id_to_class_names(self) -> dict[int, str]:
        return {0: "background", 1: "lesion"}

    def multi_label(self) -> bool:
        return False  # one class per pixel: softmax outputs, labels [1, H, W]

    # Optional, cheaper or richer than the defaults of ActiveLearningDataModule:
    def unlabeled_ids(self) -> list[str]:
        return list(self.pool_ids)

    def labeled_ids(self) -> list[str]:
        return list(self.training_ids)

    def training_set_num_pseudo_labels(self) -> int:
        return len(self.pseudo_labels)

    def ground_truth(self, ids: list[str]) -> dict[str, torch.Tensor]:
        # The simulated oracle's answer without labelling (pseudo labels derived from labelled slices use it).
        known = {*self.training_ids, *self.pool_ids, *self.val_ids, *self.test_ids}
        unknown = [i for i in ids if i not in known]
        if unknown:
            raise PluginError(f"ground_truth: unknown ids {unknown}.")
        return {i: self.read_mask(i) for i in ids}


def write_example_data(data_dir: str | Path, cases: int = 6, slices: int = 6, size: int = 32, seed: int = 0) -> None:
    """Writes cases x slices noisy slices; every other case has a bright disc (the lesion) in its middle slices."""
    rng = np.random.default_rng(seed)
    root = Path(data_dir)
    (root / "images").mkdir(parents=True, exist_ok=True)
    (root / "masks").mkdir(parents=True, exist_ok=True)
    yy, xx = np.mgrid[:size, :size]
    for case in range(cases):
        cy, cx = rng.integers(size // 4, 3 * size // 4, 2)
        for index in range(slices):
            has_lesion = case % 2 == 0 and slices // 3 <= index < 2 * slices // 3
            mask = ((yy - cy) ** 2 + (xx - cx) ** 2 < (size / 5) ** 2) & has_lesion
            image = rng.normal(0.0, 0.3, (1, size, size)) + mask
            np.save(root / "images" / f"case{case}_{index}.npy", image.astype(np.float32))
            np.save(root / "masks" / f"case{case}_{index}.npy", mask.astype(np.uint8))


if __name__ == "__main__":
    write_example_data(sys.argv[1])
    print(f"Wrote example data to {sys.argv[1]}")
