"""NodePointerPolicy: logit layout, permutation equivariance, node-count agnosticism,
the "do nothing" bias, masks, and training through ``train.py``.

Observations come from the real ``small`` (4 nodes) and ``city`` (13 nodes) envs.
"""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest
import torch
import yaml
from sb3_contrib import MaskablePPO
from stable_baselines3 import PPO
from test_encoder import collect
from test_train import POINTER_HP, run_cli, tiny_argv

import roadedge.envs  # noqa: F401  (registers the ids)
from roadedge.agents import train as tr
from roadedge.agents.evaluate import load_model
from roadedge.agents.pointer import (
    MaskableNodePointerPolicy,
    NodeEmbeddingExtractor,
    NodePointerPolicy,
    PointerHead,
    unpack,
)
from roadedge.envs.observation import PAIR_FEATURES

SMALL = "RoadEdge-small-v1"
CITY = "RoadEdge-v1"
ATOL = 1e-5

pytestmark = pytest.mark.usefixtures("one_torch_thread")  # see conftest.py


def make_model(env_id: str, algo=PPO, seed: int = 0):
    env = gym.make(env_id, obs_mode="dict")
    policy = MaskableNodePointerPolicy if algo is MaskablePPO else NodePointerPolicy
    model = algo(policy, env, seed=seed, device="cpu", n_steps=32, batch_size=32)
    model.policy.set_training_mode(False)
    return model, env


def logits(model_or_policy, obs: dict[str, torch.Tensor]) -> torch.Tensor:
    policy = getattr(model_or_policy, "policy", model_or_policy)
    with torch.no_grad():
        return policy.action_net(policy.extract_features(obs))


def permute(obs: dict[str, torch.Tensor], perm: np.ndarray) -> dict[str, torch.Tensor]:
    p = torch.as_tensor(perm)
    out = {k: v.clone() for k, v in obs.items()}
    out["nodes"] = obs["nodes"][:, p]
    out["node_mask"] = obs["node_mask"][:, p]
    out["distances"] = obs["distances"][:, p][:, :, p]
    out["pairs"] = obs["pairs"][:, p][:, :, p]
    return out


@pytest.fixture(scope="module")
def city():
    return collect(CITY, steps=4)


@pytest.fixture(scope="module")
def small():
    return collect(SMALL, steps=4)


def test_logits_have_the_multidiscrete_layout(city):
    model, env = make_model(CITY)
    _, obs = city
    out = logits(model, obs)
    n = env.unwrapped.cfg.n_nodes
    assert out.shape == (4, n * (n + 1))
    assert torch.isfinite(out).all()
    # Only the "do nothing" entries (every (N+1)-th) move when noop_bias changes.
    with torch.no_grad():
        model.policy.action_net.noop_bias += 3.0
    delta = (logits(model, obs) - out).reshape(4, n, n + 1)
    torch.testing.assert_close(delta[..., 0], torch.full((4, n), 3.0))
    torch.testing.assert_close(delta[..., 1:], torch.zeros(4, n, n))


def test_logits_follow_a_permutation_of_the_nodes(city):
    """Permuting the nodes permutes each node's head and, inside it, the targets."""
    model, env = make_model(CITY)
    _, obs = city
    n = env.unwrapped.cfg.n_nodes
    perm = np.random.default_rng(3).permutation(n)
    base = logits(model, obs).reshape(-1, n, n + 1)
    moved = logits(model, permute(obs, perm)).reshape(-1, n, n + 1)
    torch.testing.assert_close(moved[:, :, 0], base[:, perm, 0], atol=ATOL, rtol=0)
    torch.testing.assert_close(
        moved[:, :, 1:], base[:, perm][:, :, 1:][:, :, perm], atol=ATOL, rtol=0
    )


def test_same_weights_run_on_another_node_count(small, city):
    """No parameter depends on N: a city policy's weights load into a small-scenario policy."""
    big, _ = make_model(CITY)
    little, env = make_model(SMALL)
    little.policy.load_state_dict(big.policy.state_dict())
    _, obs = small
    out = logits(little, obs)
    n = env.unwrapped.cfg.n_nodes
    assert out.shape == (4, n * (n + 1)) and torch.isfinite(out).all()
    with torch.no_grad():
        value = little.policy.predict_values(obs)
    assert value.shape == (4, 1)


def test_unpack_rejects_a_mismatched_width():
    with pytest.raises(ValueError, match="latent width"):
        unpack(torch.zeros(2, 50), n_nodes=3, embed_dim=8, pooled_dim=7)


def test_gradients_reach_the_encoder_and_both_heads(city):
    model, _ = make_model(CITY)
    _, obs = city
    feats = model.policy.extract_features(obs)
    loss = model.policy.action_net(feats).square().mean() + model.policy.value_net(feats).mean()
    loss.backward()
    for name, p in model.policy.named_parameters():
        if name.endswith("noop_bias") or "features_extractor" in name and "global_mlp" in name:
            continue  # a constant offset; global features may be constant in 4 ticks
        if "vf_features" in name or "pi_features" in name:
            continue  # shared extractor: these alias features_extractor
        assert p.grad is not None, name


