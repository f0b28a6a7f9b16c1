"""The evaluation harness: summary statistics on hand values, reproducible (serial =
parallel) episodes, the per-policy summary and the ``roadedge-eval`` command line with a
trained model."""

from __future__ import annotations

import csv
import json
import subprocess
import sys

import numpy as np
import pytest

from roadedge.agents import evaluate as ev
from roadedge.agents import headroom as hr
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
    """The rules, one a line, then the privileged oracle, marked as such."""
    from roadedge.baselines import policy_names

    assert ev.main(["--list"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines == [*policy_names(), "oracle (privileged: reads the hidden future)"]


def usage_error(capsys, argv) -> str:
    """Run ``roadedge-eval argv``; it must exit with code 2 and one line on stderr,
    ``roadedge-eval: error: ...``, no traceback. Returns that line."""
    with pytest.raises(SystemExit) as exc:
        ev.main(argv)
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("roadedge-eval: error: ")
    return lines[0]


def _argv(tmp_path, *extra):
    return ["--env-id", SMALL, "--out", str(tmp_path), "--no-progress", *extra]


@pytest.mark.parametrize(
    "spec",
    ["nonsense", "noop,thresh", "threshold+greedy", "failover+backup", "threshold+failover+backup"],
)
def test_cli_unknown_policy_exits_with_message(spec, tmp_path, capsys):
    line = usage_error(capsys, _argv(tmp_path, "--policies", spec, "--episodes", "1"))
    bad = spec.split(",")[-1]
    assert f"unknown policy {bad!r}" in line
    assert not (tmp_path / "episodes.csv").exists()


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--model", "no/such/model.zip"], "model file not found: no/such/model.zip"),
        (["--episodes", "0"], "--episodes must be at least 1"),
        (["--workers", "0"], "--workers must be at least 1"),
        (["--env-kwargs", "horizon"], "--env-kwargs expects KEY=VALUE, got 'horizon'"),
        (["--env-kwargs", "nokey"], "--env-kwargs expects KEY=VALUE, got 'nokey'"),
        (["--env-kwargs", "=3"], "--env-kwargs expects KEY=VALUE, got '=3'"),
        (["--env-kwargs", "=5"], "--env-kwargs expects KEY=VALUE, got '=5'"),
        (["--env-kwargs", "horizon=[1"], "--env-kwargs horizon: cannot parse '[1'"),
        (["--env-kwargs", "horizon=!!int abc"], "--env-kwargs horizon: cannot parse '!!int abc'"),
        (["--env-kwargs", "x=!!timestamp abc"], "--env-kwargs x: cannot parse '!!timestamp abc'"),
        (["--env-kwargs", "horizon=abc"], "horizon must be an integer, got 'abc'"),
        (["--policies", ","], "no policy to evaluate"),
        (["--scenario", "nope"], "error: unknown scenario 'nope'"),
        (["--env-id", "RoadEdge-nope-v1"], "RoadEdge-nope"),
        (["--env-kwargs", "vehicles__max_vehicle=3"], "unknown config key vehicles.max_vehicle"),
        (["--env-kwargs", "obs_mode=tree"], "obs_mode must be one of"),
    ],
)
def test_cli_bad_arguments_exit_with_message(argv, message, tmp_path, capsys):
    """Every mistake: exit code 2, one line naming it, nothing written."""
    line = usage_error(capsys, ["--policies", "noop", *_argv(tmp_path), *argv])
    assert message in line
    assert not (tmp_path / "episodes.csv").exists()


def test_one_key_value_parser_for_every_command_line():
    """roadedge-eval, roadedge-show and train.py read ``KEY=VALUE`` with the same function."""
    from roadedge.agents import cli, show, train_args

    assert ev.parse_pairs is show.parse_pairs is train_args.parse_pairs is cli.parse_pairs
    pairs = ["a=1", " b = [x, 2]", "c=", "d={e: 1e-3, f: -3E5, g: 2.5}", "h=1e", "i=e5"]
    assert cli.parse_pairs(pairs, "--hp") == {
        "a": 1,
        "b": ["x", 2],
        "c": None,
        "d": {"e": 1e-3, "f": -3e5, "g": 2.5},  # no dot needed (PyYAML alone: '1e-3')
        "h": "1e",
        "i": "e5",
    }
    assert type(cli.parse_pairs(["x=1e3"], "--hp")["x"]) is float


