"""The Gymnasium environment: API conformance, configuration, reproducibility,
observation bounds, info contents, action masks and an RL smoke test."""

from __future__ import annotations

import copy
import json
import math
import os
import pickle
import subprocess
import sys
import textwrap
import warnings

import gymnasium as gym
import numpy as np
import pytest
from gymnasium import spaces

import roadedge.envs as roadedge_envs
from roadedge.envs import ConfigError, RoadEdgeEnv
from roadedge.envs.sim.migration import MigrationState

SMALL = "RoadEdge-small-v1"
FAILURES = "RoadEdge-failures-v1"

METRIC_KEYS = (
    "tasks_generated",
    "tasks_completed",
    "tasks_missed",
    "tasks_dropped",
    "tasks_active",
    "migrations_started",
    "migrations_completed",
    "migrations_failed",
    "downtime_s",
    "mean_latency_ms",
    "failovers",
    "invalid_actions",
)
# Cumulative episode counters: they never decrease within an episode.
CUMULATIVE_KEYS = (
    "tasks_generated",
    "tasks_completed",
    "tasks_missed",
    "tasks_dropped",
    "migrations_started",
    "migrations_completed",
    "migrations_failed",
    "downtime_s",
    "failovers",
    "invalid_actions",
)
REWARD_TERM_KEYS = {
    "completion",
    "latency",
    "deadline_miss",
    "drop",
    "migration_cost",
    "downtime",
    "uav_energy",
}
UNCONVENTIONAL_SHAPE = r"Your observation \w+ has an unconventional shape"
# SB3's checker takes every 3-D box, so the (N, N, 3) pair features, for an image and gives
# image advice (dtype, bounds, resolution); they are float features in [0, 1], and SB3's
# policies treat only uint8 boxes as images.
PAIRS_LOOK_LIKE_AN_IMAGE = (
    r"It seems that your observation (space )?pairs is an image|"
    r"The minimal resolution for an image is"
)


# --------------------------------------------------------------------------- helpers


def masked_action(mask: np.ndarray, n_nodes: int, rng: np.random.Generator) -> np.ndarray:
    """A uniformly random choice among the mask's valid entries, per node."""
    blocks = np.asarray(mask, dtype=bool).reshape(n_nodes, n_nodes + 1)
    scores = np.where(blocks, rng.random(blocks.shape), -1.0)
    return scores.argmax(axis=1).astype(np.int64)


def expected_invalid(mask: np.ndarray, action: np.ndarray) -> int:
    """How many non-zero choices of ``action`` the mask marks invalid."""
    n = len(action)
    blocks = np.asarray(mask, dtype=bool).reshape(n, n + 1)
    return int(sum(a > 0 and not blocks[i, a] for i, a in enumerate(action)))


def describe_bad_box_obs(space: spaces.Box, obs) -> str:
    if not isinstance(obs, np.ndarray):
        return f"observation is a {type(obs).__name__}"
    if obs.dtype != space.dtype or obs.shape != space.shape:
        return f"dtype/shape {obs.dtype}{obs.shape} != {space.dtype}{space.shape}"
    bad = ~np.isfinite(obs) | (obs < space.low) | (obs > space.high)
    return f"entries {np.argwhere(bad)[:5].tolist()} out of bounds: {obs[bad][:5]}"


def assert_obs_in_space(space: spaces.Space, obs, where: str) -> None:
    """``space.contains(obs)`` with an exact dtype, and a useful message if not."""
    if isinstance(space, spaces.Dict):
        assert isinstance(obs, dict) and set(obs) == set(space.spaces), where
        for key, sub in space.spaces.items():
            assert_obs_in_space(sub, obs[key], f"{where}[{key}]")
        return
    ok = isinstance(obs, np.ndarray) and obs.dtype == space.dtype and space.contains(obs)
    assert ok, f"{where}: {describe_bad_box_obs(space, obs)}"


def run_episode(env: gym.Env, seed: int | None, actions: list[np.ndarray]):
    """Reset (with ``seed``) then play ``actions``; return the whole trajectory."""
    obs, info = env.reset(seed=seed)
    traj = [(obs, None, None, None, info)]
    for a in actions:
        obs, reward, terminated, truncated, info = env.step(a)
        traj.append((obs, reward, terminated, truncated, info))
        if terminated or truncated:
            break
    return traj


