"""Heatmaps of queried 3D volumes: the score map as NIfTI in the case's geometry, equal to the strategy's scores."""

import json

import nibabel as nib
import numpy as np
import torch

from alseg.core.inference import Placement, batch_probabilities
from alseg.datasets.annotation_items import AnnotationItem
from alseg.datasets.synthetic import write_brats
from alseg.datasets.trained_run import load_run
from alseg.strategies.entropy import EntropyStrategy

THREE_D = ["--data.dim", "3", "--model.dim", "3", "--data.patch_size", "[16, 16, 8]", "--model.roi_size", "[8, 8, 8]"]


def test_nifti_score_map_of_a_queried_volume(tmp_path, alseg_train):
    data_dir = write_brats(tmp_path / "brats", n_cases=6, shape=(16, 16, 8), seed=1)
    data = ["--data.data_dir", str(data_dir), "--data.cache_dir", str(tmp_path / "cache")]
    run = tmp_path / "run"
    records = alseg_train(run, data, *THREE_D, "--data.initial_training_set_size", "1", "--strategy", "entropy",
                          "--active_learning.heatmaps_per_round", "1",
                          "--active_learning.heatmaps_gradcam_layer", "net.model.0.conv")  # fmt: skip
    item_id = records[1]["selected_ids"][0]
    folder = run / "heatmaps" / "round_001"
    assert sorted(p.name for p in folder.iterdir()) == [f"01_{item_id}.nii.gz", f"01_{item_id}.png", "heatmaps.json"]
    done = json.loads((folder / "heatmaps.json").read_text())
    assert done["ids"] == [item_id] and done["gradcam_layer"] == "net.model.0.conv"

    querying = load_run(run, 0)  # the model that made round 1's query, with the run's data module
    querying.data_module.setup()
    batch = next(b for b in querying.data_module.unlabeled_dataloader() if item_id in b["id"])
    keep = batch["id"].index(item_id)
    single = {"image": batch["image"][keep : keep + 1], "id": [item_id], "case_id": [item_id]}
    single["spacing"] = batch["spacing"][keep : keep + 1]
    probabilities = batch_probabilities(querying.model, single, Placement(torch.device("cpu")))
    expected = EntropyStrategy().voxel_scores(probabilities, querying.data_module.multi_label())[0].numpy()

    written = nib.load(folder / f"01_{item_id}.nii.gz")
    item = AnnotationItem.of(querying.data_module, item_id)
    np.testing.assert_allclose(item.to_reader(np.asanyarray(written.dataobj)), expected, rtol=1e-5, atol=1e-6)
    source = nib.load(next(iter(querying.data_module.case(item_id).images.values())).path)
    np.testing.assert_allclose(written.affine, source.affine)
    assert written.get_data_dtype() == np.float32 and torch.isfinite(torch.from_numpy(expected)).all()
