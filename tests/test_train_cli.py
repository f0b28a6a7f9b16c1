"""``train.py`` user mistakes and console output.

A mistake (unknown name, misspelled key, unparsable value, missing or damaged
run, unwritable directory) is one line on stderr and exit status 2, found
before any training and without leaving a run directory behind. Without a
terminal, training prints a progress line at a steady interval, and every
periodic evaluation reaches the console.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from test_train import STEPS, run_cli, tiny_argv

from roadedge.agents import train as tr

REPO = Path(__file__).resolve().parents[1]

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def replace(argv: list[str], flag: str, *values: str) -> list[str]:
    """``argv`` with ``flag``'s values replaced (or the flag added)."""
    if flag not in argv:
        return [*argv, flag, *values]
    i = argv.index(flag) + 1
    j = i
    while j < len(argv) and not argv[j].startswith("--"):
        j += 1
    return argv[:i] + list(values) + argv[j:]


def hp(*pairs: str) -> tuple[str, ...]:
    return ("--hp", "n_steps=32", "batch_size=32", "n_epochs=1", *pairs)


MISTAKES = {
    "baseline": (("--baselines", "noop,gredy"), "gredy"),
    "env_id": (("--env", "RoadEdge-nope-v1"), "unknown env id 'RoadEdge-nope-v1'"),
    "scenario": (("--scenario", "nowhere"), "unknown scenario 'nowhere'"),
    "env_kwargs_key": (("--env-kwargs", "horizn=20"), "unknown config key horizn"),
    "env_kwargs_value": (("--env-kwargs", "horizon=abc"), "horizon must be an integer"),
    "env_kwargs_pair": (("--env-kwargs", "horizon"), "--env-kwargs expects KEY=VALUE"),
    "env_kwargs_no_key": (("--env-kwargs", "=5"), "--env-kwargs expects KEY=VALUE, got '=5'"),
    "env_kwargs_unparsable": (("--env-kwargs", "horizon=[1"), "--env-kwargs horizon: cannot parse"),
    "env_kwargs_tag": (("--env-kwargs", "horizon=!!int abc"), "horizon: cannot parse '!!int abc'"),
    "hp_key": (hp("lerning_rate=1e-3"), "unknown hyperparameter 'lerning_rate'.*learning_rate"),
    "hp_unparsable": (hp("policy_kwargs={net_arch: [8"), "--hp policy_kwargs: cannot parse"),
    "hp_value": (hp("learning_rate=fast"), "learning_rate: expected a number"),
    "hp_rejected": (hp("batch_size=1"), "hyperparameters rejected by PPO"),
    "policy": (hp("policy=CnnPolicy"), "unknown policy 'CnnPolicy'"),
    "algo": (("--algo", "dqn"), "--algo: invalid choice: 'dqn'"),
    "hyperparams_file": (("--hyperparams", "nope.yml"), "hyperparameter file not found"),
}


@pytest.mark.parametrize("change,message", MISTAKES.values(), ids=MISTAKES.keys())
def test_mistakes_are_one_line_before_any_work(tmp_path, capsys, change, message):
    runs = tmp_path / "runs"
    argv = replace(tiny_argv("ppo", runs), change[0], *change[1:])
    assert tr.main(argv) == 2
    out, err = capsys.readouterr()
    assert re.fullmatch(rf"train\.py: error: .*{message}.*\n", err), err
    assert "trained" not in out  # found before training, not after
    assert not runs.exists()  # no run directory, not even the runs dir


def test_unwritable_runs_dir(tmp_path, capsys):
    blocker = tmp_path / "file"
    blocker.write_text("")
    assert tr.main(tiny_argv("ppo", blocker / "runs")) == 2
    assert re.fullmatch(
        r"train\.py: error: --runs-dir .* is not writable.*\n", capsys.readouterr().err
    )


def test_resume_mistakes_name_the_run(tmp_path, capsys):
    missing = tmp_path / "no-such-run"
    assert tr.main(["--resume", str(missing)]) == 2
    assert str(missing) in capsys.readouterr().err
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "config.yml").write_text("args: [unclosed")
    assert tr.main(["--resume", str(broken)]) == 2
    err = capsys.readouterr().err
    assert f"{broken / 'config.yml'} is corrupt" in err and err.count("\n") == 1


