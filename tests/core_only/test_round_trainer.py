"""The round trainer: the best checkpoint's metrics come from the validation that chose it."""

import pytest
import torch
from lightning.pytorch import Trainer, seed_everything

from alseg.core.round_trainer import RoundTrainer
from alseg.core.run_directory import RunDirectory
from alseg.core.testing import InMemoryDataModule, TinySegmentationModel


class CountingModel(TinySegmentationModel):
    """Counts its validation epochs outside sanity checks."""

    validation_epochs = 0

    def on_validation_epoch_end(self) -> None:
        super().on_validation_epoch_end()
        if not self.trainer.sanity_checking:
            self.validation_epochs += 1


@pytest.mark.parametrize(("criterion", "epochs"), [("loss", 3), ("mean_dice", 4)])
def test_the_best_checkpoint_is_not_validated_twice_and_keeps_its_metrics(tmp_path, criterion, epochs):
    seed_everything(0, verbose=False)
    data, model = InMemoryDataModule(), CountingModel(learning_rate=0.05)
    trainer = RoundTrainer(RunDirectory(tmp_path / "run"), criterion=criterion, trainer_options={"accelerator": "cpu"})
    result = trainer.train(model, data, round_index=0, epochs=epochs)
    assert model.validation_epochs == epochs  # one per epoch, none for the best checkpoint afterwards
    fresh = CountingModel()
    fresh.bind_data(data)
    fresh.load_state_dict(torch.load(tmp_path / "run" / result.best_checkpoint, weights_only=True)["state_dict"])
    options = {"logger": False, "enable_progress_bar": False, "enable_model_summary": False}
    again = Trainer(accelerator="cpu", **options).validate(fresh, datamodule=data, verbose=False)[0]
    assert result.metrics.keys() == again.keys()
    assert result.metrics == pytest.approx({k: float(v) for k, v in again.items()}, rel=1e-5, abs=1e-6)
