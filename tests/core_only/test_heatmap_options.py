"""Heatmap options with alseg-core alone: bad values and a missing optional library are one ConfigError each."""

import sys

import pytest

from alseg.core import ConfigError


def test_negative_count_names_the_option(make_pipeline):
    with pytest.raises(ConfigError, match=r"'heatmaps_per_round' option .* integer >= 0\. Got -1"):
        make_pipeline(heatmaps_per_round=-1)


def test_missing_matplotlib_names_the_extra(make_pipeline, monkeypatch):
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # import matplotlib... raises ImportError
    monkeypatch.setitem(sys.modules, "matplotlib.figure", None)
    with pytest.raises(ConfigError, match=r"'heatmaps_per_round'.*alseg-core\[heatmaps\]"):
        make_pipeline(heatmaps_per_round=2)
    make_pipeline(heatmaps_per_round=0)  # no heatmaps: nothing is needed