@pytest.mark.parametrize("module", ["roadedge.agents.evaluate", "roadedge.agents.show"])
def test_unparsable_env_kwargs_exit_2_in_a_real_process(module, tmp_path):
    """The installed command itself: a value whose YAML tag cannot construct it
    (``!!int abc`` raised a ValueError out of PyYAML) is one line and exit code 2."""
    argv = [sys.executable, "-m", module, "--env-kwargs", "horizon=!!int abc"]
    argv += ["--out", str(tmp_path / ("e.gif" if module.endswith("show") else "out"))]
    done = subprocess.run(argv, capture_output=True, text=True, timeout=120)
    assert done.returncode == 2, done.stderr
    prog = "roadedge-show" if module.endswith("show") else "roadedge-eval"
    assert done.stderr == f"{prog}: error: --env-kwargs horizon: cannot parse '!!int abc' " + (
        "(invalid literal for int() with base 10: 'abc')\n"
    )


@pytest.fixture
def no_episodes(monkeypatch):
    """Running any episode fails the test: the checks must come first."""

    def refuse(*args, **kwargs):
        raise AssertionError("an episode ran before the arguments were checked")

    for name in ("run_jobs", "run_batches"):
        monkeypatch.setattr(ev, name, refuse)


@pytest.mark.parametrize("content", [b"not a zip at all", b"PK\x05\x06" + bytes(18)])
def test_cli_corrupt_model_is_named(content, tmp_path, capsys, no_episodes):
    """A file that is not an SB3 model zip (garbage, or an empty zip): one line naming it."""
    bad = tmp_path / "broken.zip"
    bad.write_bytes(content)
    line = usage_error(capsys, _argv(tmp_path / "out", "--policies", "all", "--model", str(bad)))
    assert f"model {bad} is not an SB3 model zip" in line


def test_cli_model_of_another_scenario_fails_before_any_episode(
    model_path, tmp_path, capsys, no_episodes
):
    """A model trained on ``small`` evaluated on ``city``: refused at once (no baseline
    runs first), naming the model, the env and scenario and both observation shapes."""
    argv = _argv(tmp_path, "--scenario", "city", "--policies", "all", "--model", str(model_path))
    line = usage_error(capsys, argv)
    assert f"model {model_path} does not fit {SMALL} (scenario 'city')" in line
    assert "observation space Box(" in line


def test_evaluate_refuses_a_model_that_does_not_fit(model_path, no_episodes):
    """The library call checks too (a ``ValueError``), before any episode."""
    with pytest.raises(ValueError, match="does not fit"):
        ev.evaluate(
            ["noop", f"{ev.MODEL_PREFIX}{model_path}"],
            env_id=SMALL,
            env_kwargs={"scenario": "city"},
            progress=False,
        )


def test_cli_model_with_another_obs_mode_is_refused(model_path, tmp_path, capsys, no_episodes):
    argv = _argv(tmp_path, "--policies", "noop", "--model", str(model_path))
    line = usage_error(capsys, [*argv, "--env-kwargs", "obs_mode=dict"])
    assert "does not fit" in line and "observation space" in line


@pytest.mark.parametrize("where", ["file", "under_file"])
def test_cli_unwritable_out_fails_before_any_episode(where, tmp_path, capsys, no_episodes):
    """``--out`` that is a file, or lies under a file: refused before the episodes run."""
    blocker = tmp_path / "taken"
    blocker.write_text("x")
    out = blocker if where == "file" else blocker / "sub"
    argv = ["--env-id", SMALL, "--policies", "noop", "--out", str(out), "--no-progress"]
    line = usage_error(capsys, argv)
    assert f"--out {out}" in line


