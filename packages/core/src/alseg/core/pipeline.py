"""The active-learning loop: train, query, label, repeat — with a ledger that makes runs resumable."""

from __future__ import annotations

import time
from functools import partial
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
from lightning.pytorch import seed_everything

from alseg.core import distributed, heatmaps, progress
from alseg.core.data_module import ActiveLearningDataModule
from alseg.core.errors import ConfigError, PluginError
from alseg.core.inference import placement
from alseg.core.init_args import describe, init_defaults, plain
from alseg.core.metrics import label_dice
from alseg.core.model import PytorchModel
from alseg.core.oracle import Oracle, SimulatedOracle
from alseg.core.query_view import QueryView
from alseg.core.round_labels import RoundLabels, checked_ground_truth
from alseg.core.round_record import RoundRecord
from alseg.core.round_trainer import RoundTrainer
from alseg.core.run_directory import RunDirectory
from alseg.core.selection_check import check_selection
from alseg.core.strategy import QueryStrategy
from alseg.core.tracking import TrackingOptions, resolve_loggers, track


class ActiveLearningPipeline:
    """Runs an active-learning experiment in simulation.

    Round 0 trains on the data module's initial training set. Every later round asks the strategy for
    ``items_to_label`` ids, checks them, lets the data module label them, optionally resets the weights, trains,
    loads the best checkpoint (the next round starts from its weights unless ``reset_weights``), validates it and
    appends the round to ``rounds.jsonl``. Started again on the same ``output_dir``, a run resumes after its last
    completed round and makes the same selections as an uninterrupted run: each round re-seeds every RNG from
    ``(seed, round)`` and starts from the weights saved by the round before. A model that creates its weights in
    ``__init__`` takes them from the global RNG there: build the objects after ``lightning.seed_everything(seed)``
    (as ``alseg-train`` and :func:`alseg.core.cli.build_pipeline` do), or their first weights differ from run to run.

    The strategy sees the data module through a :class:`~alseg.core.query_view.QueryView` and runs its model on the
    Trainer's device and precision. The ``oracle`` labels the selected ids (:mod:`alseg.core.oracle`): by default
    the data module's ground truth; an oracle that asks a person may answer later
    (:class:`~alseg.core.oracle.LabelsPending` ends :meth:`run`, the selection waits in the run directory and the same
    run started again continues it as if the labels had come at once: :mod:`alseg.core.pending_round`). Under a
    distributed run (e.g. ``trainer_options={"strategy": "ddp", "devices": N}``) every rank runs the loop, all ranks
    label rank 0's selection, and only rank 0 writes the run
    directory, which it locks for its whole run.

    Args:
        data_module: The data module (owns the split and the initial labelled set).
        model: The model; it is sized from the data module.
        strategy: The query strategy.
        output_dir: The run directory (see :mod:`alseg.core.run_directory`).
        items_to_label: Items labelled per query round.
        iterations: Query rounds after round 0 (``iterations + 1`` trainings); None runs until the pool is empty.
        epochs: Training epochs per round.
        initial_epochs: Training epochs of round 0 (defaults to ``epochs``).
        epochs_increase_per_query: Epochs added per query round (round ``r`` trains ``epochs + r * increase``).
        reset_weights: Re-initialise the weights before training in every query round.
        early_stopping: Stop a round's training when the selection criterion stops improving.
        early_stopping_patience: Validation checks without improvement before stopping.
        model_selection_criterion: Validation metric that picks the best checkpoint of a round (logged as
            ``val/<name>``); ``loss`` by default.
        model_selection_mode: ``min`` or ``max``; by default ``min`` for losses and distances, ``max`` otherwise.
        test_each_round: Also test every round's best checkpoint and record its ``test/...`` metrics: learning
            curves on cases that never chose a checkpoint (the validation metrics that did are optimistic).
        seed: Seed of every random choice of the run.
        deterministic: Ask torch for deterministic algorithms.
        trainer_options: Further keyword arguments of ``lightning.pytorch.Trainer`` (e.g. ``accelerator``).
        logger: Where logs go: ``csv`` (Lightning CSV logs of every round's epochs), ``tensorboard``, ``wandb``,
            ``mlflow`` (one tracked run per active-learning run, a step per round; extras ``alseg-core[<name>]``), or
            a list of them; ``True`` is ``csv``, ``False`` none. See :mod:`alseg.core.tracking`.
        tracking_project: W&B project and MLflow experiment of the tracked run; by default ``WANDB_PROJECT`` /
            ``MLFLOW_EXPERIMENT_NAME``, else ``alseg``.
        tracking_uri: MLflow tracking URI; by default ``MLFLOW_TRACKING_URI``, else a SQLite store under
            ``<output_dir>/logs/mlflow``.
        config: The resolved configuration, written to ``config.yaml`` and compared on resume; by default the
            class paths and resolved constructor arguments of the three objects (and of an oracle other than the
            simulated one), the seed, the active-learning options and the Trainer options.
        oracle: Labels the selected ids; default :class:`~alseg.core.oracle.SimulatedOracle` (the ground truth).
        heatmaps_per_round: Draw the first N ids selected in each round (image, contours, the strategy's score map)
            into ``<output_dir>/heatmaps/round_XXX/`` after the round, from the querying checkpoint
            (:mod:`alseg.core.heatmaps`; extra ``alseg-core[heatmaps]``); 0 draws none.
        heatmaps_gradcam_layer: A layer name (``model.named_modules()``) whose Grad-CAM the heatmaps add.
    """

    def __init__(
        self,
        data_module: ActiveLearningDataModule,
        model: PytorchModel,
        strategy: QueryStrategy,
        output_dir: str | Path = "runs/default",
        *,
        items_to_label: int = 1,
        iterations: int | None = 1,
        epochs: int = 1,
        initial_epochs: int | None = None,
        epochs_increase_per_query: int = 0,
        reset_weights: bool = False,
        early_stopping: bool = False,
        early_stopping_patience: int = 3,
        model_selection_criterion: str = "loss",
        model_selection_mode: Literal["min", "max"] | None = None,
        test_each_round: bool = False,
        seed: int = 0,
        deterministic: bool = False,
        trainer_options: dict[str, Any] | None = None,
        logger: bool | list[str] | str = "csv",
        tracking_project: str | None = None,
        tracking_uri: str | None = None,
        config: dict[str, Any] | None = None,
        oracle: Oracle | None = None,
        heatmaps_per_round: int = 0,
        heatmaps_gradcam_layer: str | None = None,
    ) -> None:
        self.loggers = resolve_loggers(logger)
        heatmaps.check_options(heatmaps_per_round, heatmaps_gradcam_layer)
        self.heatmaps = {"per_round": heatmaps_per_round, "gradcam_layer": heatmaps_gradcam_layer}
        _check_at_least("items_to_label", items_to_label, 1)
        _check_at_least("epochs", epochs, 1)
        _check_at_least("epochs_increase_per_query", epochs_increase_per_query, 0)
        _check_at_least("early_stopping_patience", early_stopping_patience, 1)
        if iterations is not None:
            _check_at_least("iterations", iterations, 0)
        if initial_epochs is not None:
            _check_at_least("initial_epochs", initial_epochs, 1)
        self.data_module = data_module
        self.model = model
        self.strategy = strategy
        self.oracle = oracle or SimulatedOracle()
        self.labels: RoundLabels  # the label path, built when the run starts (on the data module it then holds)
        self.run_dir = RunDirectory(output_dir)
        self.items_to_label = items_to_label
        self.iterations = iterations
        self.epochs = epochs
        self.initial_epochs = initial_epochs or epochs
        self.epochs_increase_per_query = epochs_increase_per_query
        self.reset_weights = reset_weights
        self.test_each_round = test_each_round
        self.seed = seed
        self.tracking = TrackingOptions(tracking_project, tracking_uri, str(output_dir))
        self._cost: dict[str, int | float] = {}
        self.config = config or {
            "seed": seed,
            **{key: describe(obj) for key, obj in (("model", model), ("data", data_module), ("strategy", strategy))},
            "active_learning": {
                "items_to_label": items_to_label,
                "iterations": iterations,
                "epochs": epochs,
                "initial_epochs": initial_epochs,
                "epochs_increase_per_query": epochs_increase_per_query,
                "reset_weights": reset_weights,
                "early_stopping": early_stopping,
                "early_stopping_patience": early_stopping_patience,
                "model_selection_criterion": model_selection_criterion,
                "model_selection_mode": model_selection_mode,
                "test_each_round": test_each_round,
                "deterministic": deterministic,
                "heatmaps_per_round": heatmaps_per_round,
                "heatmaps_gradcam_layer": heatmaps_gradcam_layer,
            },
            "trainer": plain(trainer_options or {}),
        }
        if config is None and not isinstance(self.oracle, SimulatedOracle):
            self.config["oracle"] = describe(self.oracle)
        self.trainer = RoundTrainer(
            self.run_dir,
            criterion=model_selection_criterion,
            mode=model_selection_mode,
            early_stopping_patience=early_stopping_patience if early_stopping else None,
            deterministic=deterministic,
            trainer_options=trainer_options,
            logger="csv" in self.loggers,
        )

    def run(self) -> dict[str, Any]:
        """Runs (or resumes) the experiment and returns the summary that is also written to ``summary.json``.

        Raises:
            ConfigError: Another process writes the run directory, or it holds a run with another configuration or
                other data.
        """
        if not self.is_writer:
            return self._run(writer=False)
        with self.run_dir.lock():
            return self._run(writer=True)

    @property
    def is_writer(self) -> bool:
        """True in the process that writes the run directory (rank 0 of a distributed run)."""
        return distributed.is_rank_zero()

    def _run(self, writer: bool) -> dict[str, Any]:
        """The loop; only the ``writer`` (rank 0) writes the run directory, the other ranks read it."""
        self.data_module.setup()
        self.oracle.check(self.data_module)
        self.labels = RoundLabels(
            self.oracle,
            self.data_module,
            self.run_dir,
            self.model,
            self.trainer.placement,
            type(self.strategy).__name__,
        )
        if writer:
            self.run_dir.prepare(self.config, self.data_module.data_fingerprint(), self._option_defaults())
            records = self.run_dir.resume()
        else:
            records = self.run_dir.read_rounds()
        seed_everything(self.seed, verbose=False)  # layers built lazily from the data start from this seed
        self.model.bind_data(self.data_module)
        heatmaps.check_layer(self.model, self.heatmaps["gradcam_layer"])
        self._cost = self.data_module.annotation_cost(self.data_module.labeled_ids())
        self._replay(records)
        if writer:
            self._draw_heatmaps()  # rounds of an earlier start that have none (e.g. the option was added since)
        round_index = len(records)
        with track(self.run_dir, self.loggers if writer else (), records, self.tracking) as tracker:
            while self._has_next_round(round_index):
                records.append(self._run_round(round_index, writer))
                if writer:
                    self.run_dir.append_round(records[-1])
                    self.run_dir.clear_pending()
                    tracker.log_round(records[-1])
                    progress.say(_round_line(records[-1]))
                    self._draw_heatmaps()
                round_index += 1
            summary = self._summarise(records)
            if writer:
                self.run_dir.write_summary(summary)
                tracker.finish(summary, records[-1])
        return summary

    def _option_defaults(self) -> dict[str, Any]:
        """Dotted config key → default of every option of the loop and of the three objects (for old runs)."""
        defaults = {f"active_learning.{name}": value for name, value in init_defaults(type(self)).items()}
        for section, obj in (("model", self.model), ("data", self.data_module), ("strategy", self.strategy)):
            defaults |= {f"{section}.init_args.{name}": value for name, value in init_defaults(type(obj)).items()}
        return defaults

    def _has_next_round(self, round_index: int) -> bool:
        if self.iterations is not None and round_index > self.iterations:
            return False
        return round_index == 0 or self.data_module.unlabeled_set_size() > 0

    def _replay(self, records: list[RoundRecord]) -> None:
        """Restores the labels and weights of completed rounds without selecting again."""
        for record in records[1:]:
            self.labels.replay(record)
            self._add_cost(record.selected_ids)
        if records:
            expected = records[-1].num_training_items
            if self.data_module.training_set_size() != expected:
                raise ConfigError(
                    f"Cannot resume {self.run_dir.path}: the ledger records {expected} training items after round "
                    f"{records[-1].round}, but replaying it gives {self.data_module.training_set_size()}. "
                    "The data changed since the run started."
                )
            self.trainer.load_weights(self.model, records[-1].best_checkpoint)

    def _run_round(self, round_index: int, writer: bool) -> RoundRecord:
        start = time.perf_counter()
        round_seed = derive_seed(self.seed, round_index)
        seed_everything(round_seed, workers=True, verbose=False)
        self.model.active_learning_round = round_index  # for the pseudo-label weight schedule
        selected: list[str] = []
        pseudo_labels: dict[str, Any] | None = None
        view = QueryView(self.data_module, type(self.strategy).__name__)
        waited_s = 0.0
        if round_index > 0:
            query = partial(self._query, view, round_index, round_seed)
            selected, pseudo_labels, waited_s = self.labels.select_and_label(query, view, round_index, writer)
            self._add_cost(selected)
            if self.reset_weights:
                self.model.reset_parameters()
        query_s = time.perf_counter() - start + waited_s
        epochs = self.initial_epochs if round_index == 0 else self.epochs + round_index * self.epochs_increase_per_query
        result = self.trainer.train(self.model, self.data_module, round_index, epochs, test=self.test_each_round)
        num_pseudo = self.data_module.training_set_num_pseudo_labels()
        return RoundRecord(
            round=round_index,
            seed=round_seed,
            selected_ids=selected,
            num_labeled=self.data_module.training_set_size() - num_pseudo,
            num_unlabeled=self.data_module.unlabeled_set_size(),
            epochs=epochs,
            metrics=result.metrics,
            best_checkpoint=result.best_checkpoint,
            num_pseudo_labeled=num_pseudo,
            pseudo_labeled_ids=sorted(pseudo_labels or {}),
            pseudo_labels_file=self.run_dir.save_pseudo_labels(round_index, pseudo_labels) if writer else None,
            pseudo_label_dice=self._pseudo_label_dice(pseudo_labels),
            selected_with_foreground=_count_true(self.data_module.items_with_foreground(selected)),
            annotation_cost=dict(self._cost),
            ground_truth_revealed=len(view.revealed_ids),
            strategy_notes=view.notes,
            timing_s={"query": query_s, "train": result.train_s, "validate": result.validate_s, "test": result.test_s},
            wall_time_s=time.perf_counter() - start,
        )

    def _draw_heatmaps(self) -> None:
        """Draws the heatmaps of the rounds that have none yet (rank 0, on the Trainer's device)."""
        if self.heatmaps["per_round"]:
            where = self.trainer.placement()
            heatmaps.draw_heatmaps(self.run_dir, self.data_module, self.model, self.strategy, placement=where,
                                   **self.heatmaps)  # fmt: skip

    def _add_cost(self, ids: list[str]) -> None:
        """Adds the annotation cost of oracle labels (``ids``, pseudo labels excluded) to the run's total."""
        for unit, amount in self.data_module.annotation_cost(ids).items():  # counts, or fractions
            self._cost[unit] = self._cost.get(unit, 0) + (float(amount) if isinstance(amount, float) else int(amount))

    def _query(self, view: QueryView, round_index: int, round_seed: int) -> tuple[list[str], dict[str, Any] | None]:
        """Asks the strategy (through ``view``, on the Trainer's device), checks its answer and labels rank 0's."""
        name = type(self.strategy).__name__
        pool_ids = self.data_module.unlabeled_ids()
        labelled = self.data_module.training_set_size()
        with placement(self.trainer.placement()):
            answer = self.strategy.select_items_to_label(
                self.model, view, self.items_to_label, seed=round_seed, round=round_index
            )
        if self.data_module.unlabeled_ids() != pool_ids or self.data_module.training_set_size() != labelled:
            raise PluginError(
                f"Strategy {name} changed the labelled set during its query ({labelled} → "
                f"{self.data_module.training_set_size()} training items). A strategy returns ids; the pipeline labels "
                "them, within the round's budget."
            )
        selected, pseudo_labels = check_selection(name, answer, pool_ids, self.items_to_label)
        answers = distributed.all_gather_objects((selected, pseudo_labels, view.notes, view.revealed_ids))
        differing = [rank for rank, other in enumerate(answers) if other[0] != selected]
        if differing:  # every rank must label the same items; only a strategy that ignores the seed gets here
            raise PluginError(
                f"Strategy {name} selected other ids on rank(s) {differing} than on rank {distributed.rank()}. Under "
                "a distributed run every rank must select the same ids: use only the seed the pipeline passes."
            )
        selected, pseudo_labels, view.notes, view.revealed_ids = answers[0]  # rank 0's, as written to the ledger
        return selected, pseudo_labels

    def _pseudo_label_dice(self, pseudo_labels: dict[str, Any] | None) -> dict[str, float]:
        """The Dice of every pseudo label against the ground truth of its item (analysis only)."""
        known = sorted(
            set(pseudo_labels or ()) - set(self.data_module.ids_without_ground_truth(sorted(pseudo_labels or ())))
        )
        truth = checked_ground_truth(self.data_module, known) if known else None
        if truth is None:
            return {}
        classes, multi_label = self.data_module.num_classes(), self.data_module.multi_label()
        return {i: label_dice(torch.as_tensor(pseudo_labels[i]), truth[i], classes, multi_label) for i in sorted(truth)}

    def _summarise(self, records: list[RoundRecord]) -> dict[str, Any]:
        """Tests the final model; returns the summary of the run (round 0 always ran)."""
        last = records[-1]
        tested = {k: v for k, v in last.metrics.items() if k.startswith("test/")}
        validated = {k: v for k, v in last.metrics.items() if k not in tested}
        return {
            "output_dir": str(self.run_dir.path),
            "rounds": len(records),
            "num_labeled": last.num_labeled,
            "num_unlabeled": last.num_unlabeled,
            "final_metrics": validated,
            "test_metrics": tested or self.trainer.test(self.model, self.data_module),
            "best_checkpoint": last.best_checkpoint,
            "ledger": str(self.run_dir.ledger_path),
        }


def derive_seed(seed: int, round_index: int) -> int:
    """Returns the seed of one round: a function of the run's seed and the round only (stable across resumes)."""
    return int(np.random.SeedSequence([seed, round_index]).generate_state(1)[0])


def _count_true(flags: list[bool] | None) -> int | None:
    return None if flags is None else sum(map(bool, flags))


def _check_at_least(name: str, value: int, minimum: int) -> None:
    if not isinstance(value, int) or isinstance(value, bool) or value < minimum:
        raise ConfigError(
            f"The '{name}' option of the active_learning section must be an integer >= {minimum}. Got {value!r}."
        )


def _round_line(record: RoundRecord) -> str:
    shown = [k for k in sorted(record.metrics) if k.endswith(("loss", "mean_dice"))] or sorted(record.metrics)
    metrics = ", ".join(f"{k} {record.metrics[k]:.4g}" for k in shown[:4])
    return (
        f"round {record.round}: {record.num_labeled} labelled (+{len(record.selected_ids)}), "
        f"{record.num_unlabeled} in the pool; {metrics}; {record.wall_time_s:.1f} s"
    )
