"""The native batched env (``RoadEdgeVectorEnv``) and its SB3 adapter: row-by-row
equivalence with single ``RoadEdgeEnv``s across autoresets, batch-size independence,
``gymnasium.make_vec``, the Stable-Baselines3 ``VecEnv`` interface, and input errors."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest
from gymnasium import spaces
from gymnasium.vector import AutoresetMode
from gymnasium.vector.utils import batch_space

import roadedge.envs  # noqa: F401  (registers the ids)
from roadedge.envs import RoadEdgeEnv
from roadedge.envs.vector_env import RoadEdgeVectorEnv, make_sb3_vec_env


def final_row(final_info: dict, i: int) -> dict:
    """Row ``i`` of a batched (Gymnasium 1.x layout) ``final_info`` as a plain info dict."""
    return {
        "reward_terms": {k: float(v[i]) for k, v in final_info["reward_terms"].items()},
        "metrics": {k: float(v[i]) for k, v in final_info["metrics"].items()},
        "invalid": int(final_info["invalid"][i]),
    }


SMALL = "RoadEdge-small-v1"
HORIZON = 20  # short episodes, so every test crosses several autoresets
SEEDS = [11, 5, 2024]


# --------------------------------------------------------------------------- helpers


def random_valid(masks: np.ndarray, n_nodes: int, rng: np.random.Generator) -> np.ndarray:
    """One uniformly random valid choice per node, for flat (B, N * (N + 1)) masks."""
    m = masks.reshape(masks.shape[0], n_nodes, n_nodes + 1)
    return np.argmax(np.where(m, rng.random(m.shape), -1.0), axis=-1).astype(np.int64)


def obs_row(obs, i: int):
    if isinstance(obs, dict):
        return {k: v[i] for k, v in obs.items()}
    return obs[i]


def assert_obs_equal(actual, expected, where: str) -> None:
    """Bit-identical observations (flat arrays or dicts of arrays)."""
    if isinstance(expected, dict):
        assert isinstance(actual, dict) and actual.keys() == expected.keys(), where
        for k in expected:
            assert actual[k].dtype == expected[k].dtype, f"{where}: {k}"
            np.testing.assert_array_equal(actual[k], expected[k], err_msg=f"{where}: {k}")
    else:
        assert actual.dtype == expected.dtype, where
        np.testing.assert_array_equal(actual, expected, err_msg=where)


def row_info(infos: dict, i: int) -> dict:
    """Row ``i`` of the batched ``reward_terms``/``metrics``/``invalid`` entries."""
    return {
        "reward_terms": {k: v[i] for k, v in infos["reward_terms"].items()},
        "metrics": {k: v[i] for k, v in infos["metrics"].items()},
        "invalid": infos["invalid"][i],
    }


def assert_info_equal(actual: dict, expected: dict, where: str) -> None:
    """Exactly equal ``reward_terms``, ``metrics`` and ``invalid`` (same keys, same values)."""
    for key in ("reward_terms", "metrics"):
        assert actual[key].keys() == expected[key].keys(), f"{where}: {key} keys"
        diff = {k: (actual[key][k], expected[key][k]) for k in expected[key]}
        diff = {k: ab for k, ab in diff.items() if not ab[0] == ab[1]}
        assert not diff, f"{where}: {key} differ: {diff}"
    assert actual["invalid"] == expected["invalid"], where


def unmasked(batched: dict) -> dict:
    """A SyncVectorEnv info dict without its ``_key`` "which rows have it" masks."""
    return {k: v for k, v in batched.items() if not k.startswith("_")}


def make_single(obs_mode: str = "flat") -> gym.Env:
    return gym.make(SMALL, obs_mode=obs_mode, horizon=HORIZON, max_episode_steps=HORIZON)


# --------------------------------------------------------------------------- equivalence


@pytest.mark.parametrize("obs_mode", ["flat", "dict"])
@pytest.mark.parametrize("mode", [AutoresetMode.NEXT_STEP, AutoresetMode.SAME_STEP])
def test_rows_match_single_envs_across_autoresets(obs_mode, mode):
    """Each row equals a single env with the same seed and actions, bit for bit, over
    several episodes: observations, rewards, flags, infos, masks, and the autoreset
    protocol (NEXT_STEP: a reset step after each end; SAME_STEP: ``final_obs`` and
    ``final_info`` hold the last step, the obs and info the new episode's first).
    A mid-run ``reset_mask`` reset of one row puts the rows' episode ends out of step."""
    K = len(SEEDS)
    venv = RoadEdgeVectorEnv(
        K, scenario="small", obs_mode=obs_mode, autoreset_mode=mode, horizon=HORIZON
    )
    singles = [make_single(obs_mode) for _ in range(K)]
    N = venv.n_nodes
    rng = np.random.default_rng(0)

    obs, infos = venv.reset(seed=SEEDS)
    assert venv.observation_space.contains(obs)
    for i, env in enumerate(singles):
        s_obs, s_info = env.reset(seed=SEEDS[i])
        assert_obs_equal(obs_row(obs, i), s_obs, f"reset row {i}")
        assert_info_equal(row_info(infos, i), s_info, f"reset row {i}")

    pending = [False] * K  # NEXT_STEP: the row's next step is a reset step
    ends: list[list[int]] = [[] for _ in range(K)]  # steps at which each row's episodes ended
    remask_at, remask_row, remask_seed = 7, 1, 99
    n_steps = 3 * HORIZON + 5
    for t in range(n_steps):
        if t == remask_at:
            mask = np.arange(K) == remask_row
            seeds = [None] * K
            seeds[remask_row] = remask_seed
            obs, infos = venv.reset(seed=seeds, options={"reset_mask": mask})
            s_obs, s_info = singles[remask_row].reset(seed=remask_seed)
            pending[remask_row] = False
            assert_obs_equal(obs_row(obs, remask_row), s_obs, "reset_mask row")
            assert_info_equal(row_info(infos, remask_row), s_info, "reset_mask row")

        masks = venv.action_masks()
        assert masks.shape == (K, N * (N + 1)) and masks.dtype == bool
        for i, env in enumerate(singles):
            if not pending[i]:
                np.testing.assert_array_equal(masks[i], env.unwrapped.action_masks())
        actions = random_valid(masks, N, rng)
        obs, rew, term, trunc, infos = venv.step(actions)

        assert rew.shape == term.shape == trunc.shape == (K,)
        assert term.dtype == bool and trunc.dtype == bool
        for i, env in enumerate(singles):
            where = f"step {t} row {i}"
            if pending[i]:  # NEXT_STEP reset step: the action is ignored
                s_obs, s_info = env.reset()
                s_rew, s_term, s_trunc = 0.0, False, False
                pending[i] = False
            else:
                s_obs, s_rew, s_term, s_trunc, s_info = env.step(actions[i])
                if s_term or s_trunc:
                    ends[i].append(t)
                    if mode == AutoresetMode.NEXT_STEP:
                        pending[i] = True
                    else:
                        assert infos["_final_obs"][i] and infos["_final_info"][i], where
                        assert_obs_equal(infos["final_obs"][i], s_obs, f"{where} final_obs")
                        assert_info_equal(
                            final_row(infos["final_info"], i), s_info, f"{where} final_info"
                        )
                        s_obs, s_info = env.reset()
                elif mode == AutoresetMode.SAME_STEP and "_final_obs" in infos:
                    assert not infos["_final_obs"][i] and infos["final_obs"][i] is None, where
            assert_obs_equal(obs_row(obs, i), s_obs, where)
            assert rew[i] == s_rew, f"{where}: reward {rew[i]!r} != {s_rew!r}"
            assert (term[i], trunc[i]) == (s_term, s_trunc), where
            assert_info_equal(row_info(infos, i), s_info, where)
        assert venv.observation_space.contains(obs)

    # Every row crossed at least two autoresets; the re-seeded row ended out of step.
    assert all(len(e) >= 2 for e in ends), ends
    assert not set(ends[remask_row]) & set(ends[0]), ends


def test_int_seed_means_seed_plus_index():
    """``reset(seed=s)`` seeds row ``i`` with ``s + i`` (Gymnasium's convention)."""
    a = RoadEdgeVectorEnv(3, scenario="small")
    b = RoadEdgeVectorEnv(3, scenario="small")
    obs_a, _ = a.reset(seed=40)
    obs_b, _ = b.reset(seed=[40, 41, 42])
    np.testing.assert_array_equal(obs_a, obs_b)
    single, _ = RoadEdgeEnv("small").reset(seed=42)
    np.testing.assert_array_equal(obs_a[2], single)
    assert not np.array_equal(obs_a[0], obs_a[1])  # different seeds, different starts


FREQUENT_FAILURES = {"faults": {"rsu_mttf_s": 60.0, "uav_mttf_s": 60.0, "mttr_s": 10.0}}


@pytest.mark.parametrize(
    "scenario, overrides",
    [("small", {}), ("failures", FREQUENT_FAILURES)],
    ids=["small", "failures"],
)
def test_rows_do_not_depend_on_batch_size(scenario, overrides):
    """Row ``i`` of a batch of 4 equals a batch of 1 with that row's seed and actions,
    across autoresets and a ``reset_mask`` reset of one row (also with frequent node
    failures, so resets happen while other rows have nodes down)."""
    K, seed = 4, 300
    kwargs = {"scenario": scenario, "horizon": HORIZON, **overrides}
    big = RoadEdgeVectorEnv(K, **kwargs)
    ones = [RoadEdgeVectorEnv(1, **kwargs) for _ in range(K)]
    N = big.n_nodes
    rng = np.random.default_rng(1)
    obs, _ = big.reset(seed=seed)
    for i, one in enumerate(ones):
        o, _ = one.reset(seed=seed + i)
        np.testing.assert_array_equal(obs[i], o[0])
    n_ends = failures = 0
    for t in range(2 * HORIZON + 12):
        if t == 9:
            obs, _ = big.reset(
                seed=[None, None, 7, None], options={"reset_mask": [False, False, True, False]}
            )
            o, _ = ones[2].reset(seed=[7])
            np.testing.assert_array_equal(obs[2], o[0])
        actions = random_valid(big.action_masks(), N, rng)
        obs, rew, term, trunc, infos = big.step(actions)
        n_ends += int(trunc.sum())
        failures += int((infos["metrics"]["failures_detected"] > 0).sum())
        for i, one in enumerate(ones):
            o, r, te, tr, inf = one.step(actions[i : i + 1])
            where = f"step {t} row {i}"
            np.testing.assert_array_equal(obs[i], o[0], err_msg=where)
            assert (rew[i], term[i], trunc[i]) == (r[0], te[0], tr[0]), where
            assert_info_equal(row_info(infos, i), row_info(inf, 0), where)
    assert n_ends >= 2 * K
    assert failures > 0 or not overrides  # the failures variant did see failures


@pytest.mark.parametrize("mode", [AutoresetMode.NEXT_STEP, AutoresetMode.SAME_STEP])
def test_matches_gymnasium_sync_vector_env(mode):
    """Same observations, rewards, flags and batched infos as Gymnasium's own
    ``SyncVectorEnv`` over single envs, in either autoreset mode (the reference for
    what each mode returns); ``final_info`` rows hold the same values."""
    K = 2
    ref = gym.vector.SyncVectorEnv(
        [lambda: RoadEdgeEnv("small", horizon=HORIZON) for _ in range(K)], autoreset_mode=mode
    )
    venv = RoadEdgeVectorEnv(K, scenario="small", autoreset_mode=mode, horizon=HORIZON)
    rng = np.random.default_rng(3)
    out_r, out_v = ref.reset(seed=8), venv.reset(seed=8)
    finals = 0
    for t in range(2 * HORIZON + 2):
        np.testing.assert_array_equal(out_v[0], out_r[0], err_msg=f"step {t}")
        for key in ("reward_terms", "metrics"):
            ref_info = unmasked(out_r[-1][key])
            assert out_v[-1][key].keys() == ref_info.keys()
            for k, v in ref_info.items():
                np.testing.assert_array_equal(out_v[-1][key][k], v, err_msg=f"{t} {key} {k}")
        actions = random_valid(venv.action_masks(), venv.n_nodes, rng)
        out_r, out_v = ref.step(actions), venv.step(actions)
        for a, b in zip(out_v[1:4], out_r[1:4], strict=True):
            np.testing.assert_array_equal(a, b, err_msg=f"step {t}")
        np.testing.assert_array_equal(out_v[-1]["invalid"], out_r[-1]["invalid"])
        if "final_obs" in out_r[-1]:
            fr, fv = out_r[-1], out_v[-1]
            np.testing.assert_array_equal(fv["_final_obs"], fr["_final_obs"])
            for i in np.flatnonzero(fr["_final_obs"]):
                finals += 1
                np.testing.assert_array_equal(fv["final_obs"][i], fr["final_obs"][i])
            for key in ("reward_terms", "metrics"):  # every row: zeros where none ended
                for k, v in unmasked(fr["final_info"][key]).items():
                    np.testing.assert_array_equal(fv["final_info"][key][k], v, f"{t} {key} {k}")
        else:
            assert "final_obs" not in out_v[-1]
    assert finals == (2 * K if mode == AutoresetMode.SAME_STEP else 0)
    ref.close()


# --------------------------------------------------------------------------- make_vec


def test_make_vec_vector_entry_point():
    """``gymnasium.make_vec`` builds a RoadEdgeVectorEnv with batched spaces and passes
    kwargs (scenario, overrides, obs_mode) through."""
    venv = gym.make_vec(
        "RoadEdge-v1", num_envs=4, vectorization_mode="vector_entry_point", scenario="small"
    )
    assert isinstance(venv.unwrapped, RoadEdgeVectorEnv)
    inner = venv.unwrapped
    single = RoadEdgeEnv("small")
    assert inner.num_envs == 4 and inner.cfg.name == "small"
    assert inner.single_observation_space == single.observation_space
    assert inner.single_action_space == single.action_space
    N = single.n_nodes
    # Gymnasium batches MultiDiscrete([N + 1] * N) as an integer Box in [0, N].
    assert venv.action_space == batch_space(single.action_space, 4)
    assert venv.action_space.shape == (4, N)
    assert np.issubdtype(venv.action_space.dtype, np.integer)
    assert (venv.action_space.low == 0).all() and (venv.action_space.high == N).all()
    assert venv.observation_space == batch_space(single.observation_space, 4)
    assert venv.observation_space.shape == (4,) + single.observation_space.shape
    obs, info = venv.reset(seed=0)
    assert venv.observation_space.contains(obs)
    assert info["metrics"]["tasks_generated"].shape == (4,)
    np.testing.assert_array_equal(obs[0], single.reset(seed=0)[0])
    venv.action_space.seed(0)
    obs, rew, term, trunc, info = venv.step(venv.action_space.sample())
    assert venv.observation_space.contains(obs)
    assert rew.shape == term.shape == trunc.shape == (4,)

    # Overrides and obs_mode pass through; the preset ids truncate at the horizon.
    d = gym.make_vec(
        SMALL, num_envs=2, vectorization_mode="vector_entry_point", obs_mode="dict", horizon=5
    )
    assert isinstance(d.observation_space, spaces.Dict)
    assert (
        d.unwrapped.single_observation_space
        == RoadEdgeEnv("small", obs_mode="dict").observation_space
    )
    assert (
        d.observation_space["nodes"].shape
        == (2,) + d.unwrapped.single_observation_space["nodes"].shape
    )
    d.reset(seed=1)
    zero = np.zeros((2, N), dtype=np.int64)
    flags = [d.step(zero)[3].tolist() for _ in range(5)]
    assert flags == [[False, False]] * 4 + [[True, True]]


def test_make_vec_max_episode_steps_truncates_early():
    """A ``max_episode_steps`` below the horizon truncates there."""
    venv = gym.make_vec(
        SMALL, num_envs=2, vectorization_mode="vector_entry_point", max_episode_steps=3
    )
    venv.reset(seed=0)
    zero = np.zeros(venv.action_space.shape, dtype=np.int64)
    assert [bool(venv.step(zero)[3].all()) for _ in range(3)] == [False, False, True]


# --------------------------------------------------------------------------- SB3 adapter


def test_sb3_adapter_shapes_masks_and_episode_infos():
    """Array shapes, ``env_method("action_masks")``, and on each episode end a
    ``terminal_observation`` and Monitor-style ``episode`` whose return is the sum of
    that episode's rewards (checked against a single env with the same seed)."""
    pytest.importorskip("stable_baselines3")
    from stable_baselines3.common.monitor import Monitor

    K = 3
    venv = make_sb3_vec_env(K, scenario="small", horizon=HORIZON)
    singles = [make_single() for _ in range(K)]
    N = singles[0].unwrapped.n_nodes
    assert venv.num_envs == K
    assert venv.observation_space == singles[0].observation_space
    assert venv.action_space == singles[0].action_space
    venv.seed(70)
    obs = venv.reset()
    assert obs.shape == (K,) + singles[0].observation_space.shape
    for i, env in enumerate(singles):
        np.testing.assert_array_equal(obs[i], env.reset(seed=70 + i)[0])

    rng = np.random.default_rng(2)
    returns = [0.0] * K  # single envs' episode returns (float64, summed in order)
    sums32 = np.zeros(K)  # the adapter's own (float32) rewards
    lengths = [0] * K
    n_episodes = 0
    for _ in range(2 * HORIZON + 3):
        masks = venv.env_method("action_masks")
        assert len(masks) == K and all(m.shape == (N * (N + 1),) for m in masks)
        np.testing.assert_array_equal(venv.env_method("action_masks", indices=[1])[0], masks[1])
        actions = random_valid(np.stack(masks), N, rng)
        venv.step_async(actions)
        obs, rew, dones, infos = venv.step_wait()
        assert obs.shape == (K,) + singles[0].observation_space.shape
        assert rew.shape == (K,) and rew.dtype == np.float32
        assert dones.shape == (K,) and dones.dtype == bool
        assert len(infos) == K
        sums32 += rew
        for i, env in enumerate(singles):
            s_obs, s_rew, _, s_trunc, s_info = env.step(actions[i])
            returns[i] += s_rew
            lengths[i] += 1
            assert rew[i] == np.float32(s_rew)
            assert infos[i]["metrics"] == s_info["metrics"]
            assert dones[i] == s_trunc
            if not s_trunc:
                assert "episode" not in infos[i] and "terminal_observation" not in infos[i]
                np.testing.assert_array_equal(obs[i], s_obs)
                continue
            n_episodes += 1
            ep = infos[i]["episode"]
            assert set(ep) == {"r", "l", "t"}
            assert ep["r"] == returns[i]  # the same float64 sum, bit for bit
            assert ep["r"] == pytest.approx(sums32[i], rel=1e-5, abs=1e-4)
            assert ep["l"] == lengths[i] == HORIZON
            assert isinstance(ep["t"], float) and ep["t"] >= 0.0
            assert infos[i]["TimeLimit.truncated"] is True
            np.testing.assert_array_equal(infos[i]["terminal_observation"], s_obs)
            np.testing.assert_array_equal(obs[i], env.reset()[0])  # already reset
            returns[i], sums32[i], lengths[i] = 0.0, 0.0, 0
    assert n_episodes == 2 * K
    assert venv.get_attr("n_nodes") == [N] * K
    assert venv.env_is_wrapped(Monitor) == [True] * K
    venv.close()


def test_sb3_adapter_requires_same_step_autoreset():
    """The adapter refuses a NEXT_STEP env (SB3 expects same-step resets)."""
    pytest.importorskip("stable_baselines3")
    from roadedge.envs.vector_env import _sb3_vec_env_class

    with pytest.raises(ValueError, match="SAME_STEP"):
        _sb3_vec_env_class()(RoadEdgeVectorEnv(2, scenario="small"))


def test_ppo_learns_on_the_adapter(one_torch_thread):
    """A 256-step PPO run, then ``evaluate_policy`` (which needs the Monitor stand-in)."""
    from stable_baselines3 import PPO
    from stable_baselines3.common.evaluation import evaluate_policy

    venv = make_sb3_vec_env(4, scenario="small", horizon=HORIZON)
    model = PPO("MlpPolicy", venv, n_steps=64, batch_size=64, n_epochs=2, device="cpu", seed=0)
    model.learn(total_timesteps=256)
    assert model.num_timesteps == 256
    assert len(model.ep_info_buffer) > 0  # the episode entries reached SB3's logger
    assert all(ep["l"] == HORIZON for ep in model.ep_info_buffer)
    mean, std = evaluate_policy(model, venv, n_eval_episodes=4)
    assert np.isfinite(mean) and np.isfinite(std)


def test_maskable_ppo_takes_only_valid_actions_on_the_adapter(one_torch_thread):
    """MaskablePPO reads the masks through ``env_method`` and never picks a masked choice."""
    pytest.importorskip("sb3_contrib")
    from sb3_contrib import MaskablePPO

    venv = make_sb3_vec_env(4, scenario="small", horizon=HORIZON)
    inner = venv.venv
    invalid = {"n": 0, "steps": 0}
    original = inner.step

    def counting_step(actions):
        out = original(actions)
        invalid["n"] += int(out[4]["invalid"].sum())
        invalid["steps"] += 1
        return out

    inner.step = counting_step
    model = MaskablePPO(
        "MlpPolicy", venv, n_steps=64, batch_size=64, n_epochs=1, device="cpu", seed=0
    )
    model.learn(total_timesteps=256)
    assert invalid["steps"] == 64
    assert invalid["n"] == 0


# --------------------------------------------------------------------------- bad input


@pytest.mark.parametrize("num_envs", [0, -2, 1.5, "4"])
def test_bad_num_envs_raises(num_envs):
    """``num_envs`` must be a positive int."""
    with pytest.raises(ValueError, match="num_envs"):
        RoadEdgeVectorEnv(num_envs, scenario="small")


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"obs_mode": "pixels"}, "obs_mode"),
        ({"autoreset_mode": AutoresetMode.DISABLED}, "autoreset_mode"),
        ({"render_mode": "rgb_array"}, "render"),
    ],
)
def test_bad_constructor_arguments_raise(kwargs, match):
    with pytest.raises(ValueError, match=match):
        RoadEdgeVectorEnv(2, scenario="small", **kwargs)


