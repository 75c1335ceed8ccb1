"""Experiment trackers, offline: one tracked run per active-learning run, a step per round, resume continues it."""

import json
import socket
import struct
import threading
from pathlib import Path

import pytest

from alseg.core import ActiveLearningPipeline, ConfigError
from alseg.core.testing import InMemoryDataModule, SeededRandomStrategy, TinySegmentationModel


class CrashingStrategy(SeededRandomStrategy):
    """The seeded random strategy, dying in round ``crash_round`` (set by a test)."""

    crash_round = None

    def select_items_to_label(self, models, data_module, items_to_label, **kwargs):
        if kwargs["round"] == self.crash_round:
            raise RuntimeError("simulated crash")
        return super().select_items_to_label(models, data_module, items_to_label, **kwargs)


def make_pipeline(run, iterations, **options):
    options.setdefault("trainer_options", {"accelerator": "cpu"})
    return ActiveLearningPipeline(
        InMemoryDataModule(),
        TinySegmentationModel(),
        CrashingStrategy(),
        run,
        items_to_label=3,
        iterations=iterations,
        epochs=1,
        **options,
    )


def ledger(run):
    return [json.loads(line) for line in (run / "rounds.jsonl").read_text().splitlines()]


def curve(run, key):
    return [record["metrics"][key] for record in ledger(run)]