def assert_same_obs(a, b, where: str) -> None:
    if isinstance(a, dict):
        assert set(a) == set(b), where
        for k in a:
            np.testing.assert_array_equal(a[k], b[k], err_msg=f"{where}[{k}]")
    else:
        np.testing.assert_array_equal(a, b, err_msg=where)


def assert_same_trajectory(ta, tb) -> None:
    assert len(ta) == len(tb)
    for i, (sa, sb) in enumerate(zip(ta, tb, strict=True)):
        assert_same_obs(sa[0], sb[0], f"obs at step {i}")
        assert sa[1:4] == sb[1:4], f"reward/terminated/truncated differ at step {i}"
        assert sa[4] == sb[4], f"info differs at step {i}"


def sample_actions(space: spaces.MultiDiscrete, seed: int, n: int) -> list[np.ndarray]:
    space.seed(seed)
    return [space.sample() for _ in range(n)]


# --------------------------------------------------------------------------- env checkers


@pytest.mark.parametrize("obs_mode", ["flat", "dict"])
@pytest.mark.parametrize("env_id", roadedge_envs.env_ids())
def test_gymnasium_env_checker(env_id, obs_mode):
    from gymnasium.utils.env_checker import check_env

    env = gym.make(env_id, obs_mode=obs_mode)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            check_env(env.unwrapped, skip_render_check=True)
    finally:
        env.close()


@pytest.mark.parametrize("obs_mode", ["flat", "dict"])
@pytest.mark.parametrize("env_id", roadedge_envs.env_ids())
def test_sb3_env_checker(env_id, obs_mode):
    from stable_baselines3.common.env_checker import check_env

    env = gym.make(env_id, obs_mode=obs_mode)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            # The 2-D entries of the dict observation (node matrix, distances) are
            # deliberate: allow exactly SB3's "unconventional shape" advice.
            warnings.filterwarnings("ignore", message=UNCONVENTIONAL_SHAPE, category=UserWarning)
            warnings.filterwarnings(
                "ignore", message=PAIRS_LOOK_LIKE_AN_IMAGE, category=UserWarning
            )
            check_env(env, warn=True, skip_render_check=True)
    finally:
        env.close()


def test_env_ids_registered():
    ids = roadedge_envs.env_ids()
    assert "RoadEdge-v1" in ids
    for preset in ("small", "city", "failures"):
        assert f"RoadEdge-{preset}-v1" in ids
    for env_id in ids:
        assert env_id in gym.registry
        assert gym.registry[env_id].max_episode_steps is not None
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # re-registering would warn "Overriding environment"
        roadedge_envs.register_envs()
    assert gym.spec(SMALL).max_episode_steps == 200


