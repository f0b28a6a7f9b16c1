"""agents/seeds_report.py: rliable statistics across training seeds, and its CLI."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest

pytest.importorskip("rliable.library", exc_type=ImportError)

from roadedge.agents import seeds_report as sr  # noqa: E402
from roadedge.agents.stats import bootstrap_ci, iqm  # noqa: E402

REPS = 200


def test_agent_better_on_every_episode_improves_with_probability_one():
    rule = np.arange(10.0).reshape(1, 10)  # deterministic: one row, repeated to 3 runs
    agent = np.tile(rule, (3, 1)) + np.array([[1.0], [2.0], [3.0]])
    rep = sr.seeds_report({"agent": agent, "noop": rule - 5, "greedy": rule}, reps=REPS)
    assert rep["runs"] == 3 and rep["tasks"] == 10
    assert rep["best_rule"] == "greedy"
    poi = rep["probability_of_improvement"]
    assert poi["over"] == "greedy"
    assert poi["value"] == 1.0 and poi["ci"] == [1.0, 1.0]


def test_identical_scores_give_probability_one_half():
    rng = np.random.default_rng(1)
    m = rng.normal(size=(4, 6))
    rep = sr.seeds_report({"agent": m, "greedy": m.copy()}, reps=REPS)
    poi = rep["probability_of_improvement"]
    assert poi["value"] == pytest.approx(0.5)
    assert poi["ci"][0] <= 0.5 <= poi["ci"][1]


def test_iqm_and_mean_of_known_data():
    # 8 scores 1..8 in a (2, 4) matrix: the IQM trims 2 at each end -> mean(3, 4, 5, 6)
    m = np.arange(1.0, 9.0).reshape(2, 4)
    p = sr.seeds_report({"agent": m}, reps=REPS)["policies"]["agent"]
    assert p["iqm"] == pytest.approx(4.5)
    assert p["mean"] == pytest.approx(4.5)
    outlier = m.copy()
    outlier[0, 0] = -1000.0  # the IQM ignores an outlier episode, the mean does not
    p = sr.seeds_report({"agent": outlier}, reps=REPS)["policies"]["agent"]
    assert p["iqm"] == pytest.approx(4.5)
    assert p["mean"] == pytest.approx((36 - 1 - 1000) / 8)
    assert p["iqm_ci"][0] <= p["iqm"] <= p["iqm_ci"][1]


def test_deterministic_rule_has_zero_width_cis_and_no_agent_means_no_poi():
    rule = np.array([[1.0, 5.0, 2.0, 7.0]])
    rep = sr.seeds_report({"greedy": rule, "noop": np.tile(rule - 1, (3, 1))}, reps=REPS)
    for name in ("greedy", "noop"):
        p = rep["policies"][name]
        assert p["same_every_run"]
        assert p["iqm_ci"][0] == p["iqm_ci"][1] == p["iqm"]
        assert p["mean_ci"][0] == p["mean_ci"][1] == p["mean"]
    assert rep["runs"] == 3
    assert rep["probability_of_improvement"] is None


def test_oracle_is_no_best_rule_and_report_is_seeded():
    rng = np.random.default_rng(0)
    scores = {
        "agent": rng.normal(size=(3, 5)),
        "oracle": np.full((1, 5), 100.0),
        "noop": rng.normal(size=(1, 5)),
    }
    a = sr.seeds_report(scores, reps=REPS, seed=3)
    b = sr.seeds_report(dict(reversed(list(scores.items()))), reps=REPS, seed=3)
    assert a["best_rule"] == "noop"
    assert a["policies"]["oracle"]["privileged"]
    assert a["policies"] == b["policies"]  # own RandomState per estimate: order-free
    assert a["probability_of_improvement"] == b["probability_of_improvement"]


def test_mismatched_shapes_are_refused():
    with pytest.raises(ValueError, match="tasks"):
        sr.seeds_report({"agent": np.zeros((2, 3)), "noop": np.zeros((2, 4))}, reps=REPS)
    with pytest.raises(ValueError, match="runs"):
        sr.seeds_report({"agent": np.zeros((2, 3)), "noop": np.zeros((3, 3))}, reps=REPS)


def test_performance_profile_plot_is_written(tmp_path):
    pytest.importorskip("matplotlib")
    rng = np.random.default_rng(0)
    path = sr.performance_profiles(
        {"agent": rng.normal(size=(2, 5)), "noop": rng.normal(size=(1, 5))},
        tmp_path / "sub" / "pp.png",
        reps=50,
        n_tau=11,
    )
    assert path.is_file() and path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_hand_written_stats_agree_with_rliable():
    """stats.iqm is rliable's aggregate_iqm; stats.bootstrap_ci is the same percentile
    bootstrap of the mean that rliable's StratifiedBootstrap gives on one task."""
    from rliable import library as rly
    from rliable import metrics

    rng = np.random.default_rng(2)
    for n in range(1, 13):
        x = rng.normal(size=n)
        assert iqm(x) == pytest.approx(metrics.aggregate_iqm(x.reshape(-1, 1)))
    x = rng.normal(10.0, 3.0, size=40)
    np.random.seed(0)  # noqa: NPY002  (rliable 1.2 resamples from the global state)
    _, ci = rly.get_interval_estimates(
        {"x": x.reshape(-1, 1)},
        metrics.aggregate_mean,
        reps=4000,
        random_state=np.random.RandomState(0),
    )
    lo, hi = bootstrap_ci(x, n_resamples=4000)
    se = x.std() / np.sqrt(x.size)
    r_lo, r_hi = np.ravel(ci["x"])
    assert abs(lo - r_lo) < 0.15 * se
    assert abs(hi - r_hi) < 0.15 * se


