"""The MONAI U-Net model: shapes, output activations, dropout, embeddings, sliding windows, options, end to end."""

import json
from functools import partial

import pytest
import torch
from jsonargparse import ArgumentParser
from lightning.pytorch import Trainer
from torch import nn
from torch.utils.data import DataLoader

from alseg.core import ActiveLearningPipeline, ConfigError, DataError, PytorchModel
from alseg.core.mc_dropout import mc_dropout
from alseg.core.registry import resolve_class_path
from alseg.core.testing import InMemoryDataModule, ModelTarget, SeededRandomStrategy, parametrize_with_checks
from alseg.models.unet import UNet

TINY = {"base_channels": 4, "num_levels": 3}


class Sizes:
    """What bind_data reads from a data module: channels, classes and the output activation."""

    def __init__(self, channels: int = 1, classes: int = 3, multi_label: bool = False) -> None:
        self.channels, self.classes, self.is_multi_label = channels, classes, multi_label

    def data_channels(self) -> int:
        return self.channels

    def num_classes(self) -> int:
        return self.classes

    def multi_label(self) -> bool:
        return self.is_multi_label

    def id_to_class_names(self) -> dict[int, str]:
        return {i: f"class_{i}" for i in range(self.classes)}


def bound(sizes: Sizes | None = None, **options) -> UNet:
    torch.manual_seed(0)
    model = UNet(**{**TINY, **options})
    model.bind_data(sizes or Sizes())
    return model


def batch_of(image: torch.Tensor, label: torch.Tensor | None = None) -> dict:
    batch = {"image": image, "id": [f"item_{i}" for i in range(len(image))]}
    if label is not None:
        batch["label"] = label
    return batch


def bottom_layer(model: UNet) -> nn.Module:
    """The deepest block of MONAI's U-Net, found independently of UNet._bottleneck via named submodules."""
    names = [name for name, _ in model.net.named_modules() if name.count("submodule") == model.num_levels - 1]
    return model.net.get_submodule(min(names, key=len))


@pytest.mark.parametrize(("dim", "shape"), [(2, (2, 2, 16, 16)), (3, (2, 1, 8, 8, 8))])
def test_forward_and_backward(dim, shape):
    model = bound(Sizes(channels=shape[1], classes=3), dim=dim)
    image = torch.randn(shape)
    label = torch.randint(0, 3, (shape[0], 1, *shape[2:]))
    logits = model(image)
    assert logits.shape == (shape[0], 3, *shape[2:])
    model.compute_loss(logits, batch_of(image, label)).backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in model.parameters())
    assert model.input_dimensionality() == dim


@pytest.mark.parametrize("multi_label", [False, True])
def test_probabilities_softmax_or_sigmoid_from_the_data(multi_label):
    data = InMemoryDataModule(multi_label=multi_label)
    data.setup("fit")
    model = UNet(**TINY)
    model.bind_data(data)
    model.eval()
    pool_batch = next(iter(data.unlabeled_dataloader()))  # pool items carry no label
    with torch.inference_mode():
        probs = model.predict_step(pool_batch, 0)
    assert probs.dtype == torch.float32
    assert probs.shape == (len(pool_batch["id"]), 2, 16, 16)
    assert bool(((probs >= 0) & (probs <= 1)).all())
    sums_to_one = torch.allclose(probs.sum(dim=1), torch.ones(1), atol=1e-5)
    assert sums_to_one != multi_label


@pytest.mark.parametrize("num_res_units", [0, 2])
def test_dropout_layers_exist_only_with_positive_dropout(num_res_units):
    with_dropout = bound(num_res_units=num_res_units, dropout=0.2)
    layers = [m for m in with_dropout.modules() if isinstance(m, nn.Dropout)]
    assert layers and all(layer.p == 0.2 for layer in layers)
    assert not any(isinstance(m, nn.Dropout) for m in bound(num_res_units=num_res_units, dropout=0.0).modules())


def test_reset_parameters_changes_the_weights():
    model = bound()
    before = [p.detach().clone() for p in model.parameters()]
    model.reset_parameters()
    conv_weights = [(b, p) for b, p in zip(before, model.parameters(), strict=True) if p.ndim > 1]
    assert conv_weights and all(not torch.equal(b, p) for b, p in conv_weights)


def test_mc_dropout_samples_differ_and_batch_norm_statistics_stay():
    model = bound(norm="batch", dim=3)
    model.eval()
    norms = [m for m in model.modules() if isinstance(m, nn.BatchNorm3d)]
    stats = [(m.running_mean.clone(), m.running_var.clone()) for m in norms]
    batch = batch_of(torch.randn(2, 1, 8, 8, 8))
    with mc_dropout(model), torch.inference_mode():
        samples = torch.stack([model.predict_step(batch, 0) for _ in range(3)])
    assert norms and not any(m.training for m in norms)
    assert all(
        torch.equal(m.running_mean, mean) and torch.equal(m.running_var, var)
        for m, (mean, var) in zip(norms, stats, strict=True)
    )
    assert not torch.allclose(samples[0], samples[1]) and not torch.allclose(samples[1], samples[2])
    with torch.inference_mode():
        assert torch.equal(model.predict_step(batch, 0), model.predict_step(batch, 0))  # eval: deterministic