def test_noop_logit_bias_starts_the_pointer_policy_doing_nothing():
    model, env = make_model(CITY, MaskablePPO)
    tr.bias_noop_logits(model, 6.0)
    assert model.policy.action_net.noop_bias.item() == pytest.approx(6.0)
    obs, _ = env.reset(seed=2)
    mask = env.unwrapped.action_masks()
    action, _ = model.predict(obs, deterministic=True, action_masks=mask)
    assert not np.any(action)


def test_masked_choices_are_never_sampled():
    model, env = make_model(CITY, MaskablePPO)
    obs, _ = env.reset(seed=0)
    for _ in range(20):
        mask = env.unwrapped.action_masks()
        action, _ = model.predict(obs, deterministic=False, action_masks=mask)
        rows = mask.reshape(len(action), -1)
        assert rows[np.arange(len(action)), action].all()
        obs, *_ = env.step(action)


def test_rejects_flat_observations_and_other_action_spaces():
    with pytest.raises(ValueError, match="obs_mode: dict"):
        tr.resolve_policy("NodePointerPolicy", "ppo", {"obs_mode": "flat"})
    with pytest.raises(ValueError, match="unknown policy 'Nope'"):
        tr.resolve_policy("Nope", "ppo", {})
    assert tr.resolve_policy("NodePointerPolicy", "maskable_ppo", {"obs_mode": "dict"}) is (
        MaskableNodePointerPolicy
    )
    env = gym.make(SMALL, obs_mode="dict")
    for bad in ([3, 3, 3], [3, 3], [5] * 3 + [4]):  # not N+1 choices, or not N = 4 heads
        with pytest.raises(ValueError, match=r"MultiDiscrete\(\[N \+ 1\] \* N\) with N = 4"):
            NodePointerPolicy(env.observation_space, gym.spaces.MultiDiscrete(bad), lambda _: 3e-4)


def test_net_arch_is_refused_value_net_arch_is_used():
    env = gym.make(SMALL, obs_mode="dict")
    space, act = env.observation_space, env.action_space
    with pytest.raises(ValueError, match="value_net_arch"):
        NodePointerPolicy(space, act, lambda _: 3e-4, net_arch=[64])
    policy = NodePointerPolicy(space, act, lambda _: 3e-4, value_net_arch=[16, 8])
    widths = [m.out_features for m in policy.value_net if isinstance(m, torch.nn.Linear)]
    assert widths == [16, 8, 1]


def test_policy_save_and_load_round_trip(tmp_path, city):
    model, _ = make_model(CITY, MaskablePPO)
    model.policy.save(str(tmp_path / "policy.pth"))
    loaded = MaskableNodePointerPolicy.load(str(tmp_path / "policy.pth"), device="cpu")
    loaded.set_training_mode(False)
    _, obs = city
    torch.testing.assert_close(logits(loaded, obs), logits(model, obs))


def test_head_is_built_on_the_extractor():
    env = gym.make(SMALL, obs_mode="dict")
    ext = NodeEmbeddingExtractor(env.observation_space, embed_dim=16, n_heads=2, pooled_dim=8)
    head = PointerHead(ext, hidden=8)
    _, obs = collect(SMALL, steps=2)
    assert head(ext(obs)).shape == (2, 4 * 5)


@pytest.mark.parametrize("algo", ["ppo", "a2c", "maskable_ppo"])
def test_train_py_with_the_pointer_policy(tmp_path, algo):
    runs = tmp_path / "runs"
    extra = (*POINTER_HP, "noop_logit_bias=2.0")
    run = run_cli(tiny_argv(algo, runs, extra_hp=extra, checkpoint_freq=0), runs)
    config = yaml.safe_load((run / "config.yml").read_text())
    assert config["hyperparams"]["policy"] == "NodePointerPolicy"
    model = load_model(str(run / "final_model.zip"))
    assert isinstance(model.policy.action_net, PointerHead)
    env = gym.make(SMALL, obs_mode="dict")
    obs, _ = env.reset(seed=0)
    action, _ = model.predict(obs, deterministic=True)
    assert env.action_space.contains(action)


def test_the_move_logit_of_a_pair_reads_its_pair_features(small):
    """``pairs[i, j]`` enters move[i, j] directly (and, through the encoder, everything)."""
    model, env = make_model(SMALL)
    _, obs = small
    n = env.unwrapped.cfg.n_nodes
    head = model.policy.action_net
    assert head.pairs is not None and head.pairs.in_features == len(PAIR_FEATURES)
    base = logits(model, obs).reshape(4, n, n + 1)
    changed = {k: v.clone() for k, v in obs.items()}
    changed["pairs"][:, 0, 2] = torch.tensor([1.0, 1.0, 0.0, 0.5, 0.25])
    with torch.no_grad():  # only the head's direct term: encoder input unchanged
        latent = model.policy.extract_features(obs)
        h, pooled, distances, pairs = unpack(latent, *head.layout)
        assert torch.equal(pairs, obs["pairs"])
        n_e = h.shape[1] * h.shape[2] + pooled.shape[1] + n * n
        latent2 = latent.clone()
        latent2[:, n_e:] = changed["pairs"].reshape(4, -1)
        direct = head(latent2).reshape(4, n, n + 1)
    delta = (direct - base).abs()
    assert (delta[:, 0, 3] > 0).all()  # move 0 -> node 2 is choice 3
    delta[:, 0, 3] = 0
    assert delta.max() == 0
