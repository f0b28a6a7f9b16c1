"""Result plots: written as real, non-blank PNGs that show what they claim."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("matplotlib")
from PIL import Image

from roadedge.agents import evaluate as ev
from roadedge.agents.plots import plot_comparison, plot_learning_curve

SMALL = "RoadEdge-small-v1"


def _png(path):
    """The image as an array; fails unless it is a readable, non-uniform PNG."""
    assert path.is_file() and path.stat().st_size > 5_000
    with Image.open(path) as im:
        assert im.format == "PNG"
        pixels = np.asarray(im.convert("RGB"))
    assert pixels.std() > 5  # not blank
    return pixels


def test_comparison_plot_of_real_results(tmp_path):
    records, _ = ev.evaluate(
        ["noop", "threshold+failover"],
        env_id=SMALL,
        episodes=3,
        env_kwargs={"horizon": 20},
        progress=False,
        batched=True,
    )
    a = _png(plot_comparison(records, tmp_path / "a.png", title="two"))
    b = _png(plot_comparison(records[:3], tmp_path / "b.png", title="one"))
    assert a.shape[0] > 100 and a.shape[1] > 100
    assert a.shape != b.shape or not np.array_equal(a, b)  # one policy fewer shows


def test_learning_curve_with_baseline_bands(tmp_path):
    steps = np.array([1000, 2000, 3000])
    returns = np.array([[1.0, 2.0, 3.0], [4.0, 5.0, 6.0], [7.0, 8.0, 9.0]])
    bare = _png(plot_learning_curve(steps, returns, tmp_path / "bare.png", title="agent"))
    banded = _png(
        plot_learning_curve(
            steps, returns, tmp_path / "bands.png", {"noop": (3.0, 2.0, 4.0)}, title="agent"
        )
    )
    assert bare.shape == banded.shape
    assert np.abs(bare.astype(int) - banded.astype(int)).sum() > 0  # the band is drawn
    lined = _png(
        plot_learning_curve(steps, returns, tmp_path / "line.png", {"noop": 3.0}, title="agent")
    )
    assert np.abs(lined.astype(int) - banded.astype(int)).sum() > 0  # a line, not a band
    assert np.abs(lined.astype(int) - bare.astype(int)).sum() > 0


def test_eval_cli_writes_the_comparison_plot(tmp_path):
    out = tmp_path / "out"
    argv = ["--env-id", SMALL, "--policies", "noop,failover", "--episodes", "2", "--batched"]
    assert ev.main([*argv, "--env-kwargs", "horizon=10", "--out", str(out), "--no-progress"]) == 0
    _png(out / "comparison.png")