def test_cli_scenario_file_that_is_no_yaml(tmp_path, capsys):
    """A scenario file with a YAML syntax error: one line with the file and line."""
    bad = tmp_path / "bad.yaml"
    bad.write_text("horizon: 10\nvehicles: [1\n")
    line = usage_error(
        capsys, _argv(tmp_path / "out", "--policies", "noop", "--scenario", str(bad))
    )
    assert f"{bad}:3: malformed YAML" in line


def test_every_option_has_help():
    for action in ev.build_parser()._actions:
        assert action.help, action.option_strings


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


# --- the privileged oracle: names, best rule, headroom


def test_oracle_is_a_privileged_name_outside_all():
    from roadedge.baselines import policy_names
    from roadedge.baselines.policies import PRIVILEGED_POLICIES, is_privileged, parse_name

    assert PRIVILEGED_POLICIES == ("oracle",)
    assert is_privileged("oracle")
    assert not any(is_privileged(n) for n in policy_names())
    assert "oracle" not in policy_names()
    assert parse_name("oracle") == (None, None)  # a known name, no rule
    with pytest.raises(ValueError, match="unknown policy"):
        parse_name("oracle+failover")


def test_resolve_policies_all_as_an_item():
    from roadedge.baselines import policy_names

    rules = policy_names()
    assert ev.resolve_policies("all") == rules
    assert ev.resolve_policies("all,oracle") == [*rules, "oracle"]
    assert ev.resolve_policies(" oracle , all ") == ["oracle", *rules]
    assert ev.resolve_policies("noop,all,oracle,noop") == [*rules, "oracle"]  # no duplicate
    assert ev.resolve_policies("oracle,failover") == ["oracle", "failover"]
    with pytest.raises(SystemExit, match="unknown policy 'oracle\\+failover'"):
        ev.resolve_policies("all,oracle+failover")


def test_oracle_is_built_and_evaluated_as_privileged():
    """``--policies oracle`` runs the privileged look-ahead controller (not noop under its
    name) and its summary row says it is privileged."""
    import gymnasium as gym

    import roadedge.envs  # noqa: F401
    from roadedge.baselines import make_policy
    from roadedge.baselines.oracle import OraclePolicy

    env = gym.make(SMALL)
    assert isinstance(make_policy("oracle", env), OraclePolicy)
    env.close()
    records, rows = ev.evaluate(
        ["noop", "oracle"], env_id=SMALL, episodes=1, env_kwargs={"horizon": 5}, progress=False
    )
    by_name = {r["policy"]: r for r in rows}
    assert by_name["oracle"]["privileged"] and not by_name["noop"]["privileged"]


AGENT = "model:/tmp/x/agent7.zip"
# seeds 0, 1, 2; means: failover 10, noop 5, greedy+failover 15, follow+failover 12,
# oracle 20 and the agent 30 (neither is a rule, so greedy+failover is the best rule)
HEADROOM_RETURNS = {
    "noop": [5.0, 5.0, 5.0],
    "failover": [10.0, 12.0, 8.0],
    "greedy+failover": [14.0, 16.0, 15.0],
    "follow+failover": [11.0, 13.0, 12.0],
    "oracle": [20.0, 22.0, 18.0],
    AGENT: [30.0, 30.0, 30.0],
}


def _headroom_records(returns=HEADROOM_RETURNS, drop=()):
    return [
        _record(p, s, r)
        for p, rs in returns.items()
        for s, r in enumerate(rs)
        if (p, s) not in drop and p not in drop
    ]


def test_best_rule_excludes_the_oracle_and_agents():
    records = _headroom_records()
    assert hr.best_rule(records) == "greedy+failover"
    assert hr.best_rule([r for r in records if r["policy"] in ("oracle", AGENT)]) is None
    # only the agent and the oracle beat greedy+failover; a rule that does is the best
    better = _headroom_records({**HEADROOM_RETURNS, "threshold": [16.0, 16.0, 16.0]})
    assert hr.best_rule(better) == "threshold"
    rows = {r["policy"]: r for r in ev.summarize(records)}
    assert {r["best_rule"] for r in rows.values()} == {"greedy+failover"}
    assert rows["oracle"]["privileged"] is True
    assert not any(r["privileged"] for name, r in rows.items() if name != "oracle")