def test_bad_actions_raise_and_leave_the_env_unchanged():
    """Wrong shape, dtype or range raises ``ValueError`` naming the expectation, and
    the rejected step does not advance any row."""
    venv = RoadEdgeVectorEnv(2, scenario="small")
    N = venv.n_nodes
    venv.reset(seed=0)
    bad = [
        (np.zeros((2, N + 1), dtype=np.int64), "shape"),
        (np.zeros(N, dtype=np.int64), "shape"),
        (np.zeros((1, N), dtype=np.int64), "shape"),
        (np.zeros((2, N), dtype=np.float64), "integers"),
        (np.full((2, N), N + 1, dtype=np.int64), rf"\[0, {N}\]"),
        (np.full((2, N), -1, dtype=np.int64), rf"\[0, {N}\]"),
    ]
    for actions, match in bad:
        with pytest.raises(ValueError, match=match):
            venv.step(actions)
    np.testing.assert_array_equal(venv.sim.world.tick, [0, 0])
    ok = np.zeros((2, N), dtype=np.int64)
    ok[1, 0] = N  # the largest valid value
    venv.step(ok)
    np.testing.assert_array_equal(venv.sim.world.tick, [1, 1])


def test_wrong_number_of_seeds_raises():
    venv = RoadEdgeVectorEnv(3, scenario="small")
    with pytest.raises(ValueError, match="3 seeds"):
        venv.reset(seed=[1, 2])


