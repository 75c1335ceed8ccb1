import json
import runpy
import subprocess
import sys
from pathlib import Path

import pytest

from alseg.core import distributed


def test_helpers_outside_a_distributed_run():
    assert not distributed.is_distributed()
    assert (distributed.rank(), distributed.world_size()) == (0, 1)
    item = {"a": [1, 2]}
    assert distributed.all_gather_objects(item) == [item]


def test_distributed_metrics_equal_single_process(tmp_path):
    """Two gloo ranks measure their shares (with a padding duplicate) and log what one process logs over all items."""
    worker = Path(__file__).with_name("ddp_metrics_worker.py")
    single, ddp = tmp_path / "single.json", tmp_path / "ddp.json"
    runpy.run_path(str(worker))["measure"](0, 1, str(tmp_path / "store"), str(single))  # in this process
    done = subprocess.run([sys.executable, str(worker), str(ddp), "2"], capture_output=True, text=True)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    (expected,) = json.loads(single.read_text())
    ranks = json.loads(ddp.read_text())
    assert len(ranks) == 2
    loss = expected["unpadded"].pop("val/loss")
    del expected["padded"]["val/loss"]  # the padding duplicate is in Lightning's loader's loss: not comparable
    for got in ranks:
        assert got["slices"] == expected["slices"] != {}
        assert got["volumes"] == expected["volumes"] != {}
        assert got["unpadded"].pop("val/loss") == pytest.approx(loss, rel=1e-6)
        assert got["unpadded"] == expected["unpadded"]
        del got["padded"]["val/loss"]
        assert got["padded"] == expected["padded"] == expected["unpadded"]
        assert "val/hd95_disc" in got["padded"]