@pytest.fixture(autouse=True)
def _quiet_trackers(monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)  # MLflow puts the artifacts of a given local database in ./mlruns
    for name in ("WANDB_MODE", "WANDB_PROJECT", "MLFLOW_TRACKING_URI", "MLFLOW_EXPERIMENT_NAME"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("MLFLOW_DISABLE_TELEMETRY", "true")
    monkeypatch.setenv("WANDB_SILENT", "true")


def test_tensorboard_event_files_hold_the_round_metrics_and_a_resume_continues_the_folder(tmp_path):
    event_accumulator = pytest.importorskip("tensorboard.backend.event_processing.event_accumulator")
    run = tmp_path / "run"
    make_pipeline(run, 1, logger="tensorboard").run()
    make_pipeline(run, 2, logger="tensorboard").run()  # resumed: round 2
    folder = run / "logs" / "tensorboard"
    assert len(list(folder.glob("events.out.tfevents.*"))) >= 2  # one per start, in the same folder
    assert [p.name for p in folder.iterdir() if p.is_dir()] == []  # no per-round sub-runs
    events = event_accumulator.EventAccumulator(str(folder))
    events.Reload()
    dice = events.Scalars("val/mean_dice")
    assert [e.step for e in dice] == [0, 1, 2]
    assert [e.value for e in dice] == pytest.approx(curve(run, "val/mean_dice"))
    assert [e.value for e in events.Scalars("num_labeled")] == [r["num_labeled"] for r in ledger(run)]
    assert [e.value for e in events.Scalars("annotation_cost/items")] == [4, 7, 10]
    assert not (run / "logs" / "csv").exists()  # csv only when asked for


def test_mlflow_local_store_one_run_a_step_per_round_artifacts_and_resume(tmp_path):
    tracking = pytest.importorskip("mlflow.tracking")
    run = tmp_path / "run"
    make_pipeline(run, 1, logger=["csv", "mlflow"]).run()
    first = json.loads((run / "logs" / "tracking.json").read_text())["mlflow"]["run_id"]
    make_pipeline(run, 2, logger=["csv", "mlflow"]).run()
    client = tracking.MlflowClient(f"sqlite:///{run / 'logs' / 'mlflow' / 'mlflow.db'}")
    experiment = client.get_experiment_by_name("alseg")
    runs = client.search_runs([experiment.experiment_id])
    assert [r.info.run_id for r in runs] == [first]  # the resume logged into the same run
    assert runs[0].info.status == "FINISHED" and runs[0].data.params["active_learning/items_to_label"] == "3"
    history = client.get_metric_history(first, "val/mean_dice")
    assert [m.step for m in history] == [0, 1, 2]
    assert [m.value for m in history] == pytest.approx(curve(run, "val/mean_dice"))
    # Without test_each_round, the final model's test metrics go in at the last round of each finish.
    assert [m.step for m in client.get_metric_history(first, "test/loss")] == [1, 2]
    assert sorted(a.path for a in client.list_artifacts(first)) == ["config.yaml", "rounds.jsonl", "summary.json"]
    copy = Path(client.download_artifacts(first, "rounds.jsonl", str(tmp_path)))
    assert copy.read_text() == (run / "rounds.jsonl").read_text()
    assert (run / "logs" / "csv" / "round_002" / "metrics.csv").exists()
    # The store lost the run (e.g. a store restored from an older copy): one clear error, not a silent new run.
    state = json.loads((run / "logs" / "tracking.json").read_text())
    state["mlflow"]["run_id"] = "0" * 32
    (run / "logs" / "tracking.json").write_text(json.dumps(state))
    with pytest.raises(ConfigError, match=r"names MLflow run 0{32}, which the tracking store sqlite:///.* does not"):
        make_pipeline(run, 2, logger="mlflow").run()


def test_a_tracker_added_on_resume_gets_the_whole_ledger_in_the_given_store(tmp_path):
    tracking = pytest.importorskip("mlflow.tracking")
    run, store = tmp_path / "run", f"sqlite:///{tmp_path / 'shared.db'}"
    make_pipeline(run, 1).run()  # csv only
    make_pipeline(run, 2, logger="mlflow", tracking_uri=store, tracking_project="brats").run()
    client = tracking.MlflowClient(store)
    (found,) = client.search_runs([client.get_experiment_by_name("brats").experiment_id])
    assert [m.step for m in client.get_metric_history(found.info.run_id, "val/loss")] == [0, 1, 2]
    assert [m.value for m in client.get_metric_history(found.info.run_id, "num_labeled")] == [4, 7, 10]
    assert not (run / "logs" / "mlflow").exists()


def test_a_crashed_run_is_failed_in_mlflow_and_its_resume_finishes_the_same_run(tmp_path, monkeypatch):
    tracking = pytest.importorskip("mlflow.tracking")
    run, store = tmp_path / "run", f"sqlite:///{tmp_path / 'store.db'}"
    monkeypatch.setattr(CrashingStrategy, "crash_round", 1)
    with pytest.raises(RuntimeError, match="simulated crash"):
        make_pipeline(run, 1, logger="mlflow", tracking_uri=store).run()
    client = tracking.MlflowClient(store)
    (crashed,) = client.search_runs([client.get_experiment_by_name("alseg").experiment_id])
    assert crashed.info.status == "FAILED"
    monkeypatch.setattr(CrashingStrategy, "crash_round", None)
    make_pipeline(run, 1, logger="mlflow", tracking_uri=store).run()
    (resumed,) = client.search_runs([client.get_experiment_by_name("alseg").experiment_id])
    assert resumed.info.run_id == crashed.info.run_id and resumed.info.status == "FINISHED"
    assert [m.step for m in client.get_metric_history(resumed.info.run_id, "val/loss")] == [0, 1]


def test_only_the_writing_rank_tracks(tmp_path, monkeypatch):
    pytest.importorskip("tensorboard")
    from alseg.core import distributed

    monkeypatch.setattr(distributed, "is_rank_zero", lambda: False)  # as on rank 1 of a DDP run
    make_pipeline(tmp_path / "run", 0, logger=["csv", "tensorboard"]).run()
    assert not (tmp_path / "run" / "logs" / "tensorboard").exists()
    assert not (tmp_path / "run" / "logs" / "tracking.json").exists()


def test_wandb_offline_under_the_run_directory_holds_the_history_without_network(tmp_path, monkeypatch):
    pytest.importorskip("wandb")
    server = _Listener()  # where W&B would send anything: it must never be called
    monkeypatch.setenv("WANDB_BASE_URL", server.url)
    outside = []
    connect = socket.socket.connect

    def local_only(sock, address):
        if sock.family in (socket.AF_INET, socket.AF_INET6) and address[0] not in ("127.0.0.1", "::1", "localhost"):
            outside.append(address)
            raise OSError(f"test: no network ({address})")
        return connect(sock, address)

    monkeypatch.setattr(socket.socket, "connect", local_only)
    run = tmp_path / "run"
    make_pipeline(run, 1, logger="wandb").run()
    make_pipeline(run, 2, logger="wandb").run()
    offline = sorted((run / "logs" / "wandb").glob("offline-run-*"))
    ids = {path.name.rsplit("-", 1)[1] for path in offline}
    assert len(offline) == 2 and ids == {json.loads((run / "logs" / "tracking.json").read_text())["wandb"]["id"]}
    records = list(_wandb_records(next(offline[-1].glob("run-*.wandb"))))
    history = [{item.key or "/".join(item.nested_key): item.value_json for item in r.history.item} for r in records]
    rounds = [row for row in history if "val/mean_dice" in row]
    # W&B cannot resume offline: the newest offline run holds the whole ledger, rounds 0..2.
    assert [float(row["round"]) for row in rounds] == [0, 1, 2]
    assert [float(row["trainer/global_step"]) for row in rounds] == [0, 1, 2]
    assert [float(row["val/mean_dice"]) for row in rounds] == pytest.approx(curve(run, "val/mean_dice"))
    artifacts = [r.artifact for r in records if r.WhichOneof("record_type") == "artifact"]
    assert {entry.path for entry in artifacts[-1].manifest.contents} == {"config.yaml", "rounds.jsonl", "summary.json"}
    assert server.connections == [] and outside == []


def test_wandb_mode_from_the_environment_is_respected(tmp_path, monkeypatch):
    pytest.importorskip("wandb")
    monkeypatch.setenv("WANDB_MODE", "disabled")
    run = tmp_path / "run"
    make_pipeline(run, 0, logger="wandb").run()
    assert not list((run / "logs").glob("wandb/offline-run-*"))
    assert json.loads((run / "logs" / "tracking.json").read_text())["wandb"]["logged_rounds"] == 1


class _Listener:
    """A local TCP server that records every connection."""

    def __init__(self):
        self.socket = socket.create_server(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self.socket.getsockname()[1]}"
        self.connections = []
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        while True:
            connection, address = self.socket.accept()
            self.connections.append(address)
            connection.close()


def _wandb_records(path):
    """Yields the protobuf records of an offline ``.wandb`` file (W&B's LevelDB-style log of 32 KiB blocks)."""
    from wandb.proto import wandb_internal_pb2

    data = path.read_bytes()
    assert data[:4] == b":W&B"
    position, pending = 7, b""
    while position + 7 <= len(data):
        if 32768 - position % 32768 < 7:  # a block's tail too short for a header is padding
            position += 32768 - position % 32768
            continue
        _, length, kind = struct.unpack("<IHB", data[position : position + 7])
        pending += data[position + 7 : position + 7 + length]
        position += 7 + length
        if kind in (1, 4):  # a full record, or the last piece of one
            record = wandb_internal_pb2.Record()
            record.ParseFromString(pending)
            pending = b""
            yield record
