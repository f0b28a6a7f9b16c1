"""The evaluation harness: summary statistics on hand values, reproducible (serial =
parallel) episodes, the per-policy summary and the ``roadedge-eval`` command line with a
trained model."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest

from roadedge.agents import evaluate as ev
from roadedge.agents.stats import bootstrap_ci, iqm

SMALL = "RoadEdge-small-v1"


# --- stats


def test_iqm_hand_values():
    assert iqm(np.arange(1, 9)) == pytest.approx(4.5)  # mean of 3, 4, 5, 6
    assert iqm([8, 1, 7, 2, 6, 3, 5, 4]) == pytest.approx(4.5)  # order does not matter
    assert iqm([1, 2, 3, 100]) == pytest.approx(2.5)  # the outlier is trimmed: mean(2, 3)
    assert iqm([1, 2, 3, 4, 5]) == pytest.approx(3.0)  # n = 5: mean of 2, 3, 4
    assert iqm([7.0]) == pytest.approx(7.0)
    assert iqm([2.0, 4.0]) == pytest.approx(3.0)
    assert np.isnan(iqm([]))


def test_bootstrap_ci_properties():
    rng = np.random.default_rng(0)
    x = rng.normal(10.0, 2.0, size=40)
    lo, hi = bootstrap_ci(x, seed=3)
    assert lo < x.mean() < hi
    assert x.min() <= lo and hi <= x.max()
    # The 95 % CI of a mean of 40 draws with sd 2: about +-1.96 * 2 / sqrt(40) = +-0.62.
    assert 0.8 < hi - lo < 1.7
    assert bootstrap_ci(x, seed=3) == (lo, hi)  # deterministic for a seed
    lo90, hi90 = bootstrap_ci(x, confidence=0.9, seed=3)
    assert lo <= lo90 < hi90 <= hi  # a lower confidence is a narrower interval


def test_bootstrap_ci_degenerate_cases():
    assert bootstrap_ci([3.5]) == (3.5, 3.5)
    assert bootstrap_ci([2.0, 2.0, 2.0]) == (2.0, 2.0)
    lo, hi = bootstrap_ci([])
    assert np.isnan(lo) and np.isnan(hi)
    # Two values 0 and 10: resampled means are 0, 5, 10 with probabilities 1/4, 1/2, 1/4,
    # so the 2.5 % and 97.5 % quantiles are 0 and 10.
    assert bootstrap_ci([0.0, 10.0]) == (0.0, 10.0)


# --- summary


def _record(policy, seed, ret, **metrics):
    rec = {"policy": policy, "seed": seed, "return": ret, "length": 10}
    rec.update(dict.fromkeys(ev.METRIC_COLUMNS, 0.0))
    rec.update(metrics)
    return rec


def test_summarize_hand_values():
    records = [
        _record(
            "noop",
            0,
            1.0,
            tasks_generated=10,
            tasks_completed=5,
            tasks_dropped=1,
            migrations_started=4,
            migrations_completed=3,
            failovers=2,
        ),
        _record(
            "noop",
            1,
            3.0,
            tasks_generated=0,
            tasks_completed=0,
            tasks_dropped=0,
            migrations_started=0,
            migrations_completed=0,
            failovers=0,
        ),
        _record("model:/tmp/x/agent7.zip", 0, -2.0, tasks_generated=4, tasks_completed=4),
    ]
    rows = ev.summarize(records)
    assert [r["policy"] for r in rows] == ["noop", "agent:agent7"]
    noop = rows[0]
    assert noop["episodes"] == 2
    assert noop["return_mean"] == pytest.approx(2.0)
    assert noop["return_iqm"] == pytest.approx(2.0)
    assert noop["return_ci_low"] <= 2.0 <= noop["return_ci_high"]
    assert noop["completed_rate"] == pytest.approx((5 / 10 + 0 / 1) / 2)  # 0 generated -> /1
    assert noop["dropped_rate"] == pytest.approx((1 / 10) / 2)
    assert noop["tasks_dropped"] == pytest.approx(0.5)
    assert noop["migrations"] == pytest.approx(2.0)
    assert noop["migration_success"] == pytest.approx(3 / 4)
    assert noop["failovers"] == pytest.approx(1.0)
    agent = rows[1]
    assert agent["completed_rate"] == pytest.approx(1.0)
    assert agent["migration_success"] == 0.0  # no migration: 0 / max(0, 1)
    table = ev.format_table(rows, "title")
    assert "| noop | 2.0 [" in table and "| agent:agent7 |" in table


# --- reproducibility


def test_evaluate_serial_equals_parallel():
    kw = dict(env_id=SMALL, episodes=2, seed=5, env_kwargs={"horizon": 50}, progress=False)
    policies = ["noop", "threshold+failover"]
    serial, rows_s = ev.evaluate(policies, workers=1, **kw)
    parallel, rows_p = ev.evaluate(policies, workers=2, **kw)
    assert [(r["policy"], r["seed"]) for r in serial] == [
        ("noop", 5),
        ("noop", 6),
        ("threshold+failover", 5),
        ("threshold+failover", 6),
    ]
    assert all(r["length"] == 50 for r in serial)  # horizon=50 truncates before 200
    assert serial == parallel
    assert rows_s == rows_p
    # Paired seeds: the same seed is the same episode, different seeds differ.
    again, _ = ev.evaluate(policies[:1], workers=1, **kw)
    assert again == serial[:2]
    assert (
        serial[0]["tasks_generated"] != serial[1]["tasks_generated"]
        or serial[0]["return"] != serial[1]["return"]
    )


def test_evaluate_fails_fast_on_bad_env():
    with pytest.raises(Exception, match="horizon"):
        ev.evaluate(["noop"], env_id=SMALL, episodes=1, env_kwargs={"horizon": -1}, progress=False)


# --- command line


@pytest.fixture(scope="module")
def model_path(tmp_path_factory):
    """A PPO trained for 128 steps on the small env (any weights will do)."""
    import gymnasium as gym
    import torch
    from stable_baselines3 import PPO

    torch.set_num_threads(1)
    env = gym.make(SMALL)
    model = PPO(
        "MlpPolicy", env, n_steps=64, batch_size=64, n_epochs=1, seed=0, device="cpu", verbose=0
    )
    model.learn(total_timesteps=128)
    path = tmp_path_factory.mktemp("model") / "model.zip"
    model.save(path)
    env.close()
    return path


def test_cli_writes_results_and_table_with_model(tmp_path, model_path, capsys):
    out = tmp_path / "out"
    rc = ev.main(
        [
            "--env-id",
            SMALL,
            "--policies",
            "noop,threshold+backup",
            "--model",
            str(model_path),
            "--episodes",
            "2",
            "--seed",
            "3",
            "--env-kwargs",
            "horizon=20",
            "--out",
            str(out),
            "--no-progress",
        ]
    )
    assert rc == 0
    with open(out / "episodes.csv", encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))
    assert [(r["policy"], r["seed"]) for r in rows] == [
        ("noop", "3"),
        ("noop", "4"),
        ("threshold+backup", "3"),
        ("threshold+backup", "4"),
        (f"model:{model_path}", "3"),
        (f"model:{model_path}", "4"),
    ]
    assert all(r["length"] == "20" for r in rows)
    assert set(ev.METRIC_COLUMNS) <= set(rows[0])
    summary = json.loads((out / "summary.json").read_text(encoding="utf-8"))
    assert summary["meta"]["env_kwargs"] == {"horizon": 20}
    assert summary["meta"]["episodes"] == 2 and summary["meta"]["seed"] == 3
    names = [p["policy"] for p in summary["policies"]]
    assert names == ["noop", "threshold+backup", "agent:model"]
    for p, pair in zip(summary["policies"], (rows[0:2], rows[2:4], rows[4:6]), strict=True):
        assert p["episodes"] == 2
        assert p["return_mean"] == pytest.approx(np.mean([float(r["return"]) for r in pair]))
    printed = capsys.readouterr().out
    assert "| agent:model |" in printed and "| noop |" in printed
    assert "| threshold+backup |" in printed
    assert "episodes.csv" in printed and "summary.json" in printed


def test_batched_evaluation_equals_serial_for_every_policy_and_a_model(model_path):
    """``batched=True`` (each policy's episodes as rows of one simulator) gives the
    serial records exactly, for every baseline (``random`` included: one generator
    per row) and a trained model, also when worker processes share the policies."""
    from roadedge.baselines import policy_names

    policies = [*policy_names(), f"{ev.MODEL_PREFIX}{model_path}"]
    kw = dict(env_id=SMALL, episodes=3, seed=11, env_kwargs={"horizon": 30}, progress=False)
    serial, rows_s = ev.evaluate(policies, **kw)
    batched, rows_b = ev.evaluate(policies, batched=True, **kw)
    assert [(r["policy"], r["seed"]) for r in batched] == [(r["policy"], r["seed"]) for r in serial]
    for s, b in zip(serial, batched, strict=True):
        assert s == b, (s["policy"], s["seed"])
    assert rows_s == rows_b
    assert any(r["migrations_started"] > 0 for r in batched)  # the rules did act
    parallel, _ = ev.evaluate(policies[:3], batched=True, workers=2, **kw)
    assert parallel == [r for r in serial if r["policy"] in policies[:3]]


def test_cli_batched_flag(tmp_path, capsys):
    out = tmp_path / "out"
    argv = ["--env-id", SMALL, "--policies", "noop,greedy+failover", "--episodes", "2"]
    argv += ["--env-kwargs", "horizon=15", "--out", str(out), "--no-progress", "--batched"]
    assert ev.main(argv) == 0
    summary = json.loads((out / "summary.json").read_text(encoding="utf-8"))
    assert summary["meta"]["batched"] is True
    assert [p["episodes"] for p in summary["policies"]] == [2, 2]


def test_cli_list(capsys):
    from roadedge.baselines import policy_names

    assert ev.main(["--list"]) == 0
    assert capsys.readouterr().out.split() == policy_names()


@pytest.mark.parametrize(
    "spec",
    ["nonsense", "noop,thresh", "threshold+greedy", "failover+backup", "threshold+failover+backup"],
)
def test_cli_unknown_policy_exits_with_message(spec, tmp_path):
    with pytest.raises(SystemExit) as exc:
        ev.main(
            [
                "--env-id",
                SMALL,
                "--policies",
                spec,
                "--episodes",
                "1",
                "--out",
                str(tmp_path),
                "--no-progress",
            ]
        )
    bad = spec.split(",")[-1]
    assert f"unknown policy {bad!r}" in str(exc.value)
    assert not (tmp_path / "episodes.csv").exists()


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--model", "no/such/model.zip"], "model file not found: no/such/model.zip"),
        (["--episodes", "0"], "--episodes must be at least 1"),
        (["--workers", "0"], "--workers must be at least 1"),
        (["--env-kwargs", "horizon"], "key=value"),
        (["--policies", ","], "no policy to evaluate"),
    ],
)
def test_cli_bad_arguments_exit_with_message(argv, message, tmp_path):
    with pytest.raises(SystemExit) as exc:
        ev.main(
            [
                "--env-id",
                SMALL,
                "--policies",
                "noop",
                "--out",
                str(tmp_path),
                "--no-progress",
                *argv,
            ]
        )
    assert message in str(exc.value)


def test_paired_delta_hand_values():
    """Per-seed differences to the reference: [2, 5, -1] -> mean 2, CI within [-1, 5]."""
    records = [_record("noop", s, r) for s, r in enumerate([10.0, 20.0, 30.0])]
    records += [_record("A", s, r) for s, r in [(2, 29.0), (0, 12.0), (1, 25.0)]]  # any order
    mean, lo, hi = ev.paired_delta(records, "A", "noop")
    assert mean == pytest.approx(2.0)
    assert -1.0 <= lo <= 2.0 <= hi <= 5.0
    rows = {r["policy"]: r for r in ev.summarize(records)}
    assert rows["A"]["paired_vs"] == "noop" and rows["A"]["delta_mean"] == pytest.approx(2.0)
    assert rows["noop"]["delta_mean"] == 0.0 and rows["noop"]["delta_ci_high"] == 0.0
    assert "vs noop, paired (95% CI)" in ev.format_table(list(rows.values()))
    assert "+2.0 [" in ev.format_table(list(rows.values()))
    # without the reference among the policies: no paired column
    only_a = ev.summarize([r for r in records if r["policy"] == "A"])
    assert "paired_vs" not in only_a[0]
    assert "paired" not in ev.format_table(only_a)
    with pytest.raises(ValueError, match="no common seeds"):
        ev.paired_delta([*records, _record("B", 9, 1.0)], "B", "noop")