def test_paired_delta_to_the_best_rule_hand_values():
    rows = {r["policy"]: r for r in ev.summarize(_headroom_records())}
    # follow+failover - greedy+failover per seed: -3, -3, -3
    ff = rows["follow+failover"]
    assert (ff["delta_best_mean"], ff["delta_best_low"], ff["delta_best_high"]) == pytest.approx(
        (-3.0, -3.0, -3.0)
    )
    # failover - greedy+failover per seed: -4, -4, -7 -> mean -5, CI within [-7, -4]
    fo = rows["failover"]
    assert fo["delta_best_mean"] == pytest.approx(-5.0)
    assert -7.0 <= fo["delta_best_low"] <= -5.0 <= fo["delta_best_high"] <= -4.0
    assert rows["greedy+failover"]["delta_best_mean"] == 0.0
    assert rows["oracle"]["delta_best_mean"] == pytest.approx(5.0)  # 6, 6, 3
    assert rows["agent:agent7"]["delta_best_mean"] == pytest.approx(15.0)
    # the delta to noop stays
    assert rows["failover"]["paired_vs"] == "noop"
    assert rows["failover"]["delta_mean"] == pytest.approx(5.0)


def test_headroom_share_hand_values():
    """G = oracle - failover = 10 on every seed; share = (R - R_failover) / G."""
    rows = {r["policy"]: r for r in ev.summarize(_headroom_records())}
    assert {r["headroom_ref"] for r in rows.values()} == {"failover"}
    expected = {
        "greedy+failover": 0.5,  # gains 4, 4, 7 -> 5 / 10
        "follow+failover": 0.2,  # gains 1, 1, 4 -> 2 / 10
        "noop": -0.5,  # -5, -7, -3 -> -5 / 10
        "failover": 0.0,
        "oracle": 1.0,
        "agent:agent7": 2.0,  # 20, 18, 22 -> 20 / 10
    }
    for name, share in expected.items():
        assert rows[name]["headroom_share"] == pytest.approx(share), name
    # the simple case: failover 10, oracle 20, policy 15 -> 0.5
    simple = [_record("failover", 0, 10.0), _record("oracle", 0, 20.0), _record("P", 0, 15.0)]
    assert hr.headroom_share(simple, "P") == pytest.approx(0.5)


def test_headroom_share_on_the_seeds_all_three_share():
    # the oracle ran on seeds 0 and 1 only: G = 10, greedy+failover gains 4, 4 -> 0.4
    records = _headroom_records(drop=[("oracle", 2)])
    assert hr.headroom_share(records, "greedy+failover") == pytest.approx(0.4)
    # without failover the reference is noop: G = 15, 17, 13 -> 15; gains 9, 11, 10 -> 10
    records = _headroom_records(drop=["failover"])
    rows = {r["policy"]: r for r in ev.summarize(records)}
    assert rows["greedy+failover"]["headroom_ref"] == "noop"
    assert rows["greedy+failover"]["headroom_share"] == pytest.approx(10.0 / 15.0)


def test_headroom_share_undefined_without_oracle_or_headroom():
    no_oracle = ev.summarize(_headroom_records(drop=["oracle"]))
    assert all(r["headroom_share"] is None for r in no_oracle)
    assert "headroom %" not in ev.format_table(no_oracle)
    # an oracle no better than failover (G = 0), then worse (G < 0): no share
    for offset in (0.0, -1.0):
        returns = {**HEADROOM_RETURNS, "oracle": [r + offset for r in HEADROOM_RETURNS["failover"]]}
        rows = ev.summarize(_headroom_records(returns))
        assert all(r["headroom_share"] is None for r in rows)
    # neither failover nor noop: no reference
    rows = ev.summarize(_headroom_records(drop=["failover", "noop"]))
    assert all(r["headroom_share"] is None and r["headroom_ref"] is None for r in rows)


