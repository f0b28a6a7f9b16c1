"""The training command line (``train.py`` / ``roadedge.agents.train``) on tiny budgets.

Every run trains on the ``small`` scenario (4 nodes) with a 20-tick horizon, 2 envs and
128 steps, evaluates on one episode, and writes under ``tmp_path`` (``--runs-dir``). The
tests check the run directory layout, that the saved model loads and acts validly, the
agent-vs-baselines results, ``--resume`` and seeded reproducibility.
"""

from __future__ import annotations

import csv
import json
import pickle
import re
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest
import torch
import yaml

import roadedge.envs  # noqa: F401  (registers the ids)
from roadedge.agents import train as tr
from roadedge.agents.evaluate import load_model

SMALL = "RoadEdge-small-v1"
HORIZON = 20
STEPS = 128
N_ENVS = 2
# Per algorithm: rollouts of n_steps * N_ENVS = 64 steps, so 128 and 256 are exact.
TINY_HP = {
    "ppo": ["n_steps=32", "batch_size=32", "n_epochs=1"],
    "maskable_ppo": ["n_steps=32", "batch_size=32", "n_epochs=1"],
    "a2c": ["n_steps=32"],
}
ALGO_CLASS = {"ppo": "PPO", "a2c": "A2C", "maskable_ppo": "MaskablePPO"}


pytestmark = pytest.mark.usefixtures("one_torch_thread")  # see conftest.py


def tiny_argv(
    algo: str,
    runs_dir: Path,
    seed: int = 0,
    *,
    extra_hp: tuple[str, ...] = (),
    eval_freq: int = 0,
    checkpoint_freq: int = 64,
    baselines: str = "noop,threshold",
) -> list[str]:
    return [
        "--algo",
        algo,
        "--env",
        SMALL,
        "--timesteps",
        str(STEPS),
        "--n-envs",
        str(N_ENVS),
        "--seed",
        str(seed),
        "--hp",
        *TINY_HP[algo],
        *extra_hp,
        "--env-kwargs",
        f"horizon={HORIZON}",
        "--eval-episodes",
        "1",
        "--eval-freq",
        str(eval_freq),
        "--checkpoint-freq",
        str(checkpoint_freq),
        "--baselines",
        baselines,
        "--workers",
        "1",
        "--runs-dir",
        str(runs_dir),
        "--no-progress",
    ]


def run_cli(argv: list[str], runs_dir: Path) -> Path:
    """Run ``train.py`` in process; returns the one run directory under ``runs_dir``."""
    assert tr.main(argv) == 0
    runs = sorted(p for p in runs_dir.iterdir() if p.is_dir())
    assert len(runs) == 1, runs
    return runs[0]


def policy_params(path: Path) -> dict[str, torch.Tensor]:
    return load_model(str(path)).policy.state_dict()


def check_valid_action(model, algo: str, obs_mode: str = "flat") -> None:
    env = gym.make(SMALL, obs_mode=obs_mode, horizon=HORIZON)
    obs, _ = env.reset(seed=3)
    for _ in range(3):
        if algo == "maskable_ppo":
            mask = env.unwrapped.action_masks()
            action, _ = model.predict(obs, deterministic=True, action_masks=mask)
            n = env.unwrapped.n_nodes
            chosen = mask.reshape(n, n + 1)[np.arange(n), np.asarray(action)]
            assert chosen.all(), "MaskablePPO chose a masked-out action"
        else:
            action, _ = model.predict(obs, deterministic=True)
        action = np.asarray(action, dtype=np.int64)
        assert env.action_space.contains(action)
        obs, *_ = env.step(action)
    env.close()


# --- (a) one tiny run per algorithm