def test_step_before_reset_raises_reset_needed():
    """Stepping a row that was never reset would simulate an unseeded world."""
    from gymnasium.error import ResetNeeded

    venv = RoadEdgeVectorEnv(3, scenario="small")
    zero = np.zeros((3, venv.n_nodes), dtype=np.int64)
    with pytest.raises(ResetNeeded, match="before reset"):
        venv.step(zero)
    # a reset_mask reset leaves the other rows never reset
    venv.reset(seed=0, options={"reset_mask": np.array([True, False, True])})
    with pytest.raises(ResetNeeded, match=r"rows \[1\]"):
        venv.step(zero)
    venv.reset(seed=0)
    venv.step(zero)
    np.testing.assert_array_equal(venv.sim.world.tick, [1, 1, 1])
    for mode in ("vector_entry_point", None):  # None: make_vec's default for our ids
        made = gym.make_vec(SMALL, num_envs=2, vectorization_mode=mode)
        with pytest.raises(ResetNeeded):
            made.step(np.zeros(made.action_space.shape, dtype=np.int64))


@pytest.mark.parametrize(
    "mask",
    [
        [True],  # one flag for three envs
        [True, False, True, False],
        np.ones((3, 1), dtype=bool),
        [1, 0, 1],  # ints, not flags
        np.array([0.0, 1.0, 0.0]),
        "yes",
    ],
)
def test_bad_reset_mask_raises(mask):
    venv = RoadEdgeVectorEnv(3, scenario="small")
    with pytest.raises(ValueError, match=r"reset_mask.*3 bools"):
        venv.reset(seed=0, options={"reset_mask": mask})
    np.testing.assert_array_equal(venv._has_reset, [False] * 3)  # nothing was reset


