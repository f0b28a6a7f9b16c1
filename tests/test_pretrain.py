"""Behaviour cloning of a rule before RL (``roadedge.agents.pretrain``, hp ``pretrain``)."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from sb3_contrib import MaskablePPO
from test_train import run_cli, tiny_argv

from roadedge.agents import pretrain as pt
from roadedge.agents.pointer import MaskableNodePointerPolicy
from roadedge.agents.train_config import make_vec_env
from roadedge.baselines.policies import make_policy

pytestmark = pytest.mark.usefixtures("one_torch_thread")

SMALL = "RoadEdge-small-v1"


def test_discounted_returns_by_hand():
    """gamma 0.5, one env, rewards 1, 2, 4 | 8 (done after the third): returns
    1 + 0.5*2 + 0.25*4 = 3, 2 + 0.5*4 = 4, 4, then 8; ticks to the end 3, 2, 1 | 1."""
    rewards = np.array([[1.0], [2.0], [4.0], [8.0]])
    dones = np.array([[False], [False], [True], [False]])
    returns, far = pt.discounted_returns(rewards, dones, gamma=0.5, margin=2)
    np.testing.assert_allclose(returns[:, 0], [3.0, 4.0, 4.0, 8.0])
    assert far[:, 0].tolist() == [True, True, False, False]


def test_discounted_returns_keep_envs_apart():
    rewards = np.array([[1.0, 10.0], [1.0, 10.0]])
    dones = np.array([[True, False], [False, False]])
    returns, _ = pt.discounted_returns(rewards, dones, gamma=0.9, margin=0)
    np.testing.assert_allclose(returns, [[1.0, 19.0], [1.0, 10.0]])


@pytest.mark.parametrize(
    "spec,message",
    [
        ({"polcy": "greedy"}, "unknown key"),
        ({"policy": "gredy"}, "unknown policy 'gredy'"),
        ({"policy": "oracle"}, "must be a rule name"),
        ({"steps": 0}, "pretrain.steps must be a positive integer"),
        ({"epochs": 1.5}, "pretrain.epochs must be a positive integer"),
        ({"learning_rate": 0}, "pretrain.learning_rate"),
        ({"value_margin": -1}, "pretrain.value_margin"),
        ("greedy", "pretrain must be a mapping"),
    ],
)
def test_bad_entries_name_the_key(spec, message):
    with pytest.raises(ValueError, match=message):
        pt.Pretrain.from_hp(spec)


def test_no_entry_is_no_pretraining_and_true_is_the_defaults():
    assert pt.Pretrain.from_hp(None) is None
    assert pt.Pretrain.from_hp(False) is None
    assert pt.Pretrain.from_hp(True) == pt.Pretrain()
    assert pt.Pretrain.from_hp({"steps": 100}).steps == 100


def _venv(n_envs=2):
    from stable_baselines3.common.vec_env import VecNormalize

    raw = make_vec_env(SMALL, n_envs, 0, {"obs_mode": "dict", "horizon": 20}, False)
    return VecNormalize(raw, norm_obs=False, norm_reward=True)


def test_demonstrations_are_the_rules_choices_and_raw_rewards():
    """Replaying the collected actions in a fresh env with the same seeds gives the same
    rewards (unscaled) and the rule, asked again on each state, the same actions."""
    venv = _venv()
    demos = pt.collect(venv, "greedy+failover", 30, seed=0)
    assert demos.actions.shape == (15, 2, 4)
    assert demos.masks.shape == (15, 2, 4 * 5)
    assert demos.dones[:, 0].tolist() == [False] * 14 + [False]  # horizon 20 > 15
    assert (demos.actions > 0).any(), "the rule never acted: the test proves nothing"
    replay = make_vec_env(SMALL, 2, 0, {"obs_mode": "dict", "horizon": 20}, False)
    env = pt.roadedge_vector_env(replay)
    rule = make_policy("greedy+failover", env, seed=[0, 1])
    obs = replay.reset()
    for t in range(15):
        np.testing.assert_array_equal(obs["nodes"], demos.obs["nodes"][t])
        np.testing.assert_array_equal(env.action_masks(), demos.masks[t])
        action, _ = rule.predict(obs)
        np.testing.assert_array_equal(action, demos.actions[t])
        obs, reward, _, _ = replay.step(action)
        np.testing.assert_allclose(reward, demos.rewards[t], rtol=1e-6)


def _log_likelihood(model, demos) -> float:
    T, B = demos.rewards.shape
    obs = {k: v.reshape(T * B, *v.shape[2:]) for k, v in demos.obs.items()}
    obs_t, _ = model.policy.obs_to_tensor(obs)
    actions = torch.as_tensor(demos.actions.reshape(T * B, -1))
    masks = demos.masks.reshape(T * B, -1)
    with torch.no_grad():
        _, log_prob, _ = model.policy.evaluate_actions(obs_t, actions, action_masks=masks)
    return float(log_prob.mean())


def test_cloning_makes_the_rules_choices_likely():
    """After cloning, the rule's choices are far likelier under the policy than at
    initialisation, and the greedy choice agrees with most of them."""
    venv = _venv()
    demos = pt.collect(venv, "greedy+failover", 80, seed=0)
    model = MaskablePPO(MaskableNodePointerPolicy, venv, seed=0, device="cpu", n_steps=32)
    before = _log_likelihood(model, demos)
    spec = pt.Pretrain(steps=80, epochs=30, batch_size=16, learning_rate=3e-3, value_margin=0)
    stats = pt.clone(model, demos, spec)
    after = _log_likelihood(model, demos)
    assert after > before + 2.0, (before, after)
    assert stats["agreement"] > 0.9


def test_value_head_learns_the_scaled_returns():
    """The value loss falls during cloning: the head fits the returns of the scaled
    rewards."""
    venv = _venv()
    demos = pt.collect(venv, "greedy+failover", 80, seed=0)
    model = MaskablePPO(MaskableNodePointerPolicy, venv, seed=0, device="cpu", n_steps=32)
    returns, _ = pt.discounted_returns(demos.rewards, demos.dones, model.gamma, 0)
    scale = 1.0 / np.abs(returns).mean()

    def scaled(rewards):
        return rewards * scale

    first = pt.clone(model, demos, pt.Pretrain(epochs=1, batch_size=16, value_margin=0), scaled)
    later = pt.clone(model, demos, pt.Pretrain(epochs=20, batch_size=16, value_margin=0), scaled)
    assert later["value_loss"] < 0.5 * first["value_loss"], (first, later)


def test_train_py_pretrains_and_records_it(tmp_path):
    """``pretrain`` in the hyperparameters: train.py clones the rule before RL, says so,
    and writes the statistics into timing.json; num_timesteps counts RL steps only."""
    runs = tmp_path / "runs"
    argv = tiny_argv(
        "maskable_ppo",
        runs,
        extra_hp=("policy=NodePointerPolicy", "env_kwargs={obs_mode: dict}",
                  "policy_kwargs={}", "pretrain={steps: 40, epochs: 2, batch_size: 16}"),
    )  # fmt: skip
    run = run_cli(argv, runs)
    timing = json.loads((run / "timing.json").read_text())
    assert timing["train_steps"] == 128
    assert set(timing["pretrain"]) >= {"agreement", "policy_loss", "value_loss", "wall_s"}
