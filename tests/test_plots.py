"""Result plots: written as real, non-blank PNGs that show what they claim."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("matplotlib")
from PIL import Image

from roadedge.agents import evaluate as ev
from roadedge.agents.plots import (
    comparison_figure,
    learning_curve_figure,
    plot_comparison,
    plot_learning_curve,
    policy_color,
)

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


def _records(policies, returns=(1.0, 2.0, 3.0)):
    out = []
    for k, p in enumerate(policies):
        for s, r in enumerate(returns):
            rec = {"policy": p, "seed": s, "return": r + k, "length": 10}
            rec.update(dict.fromkeys(ev.METRIC_COLUMNS, 1.0))
            out.append(rec)
    return out


def _bars(fig):
    """(tick labels, bar patches) of the first panel (the return)."""
    ax = fig.axes[0]
    return [t.get_text() for t in ax.get_yticklabels()], list(ax.patches)


def test_comparison_marks_the_oracle_as_privileged():
    policies = ["noop", "oracle", "greedy+failover", "model:/tmp/run/best_model.zip"]
    fig = comparison_figure(_records(policies), label=ev.display_name)
    labels, bars = _bars(fig)
    assert labels == ["noop", "oracle (privileged)", "greedy+failover", "agent:best_model"]
    hatches = [bar.get_hatch() for bar in bars]
    assert hatches[1] == "//" and hatches[0] is None and hatches[2] is None
    for ax in fig.axes:  # every panel hatches the oracle's bar only
        assert [b.get_hatch() for b in ax.patches] == hatches
    # a caller's own label function still gets the mark
    labels, _ = _bars(comparison_figure(_records(["oracle"]), label=lambda p: p.upper()))
    assert labels == ["ORACLE (privileged)"]


def test_each_policy_keeps_its_colour_in_every_subset():
    from matplotlib.colors import to_rgba

    from roadedge.baselines import policy_names

    everyone = [*policy_names(), "oracle", "model:/tmp/a.zip", "model:/tmp/b.zip"]
    colours = [to_rgba(policy_color(p)) for p in everyone]
    assert len(set(colours)) == len(colours)  # all distinct
    _, bars = _bars(comparison_figure(_records(everyone)))
    full = {p: bar.get_facecolor() for p, bar in zip(everyone, bars, strict=True)}
    for subset in (["greedy+failover", "oracle"], ["oracle", "noop", "greedy+failover"]):
        _, bars = _bars(comparison_figure(_records(subset)))
        for p, bar in zip(subset, bars, strict=True):
            assert bar.get_facecolor() == full[p], p
    # the learning curve draws each baseline in the same colour
    steps, returns = np.array([1, 2]), np.array([[1.0], [2.0]])
    for baselines in ({"noop": 1.0, "greedy+failover": 2.0}, {"greedy+failover": 2.0}):
        ax = learning_curve_figure(steps, returns, baselines).axes[0]
        drawn = {line.get_label(): to_rgba(line.get_color()) for line in ax.get_lines()}
        for name in baselines:
            assert drawn[name] == to_rgba(policy_color(name)) == full[name][:3] + (1.0,)


def test_learning_curve_labels_the_oracle_privileged():
    steps, returns = np.array([1, 2]), np.array([[1.0], [2.0]])
    fig = learning_curve_figure(steps, returns, {"noop": 1.0, "oracle": (3.0, 2.5, 3.5)})
    ax = fig.axes[0]
    labels = [t.get_text() for t in ax.get_legend().get_texts()]
    assert labels == ["agent", "noop", "oracle (privileged) (95% CI)"]
    (band,) = ax.patches
    assert band.get_hatch() == "//"


def test_a_rule_spelled_another_way_keeps_its_colour():
    """One policy -> colour mapping: a rule's colour follows the rule, not its spelling
    (``failover+threshold`` is ``threshold+failover``, ``noop+failover`` is
    ``failover``), in both figures; the valid rules outside ``policy_names()``
    (``random+failover``...) get rule colours of their own, distinct from every other."""
    from matplotlib.colors import to_rgba

    from roadedge.baselines import policy_names
    from roadedge.baselines.policies import FAILOVER_RULES, MIGRATION_RULES

    assert policy_color("failover+threshold") == policy_color("threshold+failover")
    assert policy_color("noop+failover") == policy_color("failover")
    assert policy_color("backup+greedy") == policy_color("greedy+backup")
    every_rule = [f"{m}+{f}" for m in MIGRATION_RULES[1:] for f in FAILOVER_RULES]
    every_rule += [*MIGRATION_RULES, *FAILOVER_RULES]
    colours = {to_rgba(policy_color(p)) for p in every_rule}
    assert len(colours) == len(every_rule)  # 15 rules, 15 colours
    assert {to_rgba(policy_color(p)) for p in policy_names()} <= colours
    models = {to_rgba(policy_color(f"model:/tmp/{n}.zip")) for n in "ab"}
    assert not models & colours
    _, bars = _bars(comparison_figure(_records(["failover+threshold", "noop"])))
    assert bars[0].get_facecolor() == to_rgba(policy_color("threshold+failover"))
    fig = learning_curve_figure(np.array([1, 2]), np.ones((2, 1)), {"failover+threshold": 1.0})
    (line,) = [ln for ln in fig.axes[0].get_lines() if ln.get_label() == "failover+threshold"]
    assert to_rgba(line.get_color()) == to_rgba(policy_color("threshold+failover"))