@pytest.mark.parametrize("arg", ["record_events", "check_invariants"])
@pytest.mark.parametrize("value", ["no", 0, 1, None, "False"])
def test_boolean_arguments_must_be_bools(arg, value):
    with pytest.raises(TypeError, match=rf"{arg} must be True or False"):
        RoadEdgeVectorEnv(2, scenario="small", **{arg: value})


def test_numpy_bools_are_accepted():
    venv = RoadEdgeVectorEnv(2, scenario="small", record_events=np.True_)
    assert venv.sim.events.enabled is True
    env = RoadEdgeEnv("small", record_events=np.False_, check_invariants=np.True_)
    assert env.sim.events.enabled is False


@pytest.mark.parametrize("steps", [-5, 0, 2.5, True, "10"])
def test_bad_max_episode_steps_raises_at_construction(steps):
    with pytest.raises(ValueError, match="max_episode_steps"):
        RoadEdgeVectorEnv(2, scenario="small", max_episode_steps=steps)
    with pytest.raises(ValueError, match="max_episode_steps"):
        gym.make_vec(
            SMALL, num_envs=2, vectorization_mode="vector_entry_point", max_episode_steps=steps
        )


@pytest.mark.parametrize(
    "seed, error",
    [
        (1.5, TypeError),
        ("3", TypeError),
        (True, TypeError),
        ({1, 2, 3}, TypeError),
        ([1, 2.5, 3], TypeError),
        ([1, "2", 3], TypeError),
        (-1, ValueError),
        ([1, -2, 3], ValueError),
    ],
)
def test_bad_seed_raises_naming_seed(seed, error):
    venv = RoadEdgeVectorEnv(3, scenario="small")
    with pytest.raises(error, match="seed"):
        venv.reset(seed=seed)


def test_seed_forms_accepted():
    """None, an int (NumPy too), or one int or None per env (a list, tuple or array)."""
    venv = RoadEdgeVectorEnv(3, scenario="small")
    first = venv.reset(seed=np.int64(4))[0]
    np.testing.assert_array_equal(venv.reset(seed=4)[0], first)
    np.testing.assert_array_equal(venv.reset(seed=(4, 5, 6))[0], first)
    np.testing.assert_array_equal(venv.reset(seed=np.array([4, 5, 6]))[0], first)
    obs = venv.reset(seed=[None, 5, None])[0]
    np.testing.assert_array_equal(obs[1], first[1])
    venv.reset(seed=None)