# ---- the command line -------------------------------------------------------------


def _write_run(folder, agent_offset, seeds=(100, 101, 102, 103)):
    (folder / "eval").mkdir(parents=True)
    rows = []
    for k, s in enumerate(seeds):
        base = float(k % 3)  # task k: the same traffic in every run
        rows += [
            {"policy": "noop", "seed": s, "return": base - 2, "length": 10},
            {"policy": "greedy", "seed": s, "return": base, "length": 10},
            {"policy": "model:/r/best_model.zip", "seed": s, "return": base + agent_offset},
        ]
    with open(folder / "eval" / "episodes.csv", "w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=["policy", "seed", "return", "length"])
        w.writeheader()
        w.writerows(rows)


def test_cli_on_two_runs(tmp_path, capsys):
    _write_run(tmp_path / "s0", 1.0)
    _write_run(tmp_path / "s1", 3.0, seeds=(200, 201, 202, 203))  # its own eval seeds
    out = tmp_path / "out"
    argv = [str(tmp_path / "s0"), str(tmp_path / "s1"), "--out", str(out), "--reps", "100"]
    assert sr.main(argv) == 0
    text = capsys.readouterr().out
    assert "| agent |" in text and "greedy (best rule)" in text
    assert "P(agent > greedy) = 1.000" in text
    rep = json.loads((out / sr.JSON_NAME).read_text())
    assert rep["runs"] == 2 and rep["tasks"] == 4
    assert set(rep["policies"]) == {"agent", "noop", "greedy"}
    assert rep["probability_of_improvement"]["value"] == 1.0
    assert len(rep["sources"]) == 2
    pytest.importorskip("matplotlib")
    assert (out / sr.PLOT_NAME).is_file()


def _fails(argv, capsys, match):
    with pytest.raises(SystemExit) as exc:
        sr.main(argv)
    assert exc.value.code == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and match in err, err


def test_cli_one_line_errors(tmp_path, capsys):
    out = str(tmp_path / "out")
    _fails([str(tmp_path / "missing"), "--out", out], capsys, "no eval/episodes.csv")
    bad = tmp_path / "bad" / "eval"
    bad.mkdir(parents=True)
    (bad / "episodes.csv").write_text("a,b\n1,2\n")
    _fails([str(tmp_path / "bad"), "--out", out], capsys, "columns policy, seed, return")
    (bad / "episodes.csv").write_text("policy,seed,return\nnoop,1,abc\n")
    _fails([str(tmp_path / "bad"), "--out", out], capsys, "bad seed or return")
    (bad / "episodes.csv").write_text("policy,seed,return\nnoop,1,1.0\n")
    _fails([str(tmp_path / "bad"), "--out", out], capsys, "no agent")
    _write_run(tmp_path / "s0", 1.0)
    _write_run(tmp_path / "s1", 1.0, seeds=(1, 2, 3))
    _fails([str(tmp_path / "s0"), str(tmp_path / "s1"), "--out", out], capsys, "has 3 episodes")
    _fails([str(tmp_path / "s0"), "--out", out, "--reps", "0"], capsys, "--reps")