@pytest.mark.parametrize("algo", ["ppo", "a2c", "maskable_ppo"])
def test_tiny_run_writes_model_and_results(tmp_path, algo, capsys):
    runs = tmp_path / "runs"
    run = run_cli(tiny_argv(algo, runs, seed=3, eval_freq=64), runs)
    printed = capsys.readouterr().out
    assert "too few for confidence intervals, no verdict" in printed  # one eval episode
    assert re.fullmatch(rf"{SMALL}__{algo}__3__\d{{8}}-\d{{6}}", run.name)

    config = yaml.safe_load((run / "config.yml").read_text())
    assert config["total_timesteps"] == STEPS and config["n_envs"] == N_ENVS
    assert config["env_kwargs"] == {"horizon": HORIZON, "obs_mode": "flat"}
    assert config["hyperparams"]["n_steps"] == 32  # the --hp override won over the yml
    timing = json.loads((run / "timing.json").read_text())
    assert timing["train_steps"] == STEPS and timing["train_wall_s"] > 0
    ckpts = {p.name for p in (run / "checkpoints").glob("*.zip")}
    assert ckpts == {"model_64_steps.zip", "model_128_steps.zip"}
    assert (run / "best_model.zip").is_file()  # periodic evaluation ran (eval_freq=64)
    assert (run / "evaluations" / "evaluations.npz").is_file()

    cls = tr.algo_class(algo)
    assert cls.__name__ == ALGO_CLASS[algo]
    model = cls.load(str(run / "final_model.zip"), device="cpu")
    assert model.num_timesteps == STEPS
    check_valid_action(model, algo)
    # the harness's loader recognises the algorithm (PPO.load would also accept A2C files)
    from roadedge.agents.evaluate import load_model

    assert type(load_model(str(run / "final_model.zip"))).__name__ == ALGO_CLASS[algo]

    summary = json.loads((run / "eval" / "summary.json").read_text())
    assert [r["policy"] for r in summary["policies"]] == [f"agent ({algo})", "noop", "threshold"]
    assert summary["meta"]["env_kwargs"] == {"horizon": HORIZON}
    assert summary["meta"]["model"] == str(run / "best_model.zip")
    with open(run / "eval" / "episodes.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert [r["policy"] for r in rows] == [f"model:{run / 'best_model.zip'}", "noop", "threshold"]
    assert all(int(r["length"]) == HORIZON for r in rows)  # the horizon override reached eval
    assert all(np.isfinite(float(r["return"])) for r in rows)
    assert (run / "eval" / "table.md").read_text().count("| agent (") == 1
    for png in ("comparison.png", "learning_curve.png"):  # the training plots
        assert (run / "eval" / png).stat().st_size > 5_000, png


@pytest.mark.parametrize("algo", ["ppo", "maskable_ppo"])
def test_periodic_evaluations_replay_the_same_seeds(tmp_path, algo):
    """With a frozen policy (learning rate 0) every periodic evaluation scores the same:
    each one replays the same held-out seeds, so checkpoints are compared like for like."""
    runs = tmp_path / "runs"
    argv = tiny_argv(algo, runs, extra_hp=("learning_rate=0.0",), eval_freq=32, baselines="none")
    run = run_cli(argv, runs)
    results = np.load(run / "evaluations" / "evaluations.npz")["results"]
    assert results.shape == (STEPS // 32, tr.EVAL_CALLBACK_EPISODES)  # every 32 env steps
    np.testing.assert_array_equal(results, np.broadcast_to(results[0], results.shape))
    assert len(set(results[0].round(6))) > 1  # the seeds differ from each other


def test_node_set_extractor_from_hyperparams(tmp_path):
    """``policy_kwargs`` naming the extractor by string trains a dict-observation model."""
    from roadedge.agents.encoder import NodeSetExtractor

    runs = tmp_path / "runs"
    pk = (
        "policy_kwargs={features_extractor_class: NodeSetExtractor, "
        "features_extractor_kwargs: {embed_dim: 16, n_heads: 2, features_dim: 32}, "
        "net_arch: [32]}"
    )
    argv = tiny_argv("ppo", runs, extra_hp=("obs_mode=dict", pk), checkpoint_freq=0)
    run = run_cli(argv, runs)
    config = yaml.safe_load((run / "config.yml").read_text())
    assert config["env_kwargs"]["obs_mode"] == "dict"
    pkw = config["hyperparams"]["policy_kwargs"]
    assert pkw["features_extractor_class"] == "NodeSetExtractor"  # the name, for --resume
    model = load_model(str(run / "final_model.zip"))
    assert isinstance(model.policy.features_extractor, NodeSetExtractor)
    assert isinstance(model.observation_space, gym.spaces.Dict)
    check_valid_action(model, "ppo", obs_mode="dict")
    summary = json.loads((run / "eval" / "summary.json").read_text())
    assert summary["policies"][0]["policy"] == "agent (ppo)"


def test_unknown_extractor_name_is_a_clear_error(tmp_path, capsys):
    argv = tiny_argv("ppo", tmp_path, extra_hp=("policy_kwargs={features_extractor_class: Nope}",))
    assert tr.main(argv) == 2
    assert re.search("'Nope'.*NodeSetExtractor", capsys.readouterr().err)
    assert list(tmp_path.iterdir()) == []  # no run directory for a run that never started


def test_parse_args_rejects_bad_budgets():
    assert tr.parse_args(["--runs-dir", "x"]).runs_dir == "x"
    for bad in (["--timesteps", "0"], ["--n-envs", "0"], ["--eval-episodes", "0"]):
        with pytest.raises(tr.UsageError):
            tr.parse_args(bad)


# --- (b) --resume


def test_resume_continues_the_step_count(tmp_path):
    runs = tmp_path / "runs"
    run = run_cli(tiny_argv("ppo", runs, baselines="none"), runs)
    first = load_model(str(run / "final_model.zip"))
    assert first.num_timesteps == STEPS
    stats_before = pickle.loads((run / "checkpoints/model_vecnormalize_128_steps.pkl").read_bytes())

    # On --resume, --timesteps is the new *total*: continue from the latest checkpoint.
    total = 2 * STEPS
    assert tr.main(["--resume", str(run), "--timesteps", str(total), "--no-progress"]) == 0
    assert [p for p in runs.iterdir()] == [run]  # same run dir, no new one
    resumed = load_model(str(run / "final_model.zip"))
    assert resumed.num_timesteps == total > first.num_timesteps
    timing = json.loads((run / "timing.json").read_text())
    assert timing["train_steps"] == total - STEPS
    assert (run / "checkpoints" / f"model_{total}_steps.zip").is_file()
    # The weights moved on from the checkpoint they started from.
    before, after = first.policy.state_dict(), resumed.policy.state_dict()
    assert any(not torch.equal(before[k], after[k]) for k in before)
    # The reward-normalisation statistics were restored, not restarted (count ~ env steps).
    stats_after = pickle.loads((run / "vecnormalize.pkl").read_bytes())
    assert stats_after.ret_rms.count == pytest.approx(stats_before.ret_rms.count + total - STEPS)

    # Resuming a finished run without a larger budget trains nothing.
    assert tr.main(["--resume", str(run), "--no-progress"]) == 0
    assert json.loads((run / "timing.json").read_text())["train_steps"] == 0


def test_resume_without_checkpoint_fails(tmp_path, capsys):
    assert tr.main(["--resume", str(tmp_path), "--no-progress"]) == 2
    assert "config.yml" in capsys.readouterr().err


# --- (c) seeded reproducibility


POINTER_HP = ("obs_mode=dict", "policy=NodePointerPolicy", "policy_kwargs={}")


@pytest.mark.parametrize(
    "algo,extra_hp", [("ppo", ()), ("maskable_ppo", POINTER_HP)], ids=["ppo", "maskable_pointer"]
)
def test_same_seed_same_parameters_other_seed_differs(tmp_path, algo, extra_hp):
    def params(name: str, seed: int) -> dict[str, torch.Tensor]:
        runs = tmp_path / name
        argv = tiny_argv(
            algo, runs, seed=seed, extra_hp=extra_hp, checkpoint_freq=0, baselines="none"
        )
        run = run_cli(argv, runs)
        return policy_params(run / "final_model.zip")

    a, b, c = params("a", 0), params("b", 0), params("c", 1)
    assert a.keys() == b.keys() == c.keys()
    same = [k for k in a if torch.equal(a[k], b[k])]
    assert same == list(a), f"same seed, different tensors: {set(a) - set(same)}"
    assert any(not torch.equal(a[k], c[k]) for k in a), "seeds 0 and 1 gave identical models"


@pytest.mark.parametrize("algo", ["ppo", "maskable_ppo"])
def test_noop_logit_bias_starts_the_policy_near_noop(tmp_path, algo):
    """``noop_logit_bias`` raises choice 0 of every node's head by that much at init;
    with a large bias the fresh policy's greedy action is to do nothing everywhere."""
    import gymnasium as gym

    env = gym.make(SMALL)
    model = tr.algo_class(algo)("MlpPolicy", env, seed=0, device="cpu", n_steps=32, batch_size=32)
    before = model.policy.action_net.bias.detach().clone()
    tr.bias_noop_logits(model, 6.0)
    after = model.policy.action_net.bias.detach()
    n = env.action_space.nvec
    starts = np.concatenate([[0], np.cumsum(n)[:-1]])
    delta = (after - before).numpy()
    np.testing.assert_allclose(delta[starts], 6.0)
    assert np.count_nonzero(delta) == len(n)  # only the "do nothing" logits moved
    obs, _ = env.reset(seed=1)
    action, _ = model.predict(obs, deterministic=True)
    assert not np.any(action)
    tr.bias_noop_logits(model, 0.0)  # 0 leaves the initialisation alone
    np.testing.assert_array_equal(model.policy.action_net.bias.detach(), after)


def test_noop_logit_bias_from_hyperparams_is_recorded_not_passed_to_sb3(tmp_path):
    """An unknown keyword would make the SB3 constructor raise; the run records it."""
    runs = tmp_path / "runs"
    argv = tiny_argv("ppo", runs, seed=1, extra_hp=("noop_logit_bias=4.0",))
    run = run_cli(argv, runs)
    config = yaml.safe_load((run / "config.yml").read_text())
    assert config["hyperparams"]["noop_logit_bias"] == 4.0


def test_linear_schedules_rl_zoo_style(tmp_path):
    """``lin_<v>`` decays from v to 0 over the run; bad values name the key."""
    sched = tr.resolve_schedule("learning_rate", "lin_3e-4")
    assert sched(1.0) == pytest.approx(3e-4) and sched(0.25) == pytest.approx(7.5e-5)
    assert tr.resolve_schedule("clip_range", 0.2) == 0.2
    assert tr.resolve_schedule("learning_rate", "3e-4") == 3e-4  # YAML 1.1 leaves it a string
    for bad in ("lin_", "lin_-1", "lin_x", "3e-4x", -0.1, True):
        with pytest.raises(ValueError, match="learning_rate: expected"):
            tr.resolve_schedule("learning_rate", bad)
    runs = tmp_path / "runs"
    run = run_cli(tiny_argv("ppo", runs, extra_hp=("learning_rate=lin_1e-3",)), runs)
    model = load_model(str(run / "final_model.zip"))
    lr = model.policy.optimizer.param_groups[0]["lr"]
    assert 0 <= lr < 1e-3 / 2  # decayed over the run (the last update is near the end)


@pytest.mark.slow
@pytest.mark.xfail(
    strict=True,
    reason="v1: the v0-tuned default stays exactly at noop for its first 200k steps "
    "(README, Full-length result); retuning it for v1 is the agent issue's work",
)
def test_default_agent_learns_failover_on_city(tmp_path):
    """The tuned default (MaskablePPO + pointer head) learns, in 150k steps (about 5 min),
    to fail over the orphans of dead nodes and to leave healthy nodes alone: on held-out
    seeds it beats ``noop`` on paired seeds, with failovers and almost no migrations."""
    runs = tmp_path / "runs"
    argv = [
        "--timesteps", "150000", "--eval-episodes", "10", "--baselines", "noop",
        "--runs-dir", str(runs), "--no-progress", "--checkpoint-freq", "0",
    ]  # fmt: skip
    run = run_cli(argv, runs)
    records = list(csv.DictReader((run / "eval" / "episodes.csv").open()))
    agent = [r for r in records if r["policy"] != "noop"]
    noop = {r["seed"]: float(r["return"]) for r in records if r["policy"] == "noop"}
    assert len(agent) == len(noop) == 10
    gain = np.mean([float(r["return"]) - noop[r["seed"]] for r in agent])
    assert gain > 3.0, f"agent - noop = {gain:.1f} on paired seeds"
    assert np.mean([float(r["failovers"]) for r in agent]) >= 1.0
    assert np.mean([float(r["migrations_started"]) for r in agent]) < 20


@pytest.mark.parametrize("algo", tr.ALGOS)
def test_every_shipped_hyperparameter_entry_builds_a_model(algo):
    """Each id's entry in agents/hyperparams/<algo>.yml resolves and builds its SB3 model
    (a typo in a key or a policy name fails here, not after a long run)."""
    table = yaml.safe_load((tr.HYPERPARAM_DIR / f"{algo}.yml").read_text())
    for env_id in table:
        hp = tr.load_hyperparams(algo, env_id, None)
        target = SMALL if env_id == "default" else env_id
        env_kwargs = tr.env_kwargs_of(hp)
        policy = tr.resolve_policy(hp.get("policy", "MlpPolicy"), algo, env_kwargs)
        env = gym.make(target, **env_kwargs)
        model = tr.algo_class(algo)(policy, env, device="cpu", **tr.sb3_kwargs(hp))
        tr.bias_noop_logits(model, float(hp.get("noop_logit_bias", 0.0)))
        obs, _ = env.reset(seed=0)
        action, _ = model.predict(obs, deterministic=True)
        assert env.action_space.contains(np.asarray(action)), (algo, env_id)
        env.close()