def test_make_with_module_prefix_from_other_directory(tmp_path):
    code = textwrap.dedent(
        """
        import json, sys
        import gymnasium
        assert "roadedge.envs" not in sys.modules
        env = gymnasium.make("roadedge.envs:RoadEdge-v1")
        obs, info = env.reset(seed=0)
        obs, reward, terminated, truncated, info = env.step(env.action_space.sample())
        print(json.dumps({"id": env.spec.id, "obs": list(obs.shape),
                          "in_space": bool(env.observation_space.contains(obs)),
                          "reward": type(reward).__name__}))
        """
    )
    child_env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    proc = subprocess.run(
        [sys.executable, "-c", code],
        cwd=tmp_path,
        env=child_env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    assert out["id"] == "RoadEdge-v1"
    assert out["in_space"] is True
    assert out["reward"] == "float"
    assert len(out["obs"]) == 1 and out["obs"][0] > 0


# --------------------------------------------------------------------------- configuration


def test_make_with_scenario_sets_spaces():
    env = gym.make("RoadEdge-v1", scenario="small")
    cfg = env.unwrapped.cfg
    n = cfg.rsu.count + cfg.uav.count
    assert (cfg.rsu.count, cfg.uav.count, cfg.horizon) == (3, 1, 200)
    assert isinstance(env.action_space, spaces.MultiDiscrete)
    np.testing.assert_array_equal(env.action_space.nvec, [n + 1] * n)
    assert env.observation_space.shape == gym.make(SMALL).observation_space.shape
    env.close()


def test_overrides_change_config_and_spaces():
    base = gym.make(SMALL).unwrapped
    n0 = base.n_nodes
    env = gym.make(SMALL, rsu__count=4).unwrapped
    assert env.cfg.rsu.count == 4 and env.n_nodes == n0 + 1
    np.testing.assert_array_equal(env.action_space.nvec, [n0 + 2] * (n0 + 1))
    assert env.observation_space.shape[0] > base.observation_space.shape[0]
    obs, _ = env.reset(seed=0)
    assert env.observation_space.contains(obs)
    assert env.action_masks().shape == ((n0 + 1) * (n0 + 2),)


@pytest.mark.parametrize(
    "overrides",
    [
        {"vehicles": {"max_vehicles": 30}},
        {"vehicles.max_vehicles": 30},
        {"vehicles__max_vehicles": 30},
    ],
    ids=["nested", "dotted", "double_underscore"],
)
def test_override_forms(overrides):
    env = gym.make(SMALL, **overrides)
    cfg = env.unwrapped.cfg
    assert cfg.vehicles.max_vehicles == 30
    # The rest of the preset survives a partial override of a section.
    preset = gym.make(SMALL).unwrapped.cfg
    assert cfg.vehicles.initial_vehicles == preset.vehicles.initial_vehicles
    assert cfg.vehicles.arrival_rate_hz == preset.vehicles.arrival_rate_hz
    assert cfg.rsu == preset.rsu and cfg.horizon == preset.horizon
    obs, _ = env.reset(seed=0)
    assert env.observation_space.contains(obs)
    env.close()


def test_yaml_scenario(tmp_path):
    path = tmp_path / "mine.yaml"
    path.write_text("base: small\nhorizon: 50\nrsu: {count: 2}\nuav: {count: 2}\n")
    for scenario in (str(path), path):
        env = gym.make("RoadEdge-v1", scenario=scenario, max_episode_steps=50)
        cfg = env.unwrapped.cfg
        assert (cfg.horizon, cfg.rsu.count, cfg.uav.count) == (50, 2, 2)
        assert cfg.map.grid_blocks == gym.make(SMALL).unwrapped.cfg.map.grid_blocks
        assert env.unwrapped.n_nodes == 4
        env.reset(seed=0)
        env.close()
    # Overrides apply on top of the file.
    env = gym.make("RoadEdge-v1", scenario=str(path), horizon=60)
    assert env.unwrapped.cfg.horizon == 60


@pytest.mark.parametrize(
    ("overrides", "key"),
    [
        ({"vehicles__max_vehicle": 30}, "vehicles.max_vehicle"),
        ({"vehicles": {"max_vehicle": 30}}, "vehicles.max_vehicle"),
        ({"no_such_key": 1}, "no_such_key"),
        ({"migration.cooldown_s": -1.0}, "migration.cooldown_s"),
        ({"vehicles__max_vehicles": 0}, "vehicles.max_vehicles"),
        ({"tasks": {"n_services": 1000}}, "tasks.n_services"),
    ],
)
def test_bad_overrides_raise_config_error(overrides, key):
    with pytest.raises(ConfigError) as excinfo:
        gym.make(SMALL, **overrides)
    assert isinstance(excinfo.value, ValueError)
    assert key in str(excinfo.value)


def test_bad_yaml_key_raises(tmp_path):
    path = tmp_path / "typo.yaml"
    path.write_text("base: small\nrsu: {cont: 2}\n")
    with pytest.raises(ConfigError, match=r"rsu\.cont"):
        gym.make("RoadEdge-v1", scenario=str(path))
    with pytest.raises(ConfigError, match="nope"):
        gym.make("RoadEdge-v1", scenario="nope")


def test_bad_obs_mode_raises():
    with pytest.raises(ValueError, match="obs_mode"):
        gym.make(SMALL, obs_mode="image")
    with pytest.raises(ValueError, match="obs_mode"):
        RoadEdgeEnv(scenario="small", obs_mode="pixels")


def test_flat_and_dict_hold_the_same_information():
    flat, dct = gym.make(SMALL), gym.make(SMALL, obs_mode="dict")
    n = flat.unwrapped.n_nodes
    assert dct.observation_space["distances"].shape == (n, n)
    assert dct.observation_space["node_mask"].shape == (n,)
    assert dct.observation_space["pairs"].shape == (n, n, 5)
    actions = sample_actions(flat.action_space, 3, 60)
    for (of, rf, *_), (od, rd, *_) in zip(
        run_episode(flat, 5, actions), run_episode(dct, 5, actions), strict=True
    ):
        np.testing.assert_array_equal(
            of, np.concatenate([od["nodes"].ravel(), od["globals"], od["pairs"].ravel()])
        )
        np.testing.assert_array_equal(od["node_mask"], od["nodes"][:, 0])
        assert rf == rd


# --------------------------------------------------------------------------- reproducibility


def test_same_seed_same_episode_different_seed_differs():
    env_a, env_b, env_c = gym.make(SMALL), gym.make(SMALL), gym.make(SMALL)
    actions = sample_actions(env_a.action_space, 11, 250)
    ta = run_episode(env_a, 123, actions)
    tb = run_episode(env_b, 123, actions)
    assert len(ta) == 201 and ta[-1][3] is True  # a whole episode, to truncation
    assert_same_trajectory(ta, tb)

    tc = run_episode(env_c, 124, actions)
    differs = any(
        not np.array_equal(x[0], y[0]) or x[1] != y[1] for x, y in zip(ta, tc, strict=True)
    )
    assert differs, "seeds 123 and 124 gave the same episode"

    # reset() without a seed continues the seeded generator: reproducible, but new.
    ta2 = run_episode(env_a, None, actions[:80])
    tb2 = run_episode(env_b, None, actions[:80])
    assert_same_trajectory(ta2, tb2)
    assert any(not np.array_equal(x[0], y[0]) for x, y in zip(ta[:81], ta2, strict=True))


def test_unseeded_reset_after_seeded_reset_is_reproducible_dict_mode():
    env_a, env_b = gym.make(SMALL, obs_mode="dict"), gym.make(SMALL, obs_mode="dict")
    env_a.reset(seed=9)
    env_b.reset(seed=9)
    actions = sample_actions(env_a.action_space, 1, 40)
    assert_same_trajectory(run_episode(env_a, None, actions), run_episode(env_b, None, actions))


@pytest.mark.parametrize(
    "clone_of", [lambda e: pickle.loads(pickle.dumps(e)), copy.deepcopy], ids=["pickle", "deepcopy"]
)
def test_pickled_env_continues_identically(clone_of):
    """Mid-episode, a pickled or deep-copied env (its compiled core's arrays included)
    continues exactly as the original, and independently of it."""
    env = gym.make(SMALL)
    actions = sample_actions(env.action_space, 4, 200)
    env.reset(seed=77)
    for a in actions[:60]:
        env.step(a)
    base = env.unwrapped
    clone = clone_of(base)
    assert clone is not base
    state = clone.sim.world.subset(MigrationState)
    assert state.task_state is clone.sim.world.task_state
    assert clone.sim.world.task_state is not base.sim.world.task_state
    np.testing.assert_array_equal(clone.action_masks(), base.action_masks())
    for i, a in enumerate(actions[60:140]):
        step_a = base.step(a)
        step_b = clone.step(a)
        assert_same_obs(step_a[0], step_b[0], f"obs after step {60 + i}")
        assert step_a[1:] == step_b[1:], f"step {60 + i} differs"
        np.testing.assert_array_equal(clone.action_masks(), base.action_masks())
    # The generator state travels too: an unseeded reset matches.
    assert_same_obs(base.reset()[0], clone.reset()[0], "obs after unseeded reset")
    assert base.reset()[1] == clone.reset()[1]


# --------------------------------------------------------------------------- vector envs


def test_sync_and_async_vector_envs():
    fns = [lambda: gym.make(SMALL) for _ in range(2)]
    sync = gym.vector.SyncVectorEnv(fns)
    asyn = gym.vector.AsyncVectorEnv(fns)
    try:
        obs_s, _ = sync.reset(seed=[5, 6])
        obs_a, _ = asyn.reset(seed=[5, 6])
        assert obs_s.shape == (2,) + gym.make(SMALL).observation_space.shape
        np.testing.assert_array_equal(obs_s, obs_a)
        # Each sub-env matches a single env with the same seed.
        single = gym.make(SMALL)
        np.testing.assert_array_equal(obs_s[1], single.reset(seed=6)[0])
        sync.action_space.seed(0)
        for _ in range(20):
            act = sync.action_space.sample()
            out_s = sync.step(act)
            out_a = asyn.step(act)
            for x, y in zip(out_s[:4], out_a[:4], strict=True):
                np.testing.assert_array_equal(x, y)
            assert sync.observation_space.contains(out_s[0])
            assert not out_s[2].any() and not out_s[3].any()
    finally:
        sync.close()
        asyn.close()


# --------------------------------------------------------------------------- observation bounds


@pytest.mark.parametrize("env_id", [SMALL, FAILURES])
def test_observations_stay_in_space_for_10000_steps(env_id):
    env = gym.make(env_id)
    base = env.unwrapped
    space, n = env.observation_space, base.n_nodes
    rng = np.random.default_rng(0)
    env.action_space.seed(0)
    obs, _ = env.reset(seed=0)
    assert_obs_in_space(space, obs, "reset")
    episodes, saw_down = 1, False
    for step in range(10_000):
        if rng.random() < 0.5:
            action = env.action_space.sample()
        else:
            action = masked_action(base.action_masks(), n, rng)
        obs, _, terminated, truncated, info = env.step(action)
        assert_obs_in_space(space, obs, f"episode {episodes}, step {step}")
        saw_down |= info["metrics"]["failures_detected"] > 0
        if terminated or truncated:
            obs, _ = env.reset()
            episodes += 1
            assert_obs_in_space(space, obs, f"reset {episodes}")
    assert episodes >= 10_000 // base.cfg.horizon
    if env_id == FAILURES:
        assert saw_down, "the failures preset never detected a node failure in 10,000 steps"


# --------------------------------------------------------------------------- info and reward


def check_info(info: dict, reward: float | None, where: str) -> None:
    metrics = info["metrics"]
    missing = set(METRIC_KEYS) - set(metrics)
    assert not missing, f"{where}: metrics lack {sorted(missing)}"
    for k, v in metrics.items():
        assert type(v) is float, f"{where}: metrics[{k!r}] is {type(v).__name__}"
        assert math.isfinite(v) and v >= 0, f"{where}: metrics[{k!r}] = {v}"
    accounted = (
        metrics["tasks_completed"]
        + metrics["tasks_missed"]
        + metrics["tasks_dropped"]
        + metrics["tasks_active"]
    )
    assert metrics["tasks_generated"] == accounted, f"{where}: task accounting {metrics}"
    assert (
        metrics["migrations_completed"] + metrics["migrations_failed"]
        <= metrics["migrations_started"]
    ), f"{where}: {metrics}"
    terms = info["reward_terms"]
    assert set(terms) == REWARD_TERM_KEYS, f"{where}: reward terms {sorted(terms)}"
    for k, v in terms.items():
        assert type(v) is float, f"{where}: reward_terms[{k!r}] is {type(v).__name__}"
        assert math.isfinite(v), f"{where}: reward_terms[{k!r}] = {v}"
    assert terms["completion"] >= 0, where
    assert all(v <= 0 for k, v in terms.items() if k != "completion"), f"{where}: {terms}"
    if reward is not None:
        assert type(reward) is float, f"{where}: reward is {type(reward).__name__}"
        assert math.isclose(sum(terms.values()), reward, rel_tol=1e-9, abs_tol=1e-9), (
            f"{where}: terms sum to {sum(terms.values())}, reward {reward}"
        )


@pytest.mark.parametrize(("env_id", "n_steps"), [(SMALL, 400), (FAILURES, 300)])
def test_info_metrics_and_reward_terms(env_id, n_steps):
    env = gym.make(env_id)
    base = env.unwrapped
    rng = np.random.default_rng(1)
    env.action_space.seed(1)
    obs, info = env.reset(seed=1)
    check_info(info, None, "reset")
    assert all(info["metrics"][k] == 0.0 for k in METRIC_KEYS), info["metrics"]
    assert all(v == 0.0 for v in info["reward_terms"].values())
    prev = info["metrics"]
    nonzero_terms: set[str] = set()
    for step in range(n_steps):
        if step % 2:
            action = env.action_space.sample()
        else:
            action = masked_action(base.action_masks(), base.n_nodes, rng)
        obs, reward, terminated, truncated, info = env.step(action)
        check_info(info, reward, f"step {step}")
        assert terminated is False
        metrics = info["metrics"]
        for k in CUMULATIVE_KEYS:
            assert metrics[k] >= prev[k], f"step {step}: {k} decreased {prev[k]} -> {metrics[k]}"
        nonzero_terms |= {k for k, v in info["reward_terms"].items() if v != 0}
        prev = metrics
        if truncated:
            obs, info = env.reset()
            check_info(info, None, "reset after truncation")
            assert info["metrics"]["tasks_generated"] == 0.0, "metrics not reset per episode"
            prev = info["metrics"]
    # The run exercised the accounting: tasks flowed and several terms were active.
    assert {"completion", "latency", "migration_cost"} <= nonzero_terms


# --------------------------------------------------------------------------- action masks


def test_action_mask_layout():
    env = gym.make(SMALL)
    n = env.unwrapped.n_nodes
    env.reset(seed=2)
    env.action_space.seed(2)
    get_masks = env.get_wrapper_attr("action_masks")
    for _ in range(100):
        mask = get_masks()
        assert isinstance(mask, np.ndarray) and mask.dtype == bool
        assert mask.shape == (n * (n + 1),)
        blocks = mask.reshape(n, n + 1)
        assert blocks[:, 0].all(), "doing nothing must always be valid"
        assert not blocks[np.arange(n), np.arange(n) + 1].any(), "moving to itself is invalid"
        env.step(env.action_space.sample())


def test_invalid_choices_are_counted():
    env = gym.make(SMALL)
    base = env.unwrapped
    n = base.n_nodes
    rng = np.random.default_rng(3)
    env.action_space.seed(3)
    _, info = env.reset(seed=3)
    total_expected = 0
    for step in range(200):
        mask = base.action_masks()
        before = info["metrics"]["invalid_actions"]
        if step % 3 == 0:
            # Exactly one choice the mask marks invalid, on a random node.
            action = np.zeros(n, dtype=np.int64)
            node = rng.integers(n)
            bad = np.flatnonzero(~mask.reshape(n, n + 1)[node])
            assert bad.size, f"step {step}: node {node} may even move to itself: {mask}"
            action[node] = rng.choice(bad)
            assert expected_invalid(mask, action) == 1
        else:
            action = env.action_space.sample()
        want = expected_invalid(mask, action)
        _, _, _, truncated, info = env.step(action)
        assert info["invalid"] == want, f"step {step}: action {action}, mask {mask}"
        assert info["metrics"]["invalid_actions"] == before + want, f"step {step}"
        total_expected += want
        if truncated:
            break
    assert total_expected > 0


@pytest.mark.parametrize(("env_id", "n_steps"), [(SMALL, 200), (FAILURES, 300)])
def test_masked_valid_actions_are_never_invalid(env_id, n_steps):
    env = gym.make(env_id)
    base = env.unwrapped
    rng = np.random.default_rng(4)
    env.reset(seed=4)
    moved = 0.0
    for step in range(n_steps):
        action = masked_action(base.action_masks(), base.n_nodes, rng)
        _, _, _, truncated, info = env.step(action)
        assert info["invalid"] == 0, f"step {step}: masked-valid action {action} was invalid"
        assert info["metrics"]["invalid_actions"] == 0.0, f"step {step}"
        moved = info["metrics"]["migrations_started"] + info["metrics"]["failovers"]
        if truncated:
            break
    assert moved > 0, "masked-valid actions never started a migration"


# --------------------------------------------------------------------------- bad actions


def test_bad_actions_raise_value_error():
    env = gym.make(SMALL)
    n = env.unwrapped.n_nodes
    env.reset(seed=0)
    bad = [
        np.zeros(n - 1, dtype=np.int64),  # too short
        np.zeros(n + 1, dtype=np.int64),  # too long
        np.zeros((1, n), dtype=np.int64),  # batched
        np.full(n, n + 1, dtype=np.int64),  # target beyond the last node
        np.array([-1] + [0] * (n - 1)),  # negative
        np.array([0.5] + [0.0] * (n - 1)),  # fractional
        [0.5] + [0] * (n - 1),  # fractional, as a list
        3,  # a scalar
    ]
    for action in bad:
        with pytest.raises(ValueError, match="action") as excinfo:
            env.step(action)
        assert str(n) in str(excinfo.value), f"message should give the bounds: {excinfo.value}"
    # The env is still usable and unchanged by the rejected actions.
    obs, _, _, _, info = env.step(np.zeros(n, dtype=np.int64))
    assert env.observation_space.contains(obs)
    assert info["metrics"]["invalid_actions"] == 0.0
    env.step([0] * n)  # a list of ints is fine


def test_step_before_reset_raises_reset_needed():
    """The raw class too (gym.make's OrderEnforcing wrapper catches it already): stepping
    a never-reset env would simulate an unseeded world."""
    env = RoadEdgeEnv("small")
    zero = np.zeros(env.n_nodes, dtype=np.int64)
    with pytest.raises(gym.error.ResetNeeded, match="before reset"):
        env.step(zero)
    assert int(env.sim.world.tick[0]) == 0
    env.reset(seed=0)
    env.step(zero)
    with pytest.raises(gym.error.ResetNeeded):
        gym.make(SMALL).step(zero)


@pytest.mark.parametrize("arg", ["record_events", "check_invariants"])
@pytest.mark.parametrize("value", ["no", "False", 0, 1, None])
def test_boolean_arguments_must_be_bools(arg, value):
    with pytest.raises(TypeError, match=rf"^{arg} must be True or False"):
        RoadEdgeEnv("small", **{arg: value})
    with pytest.raises(TypeError, match=rf"^{arg} must be True or False"):
        gym.make(SMALL, **{arg: value})


# --------------------------------------------------------------------------- episode end


def test_truncation_at_horizon():
    env = gym.make(SMALL)
    horizon = env.unwrapped.cfg.horizon
    assert horizon == 200
    env.reset(seed=0)
    env.action_space.seed(0)
    for step in range(1, horizon + 1):
        _, _, terminated, truncated, _ = env.step(env.action_space.sample())
        assert terminated is False
        assert truncated is (step == horizon), f"step {step}: truncated={truncated}"


def test_unwrapped_env_truncates_at_configured_horizon():
    env = RoadEdgeEnv(scenario="small", horizon=25)
    env.reset(seed=0)
    zero = np.zeros(env.n_nodes, dtype=np.int64)
    flags = [env.step(zero)[2:4] for _ in range(25)]
    assert all(t is False for t, _ in flags)
    assert [tr for _, tr in flags] == [False] * 24 + [True]


# --------------------------------------------------------------------------- RL smoke tests


class CountSteps(gym.Wrapper):
    """Counts steps and the invalid choices reported in ``info["invalid"]``."""

    def __init__(self, env: gym.Env):
        super().__init__(env)
        self.steps = 0
        self.invalid = 0

    def step(self, action):
        out = self.env.step(action)
        self.steps += 1
        self.invalid += out[4]["invalid"]
        return out


def test_ppo_learns_for_256_steps(one_torch_thread):
    from stable_baselines3 import PPO

    env = CountSteps(gym.make(SMALL))
    model = PPO("MlpPolicy", env, n_steps=128, batch_size=64, n_epochs=2, device="cpu", seed=0)
    model.learn(total_timesteps=256)
    assert model.num_timesteps == 256 and env.steps == 256
    obs, _ = env.reset(seed=0)
    action, _ = model.predict(obs, deterministic=True)
    assert env.action_space.contains(action)


def test_maskable_ppo_learns_for_256_steps_with_valid_actions(one_torch_thread):
    from sb3_contrib import MaskablePPO

    env = CountSteps(gym.make(SMALL))
    model = MaskablePPO(
        "MlpPolicy", env, n_steps=128, batch_size=64, n_epochs=2, device="cpu", seed=0
    )
    model.learn(total_timesteps=256)
    assert model.num_timesteps == 256 and env.steps == 256
    # MaskablePPO read env.action_masks() (through the wrappers) at every step.
    assert env.invalid == 0, f"{env.invalid} masked-out choices were taken"
    obs, _ = env.reset(seed=0)
    masks = env.get_wrapper_attr("action_masks")()
    action, _ = model.predict(obs, action_masks=masks, deterministic=True)
    assert env.action_space.contains(action)
    assert expected_invalid(masks, action) == 0