def test_headroom_summary_hand_values():
    s = hr.headroom_summary(_headroom_records())
    assert s["reference"] == "failover" and s["oracle"] == "oracle"
    assert s["best_rule"] == "greedy+failover"

    def gap(key):
        g = s[key]
        return g["policy"], g["minus"], g["mean"], g["seeds"]

    assert gap("G") == ("oracle", "failover", pytest.approx(10.0), 3)
    assert (s["G"]["ci_low"], s["G"]["ci_high"]) == pytest.approx((10.0, 10.0))
    assert gap("best_minus_failover") == ("greedy+failover", "failover", pytest.approx(5.0), 3)
    assert gap("best_minus_follow_failover") == (
        "greedy+failover",
        "follow+failover",
        pytest.approx(3.0),
        3,
    )
    assert gap("oracle_minus_best") == ("oracle", "greedy+failover", pytest.approx(5.0), 3)
    lo, hi = s["oracle_minus_best"]["ci_low"], s["oracle_minus_best"]["ci_high"]
    assert 3.0 <= lo <= 5.0 <= hi <= 6.0
    # missing policies: their gaps are None
    s = hr.headroom_summary(_headroom_records(drop=["oracle", "follow+failover"]))
    assert s["oracle"] is None and s["G"] is None and s["oracle_minus_best"] is None
    assert s["best_minus_follow_failover"] is None
    assert s["best_minus_failover"]["mean"] == pytest.approx(5.0)
    assert hr.format_headroom(s) == "best rule greedy+failover − failover = +5.0 [+4.0, +7.0]"


def test_table_shows_best_rule_headroom_and_the_privileged_oracle():
    records = _headroom_records()
    rows = ev.summarize(records)
    table = ev.format_table(rows, "t", hr.headroom_summary(records))
    header = table.splitlines()[2]
    assert "| vs noop, paired (95% CI) |" in header
    assert "| vs best rule (greedy+failover), paired (95% CI) | headroom % |" in header
    lines = {line.split(" | ")[0]: line for line in table.splitlines() if line.startswith("| ")}
    assert "| oracle (privileged)" in lines
    assert "| oracle |" not in table
    cells = lines["| greedy+failover"].split(" | ")
    assert cells[3] == "+0.0 [+0.0, +0.0]" and cells[4] == "50.0"
    cells = lines["| follow+failover"].split(" | ")
    assert cells[3] == "-3.0 [-3.0, -3.0]" and cells[4] == "20.0"
    assert lines["| oracle (privileged)"].split(" | ")[4] == "100.0"
    assert "G = oracle − failover = +10.0 [+10.0, +10.0]" in table
    assert "best rule greedy+failover − failover = +5.0 [" in table
    assert "best rule greedy+failover − follow+failover = +3.0 [+3.0, +3.0]" in table
    assert "oracle − best rule greedy+failover = +5.0 [" in table
    # an undefined share prints as a dash: threshold ran on seed 2 only, where the
    # oracle is no better than failover
    oracle = [*HEADROOM_RETURNS["oracle"][:2], HEADROOM_RETURNS["failover"][2]]
    rows = ev.summarize(
        _headroom_records({**HEADROOM_RETURNS, "oracle": oracle}) + [_record("threshold", 2, 9.0)]
    )
    shares = {r["policy"]: r["headroom_share"] for r in rows}
    assert shares["threshold"] is None and shares["greedy+failover"] is not None
    threshold = next(line for line in ev.format_table(rows).splitlines() if "| threshold" in line)
    assert threshold.split(" | ")[3:5] == ["-6.0 [-6.0, -6.0]", "—"]


def test_summary_json_has_the_headroom(tmp_path):
    records = _headroom_records()
    ev.write_results(records, ev.summarize(records), tmp_path, {"episodes": 3})
    summary = json.loads((tmp_path / "summary.json").read_text(encoding="utf-8"))
    assert summary["headroom"]["best_rule"] == "greedy+failover"
    assert summary["headroom"]["G"]["mean"] == pytest.approx(10.0)
    by_name = {p["policy"]: p for p in summary["policies"]}
    assert by_name["greedy+failover"]["headroom_share"] == pytest.approx(0.5)
    assert by_name["oracle"]["privileged"] is True
