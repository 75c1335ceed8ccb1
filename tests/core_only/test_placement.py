"""Pool inference runs on the Trainer's device and precision, not where Lightning left the model after fit."""

import pytest
import torch

from alseg.core.inference import Placement, current_placement, placement, stream_probabilities
from alseg.core.query_view import QueryView
from alseg.core.testing import InMemoryDataModule, SeededRandomStrategy, TinySegmentationModel


class Spying(SeededRandomStrategy):
    """Streams the pool once and records where and how the model ran."""

    seen: list = []

    def select_items_to_label(self, models, data_module, items_to_label, **kwargs):
        where = current_placement(models)
        batch, probabilities = next(stream_probabilities(models, data_module))
        Spying.seen.append(
            {
                "placement": where.device,
                "parameters": next(models.parameters()).device,
                "batch": batch["image"].device,
                "probabilities": probabilities.dtype,
            }
        )
        return super().select_items_to_label(models, data_module, items_to_label, **kwargs)


class AutocastSpy(TinySegmentationModel):
    """Records whether CPU autocast is on in every prediction."""

    autocast: list = []

    def predict_step(self, batch, batch_idx, dataloader_idx=0):
        AutocastSpy.autocast.append(torch.is_autocast_enabled("cpu"))
        return super().predict_step(batch, batch_idx, dataloader_idx)


def test_streaming_moves_model_and_batches_to_the_placement_device():
    data = InMemoryDataModule()
    model = TinySegmentationModel()
    model.bind_data(data)
    with placement(Placement(torch.device("meta"))):
        batch, probabilities = next(stream_probabilities(model, QueryView(data)))
    assert next(model.parameters()).device.type == "meta"  # not the CPU the model sat on
    assert batch["image"].device.type == "meta" and probabilities.device.type == "meta"


def test_the_pipeline_hands_inference_the_trainers_device(make_pipeline, monkeypatch):
    monkeypatch.setattr(Spying, "seen", [])
    pipeline = make_pipeline(strategy=Spying(), iterations=1)
    pipeline.run()
    root = pipeline.trainer.placement().device
    assert root == torch.device("cpu")
    assert Spying.seen == [{"placement": root, "parameters": root, "batch": root, "probabilities": torch.float32}]


def test_pool_inference_uses_the_trainers_precision(make_pipeline, monkeypatch):
    monkeypatch.setattr(AutocastSpy, "autocast", [])
    options = {"accelerator": "cpu", "precision": "bf16-mixed"}
    pipeline = make_pipeline(strategy=Spying(), iterations=1, trainer_options=options)
    pipeline.model = AutocastSpy()
    pipeline.run()
    assert AutocastSpy.autocast and all(AutocastSpy.autocast)  # bf16 autocast, as in training
    assert Spying.seen[-1]["probabilities"] == torch.float32  # probabilities stay float32


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_queries_after_gpu_training_run_on_the_gpu(make_pipeline, monkeypatch):
    monkeypatch.setattr(Spying, "seen", [])
    make_pipeline(strategy=Spying(), iterations=1, trainer_options={"accelerator": "gpu", "devices": 1}).run()
    assert Spying.seen[0]["parameters"].type == "cuda" and Spying.seen[0]["batch"].type == "cuda"