def test_command_line_exit_status_and_no_traceback(tmp_path):
    """The launcher itself: exit status 2, one line, no traceback."""
    argv = [sys.executable, "train.py", "--env-kwargs", "horizn=3", "--runs-dir", str(tmp_path)]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    done = subprocess.run(argv, cwd=REPO, capture_output=True, text=True, env=env, timeout=120)
    assert done.returncode == 2
    assert done.stderr.startswith("train.py: error: ") and done.stderr.count("\n") == 1
    assert list(tmp_path.iterdir()) == []


def test_list_names_what_the_options_take(capsys):
    assert tr.main(["--list"]) == 0
    out = capsys.readouterr().out
    for name in ("RoadEdge-small-v1", "highway", "maskable_ppo", "greedy+failover"):
        assert name in out


def test_every_option_has_help():
    parser = tr.build_parser()
    missing = [a.dest for a in parser._actions if not a.help]
    assert missing == []


def test_a_crash_before_the_first_checkpoint_leaves_no_run_dir(tmp_path, monkeypatch):
    def crash(*args, **kwargs):
        raise RuntimeError("boom")

    monkeypatch.setattr(tr, "_learn", crash)
    runs = tmp_path / "runs"
    with pytest.raises(RuntimeError, match="boom"):
        tr.main(tiny_argv("ppo", runs))
    assert list(runs.iterdir()) == []


def test_without_a_terminal_progress_lines_and_evaluations_are_printed(tmp_path, capsys):
    """Progress requested (the default) but stdout is no terminal: no bar (it would show
    only at the end), a line per interval (here every step) and each evaluation."""
    runs = tmp_path / "runs"
    argv = [a for a in tiny_argv("ppo", runs, eval_freq=64) if a != "--no-progress"]
    run_cli([*argv, "--log-interval", "0"], runs)
    out = capsys.readouterr().out
    lines = re.findall(r"(\d+)/128 steps \(\d+%\), \d+ steps/s, ETA \S+", out)
    assert len(lines) >= 10 and int(lines[-1]) == STEPS
    assert re.search(r"128/128 steps \(100%\), .*, last eval -?[\d.]+ at 128", out)
    assert "eval at 64 steps: mean return" in out and "eval at 128 steps" in out


def test_on_a_terminal_evaluations_are_printed_too(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(sys.stdout, "isatty", lambda: True)
    runs = tmp_path / "runs"
    argv = [a for a in tiny_argv("ppo", runs, eval_freq=64) if a != "--no-progress"]
    run_cli(argv, runs)
    out = capsys.readouterr().out
    assert "eval at 64 steps: mean return" in out
    assert not re.search(r"\d+/128 steps \(", out)  # the bar, not log lines


def test_rl_zoo_and_legacy_spellings_of_the_project_keys():
    """The shipped files use RL Zoo's ``env_kwargs`` / ``normalize``; runs saved before
    (top-level ``obs_mode`` / ``normalize_reward``) still resume the same."""
    from roadedge.agents.train_config import normalizes_reward

    assert tr.env_kwargs_of({"env_kwargs": {"obs_mode": "dict", "horizon": 5}}) == {
        "obs_mode": "dict",
        "horizon": 5,
    }
    assert tr.env_kwargs_of({"obs_mode": "dict"}) == {"obs_mode": "dict"}
    assert tr.env_kwargs_of({}) == {"obs_mode": "flat"}
    assert normalizes_reward({"normalize": {"norm_obs": False, "norm_reward": True}})
    assert normalizes_reward({"normalize_reward": True})
    assert not normalizes_reward({}) and not normalizes_reward({"normalize": False})
    for unsupported in (True, {"norm_obs": True}, "dict(norm_obs=False)"):
        with pytest.raises(tr.UsageError, match="normalize"):
            normalizes_reward({"normalize": unsupported})