@pytest.mark.parametrize(("dim", "shape"), [(2, (3, 1, 16, 8)), (3, (2, 1, 8, 8, 16))])
def test_embedding_is_the_pooled_bottleneck(dim, shape):
    model = bound(dim=dim)
    model.eval()
    captured = []
    bottom_layer(model).register_forward_hook(lambda module, inputs, output: captured.append(output))
    image = torch.randn(shape)
    with torch.inference_mode():
        model(image)
        embedding = model.embedding_step(batch_of(image), 0)
    assert embedding.shape == (shape[0], 4 * 2**2) and embedding.dtype == torch.float32
    assert captured[0].shape[2:] == tuple(s // 4 for s in shape[2:])
    torch.testing.assert_close(embedding, captured[0].flatten(2).mean(2))


def test_sliding_window_covers_volumes_larger_and_smaller_than_the_window():
    model = bound(dim=3, roi_size=[8, 8, 8], overlap=0.5)
    model.eval()
    with torch.inference_mode():
        large = model.predict_step(batch_of(torch.randn(1, 1, 12, 20, 9)), 0)  # not divisible by 4: tiled
        small = model.predict_step(batch_of(torch.randn(2, 1, 6, 8, 5)), 0)
        assert model.embedding_step(batch_of(torch.randn(1, 1, 12, 20, 9)), 0).shape == (1, 16)
    assert large.shape == (1, 3, 12, 20, 9) and small.shape == (2, 3, 6, 8, 5)
    torch.testing.assert_close(large.sum(1), torch.ones(1, 12, 20, 9))


def test_one_window_equals_the_whole_volume():
    whole, tiled = bound(dim=3), bound(dim=3, roi_size=[8, 8, 8])
    whole.eval(), tiled.eval()
    batch = batch_of(torch.randn(2, 1, 8, 8, 8))
    with torch.inference_mode():
        torch.testing.assert_close(tiled.predict_step(batch, 0), whole.predict_step(batch, 0))
        torch.testing.assert_close(tiled.embedding_step(batch, 0), whole.embedding_step(batch, 0))


@pytest.mark.parametrize(
    ("options", "named"),
    [
        ({"dim": 4}, "'dim' option of the unet model must be 2 or 3. Got 4."),
        ({"num_levels": 1}, "'num_levels'"),
        ({"dropout": 1.0}, "'dropout' option of the unet model must be in [0, 1). Got 1.0."),
        ({"dropout": -0.1}, "'dropout'"),
        ({"base_channels": 0}, "'base_channels'"),
        ({"norm": "layer"}, "'norm' option of the unet model must be one of: batch, instance. Got 'layer'."),
        ({"roi_size": [16, 16]}, "'roi_size' option of the unet model must be 3 sizes"),
        ({"roi_size": [16, 16, 12]}, "each a positive multiple of 8. Got [16, 16, 12]."),
        ({"overlap": 1}, "'overlap'"),
        ({"learning_rate": 0}, "'learning_rate'"),  # forwarded to PytorchModel
    ],
)
def test_bad_options_raise_config_error(options, named):
    with pytest.raises(ConfigError) as error:
        UNet(**{"dim": 3, **options})
    assert named in str(error.value)


def test_indivisible_or_wrongly_shaped_input_raises_data_error():
    model = bound()
    with pytest.raises(DataError, match=r"divisible by 4. Got image shape \(1, 1, 16, 10\)"):
        model(torch.randn(1, 1, 16, 10))
    with pytest.raises(DataError, match=r"dim=2 needs images .* Got shape \(1, 16, 16\)"):
        model.predict_step(batch_of(torch.randn(1, 16, 16)), 0)


@parametrize_with_checks(
    ModelTarget(partial(UNet, **TINY), name="unet-single_label"),
    ModelTarget(partial(UNet, **TINY), partial(InMemoryDataModule, multi_label=True), name="unet-multi_label"),
)
def test_passes_the_conformance_kit(check):
    check()


def test_validates_3d_volumes_window_by_window():
    model = bound(Sizes(classes=2), dim=3, roi_size=[8, 8, 8])
    volumes = [
        {"image": torch.randn(1, 12, 12, 10), "label": torch.randint(0, 2, (1, 12, 12, 10)), "id": f"case_{i}"}
        for i in range(2)
    ]
    trainer = Trainer(accelerator="cpu", logger=False, enable_progress_bar=False, enable_model_summary=False)
    metrics = trainer.validate(model, dataloaders=DataLoader(volumes, batch_size=2), verbose=False)[0]
    assert {"val/loss", "val/mean_dice", "val/dice_class_1"} <= set(metrics)


def test_registered_and_built_from_a_config():
    parser = ArgumentParser(exit_on_error=False)
    parser.add_subclass_arguments(PytorchModel, "model")
    path = resolve_class_path("model", "unet")
    config = parser.parse_args(
        ["--model", path, "--model.dim=3", "--model.roi_size=[16,16,16]", "--model.learning_rate=0.01"]
    )
    model = parser.instantiate(config).model
    assert isinstance(model, UNet) and model.roi_size == [16, 16, 16] and model.learning_rate == 0.01


def test_active_learning_pipeline_trains_it_end_to_end(tmp_path):
    torch.manual_seed(0)
    pipeline = ActiveLearningPipeline(
        InMemoryDataModule(),
        UNet(**TINY),
        SeededRandomStrategy(),
        tmp_path / "run",
        items_to_label=3,
        iterations=1,
        epochs=1,
        trainer_options={"accelerator": "cpu"},
        logger=False,
    )
    summary = pipeline.run()
    rounds = [json.loads(line) for line in (tmp_path / "run" / "rounds.jsonl").read_text().splitlines()]
    assert [r["num_labeled"] for r in rounds] == [4, 7]
    assert {"val/loss", "val/mean_dice"} <= set(rounds[-1]["metrics"])
    assert {"test/loss", "test/mean_dice"} <= set(summary["test_metrics"])
