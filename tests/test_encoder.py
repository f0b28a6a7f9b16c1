"""NodeSetExtractor: shape, node mask, permutation invariance, node-count agnosticism, use
inside PPO, and the name resolver of ``train.py``.

Observations come from the real environments (``small``: 4 nodes, ``city``: 13 nodes),
so the tests exercise the actual dict layout rather than a hand-made one.
"""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest
import torch

import roadedge.envs  # noqa: F401  (registers the ids)
from roadedge.agents.encoder import NodeSetExtractor, distance_summary
from roadedge.agents.train import resolve_policy_kwargs

SMALL = "RoadEdge-small-v1"
CITY = "RoadEdge-v1"
ATOL = 1e-5


pytestmark = pytest.mark.usefixtures("one_torch_thread")  # see conftest.py


def collect(env_id: str, steps: int = 6, seed: int = 0, **kwargs) -> tuple[gym.Space, dict]:
    """The env's observation space and a batch (B = steps) of its dict observations as tensors."""
    env = gym.make(env_id, obs_mode="dict", **kwargs)
    env.action_space.seed(seed)
    obs, _ = env.reset(seed=seed)
    batch = []
    for _ in range(steps):
        obs, *_ = env.step(env.action_space.sample())
        batch.append(obs)
    space = env.observation_space
    env.close()
    stacked = {k: torch.as_tensor(np.stack([o[k] for o in batch])) for k in batch[0]}
    return space, stacked


def clone(obs: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    return {k: v.clone() for k, v in obs.items()}


def make_extractor(space: gym.Space, seed: int = 0, **kwargs) -> NodeSetExtractor:
    torch.manual_seed(seed)
    return NodeSetExtractor(space, **kwargs).eval()


@pytest.fixture(scope="module")
def small():
    return collect(SMALL)


@pytest.fixture(scope="module")
def city():
    return collect(CITY, steps=4)


def test_real_envs_differ_in_node_count_only(small, city):
    """The premise of the node-count tests: same F and G, different N."""
    (s_space, s_obs), (c_space, c_obs) = small, city
    assert set(s_obs) == {"nodes", "node_mask", "distances", "globals", "pairs"}
    n_s, f_s = s_space["nodes"].shape
    n_c, f_c = c_space["nodes"].shape
    assert n_s != n_c and f_s == f_c
    assert s_space["globals"].shape == c_space["globals"].shape
    assert c_obs["distances"].shape == (4, n_c, n_c)


@pytest.mark.parametrize("kwargs", [{}, {"attention": False}, {"use_distances": False}])
def test_output_shape_and_finite(small, kwargs):
    space, obs = small
    ext = make_extractor(space, features_dim=48, **kwargs)
    assert ext.features_dim == 48
    with torch.no_grad():
        out = ext(obs)
    assert out.shape == (obs["nodes"].shape[0], 48)
    assert torch.isfinite(out).all()
    # Different observations give different features (the extractor is not constant).
    assert not torch.allclose(out[0], out[-1])


def test_rejects_flat_observation_space():
    env = gym.make(SMALL)  # obs_mode="flat": a Box
    with pytest.raises(ValueError, match="obs_mode='dict'"):
        NodeSetExtractor(env.observation_space)
    env.close()


def test_embed_dim_must_split_into_heads(small):
    with pytest.raises(ValueError, match="divisible"):
        NodeSetExtractor(small[0], embed_dim=30, n_heads=4)


def _mask_nodes(obs: dict[str, torch.Tensor], nodes: list[int]) -> dict[str, torch.Tensor]:
    out = clone(obs)
    out["node_mask"][:, :] = 1.0
    out["node_mask"][:, nodes] = 0.0
    return out


def _scramble_nodes(
    obs: dict[str, torch.Tensor], nodes: list[int], seed: int
) -> dict[str, torch.Tensor]:
    """New random features and distances (rows and columns) for ``nodes``; mask untouched."""
    g = torch.Generator().manual_seed(seed)
    out = clone(obs)
    B, N, F = out["nodes"].shape
    out["nodes"][:, nodes] = torch.rand(B, len(nodes), F, generator=g)
    d = out["distances"]
    d[:, nodes, :] = torch.rand(B, len(nodes), N, generator=g)
    d[:, :, nodes] = torch.rand(B, N, len(nodes), generator=g)
    p = out["pairs"]
    P = p.shape[-1]
    p[:, nodes, :] = torch.rand(B, len(nodes), N, P, generator=g)
    p[:, :, nodes] = torch.rand(B, N, len(nodes), P, generator=g)
    return out


@pytest.mark.parametrize("attention", [True, False])
def test_masked_nodes_have_no_influence(city, attention):
    space, obs = city
    ext = make_extractor(space, attention=attention)
    masked = _mask_nodes(obs, [0, 5, 12])
    with torch.no_grad():
        ref = ext(masked)
        for seed in range(3):
            scrambled = _scramble_nodes(masked, [0, 5, 12], seed)
            assert not torch.equal(scrambled["nodes"], masked["nodes"])
            torch.testing.assert_close(ext(scrambled), ref, atol=ATOL, rtol=0)
        poisoned = clone(masked)
        poisoned["nodes"][:, [0, 5, 12]] = float("nan")
        torch.testing.assert_close(ext(poisoned), ref, atol=ATOL, rtol=0)
        # Control: the same change to an *unmasked* node does change the output.
        assert not torch.allclose(ext(_scramble_nodes(masked, [3], 0)), ref, atol=1e-3)
        # ... and so does unmasking a node.
        assert not torch.allclose(ext(_mask_nodes(obs, [0, 5])), ref, atol=1e-3)


def _pad(obs: dict[str, torch.Tensor], k: int, seed: int) -> dict[str, torch.Tensor]:
    """``obs`` with ``k`` extra masked nodes of random features and distances appended."""
    g = torch.Generator().manual_seed(seed)
    B, N, F = obs["nodes"].shape
    d = torch.rand(B, N + k, N + k, generator=g)
    d[:, :N, :N] = obs["distances"]
    P = obs["pairs"].shape[-1]
    p = torch.rand(B, N + k, N + k, P, generator=g)
    p[:, :N, :N] = obs["pairs"]
    return {
        "nodes": torch.cat([obs["nodes"], torch.rand(B, k, F, generator=g)], dim=1),
        "node_mask": torch.cat([obs["node_mask"], torch.zeros(B, k)], dim=1),
        "distances": d,
        "globals": obs["globals"].clone(),
        "pairs": p,
    }


@pytest.mark.parametrize("attention", [True, False])
def test_padding_with_masked_nodes_changes_nothing(small, city, attention):
    """Absent nodes have no influence, not even by their number."""
    ext = make_extractor(small[0], attention=attention)
    cases = [_mask_nodes(obs, [1]) for _, obs in (small, city)]
    cases.append(_mask_nodes(small[1], [0, 2, 3]))  # one node up: max-pool over one row
    for obs in cases:
        with torch.no_grad():
            ref = ext(obs)
            for k, seed in ((1, 0), (5, 1)):
                torch.testing.assert_close(ext(_pad(obs, k, seed)), ref, atol=ATOL, rtol=1e-5)


@pytest.mark.parametrize("keep", [[4], [0, 6, 7], list(range(1, 13))])
def test_masked_nodes_equal_absent_nodes(city, keep):
    """Masking nodes out gives the output of the observation that only has the others."""
    space, obs = city
    ext = make_extractor(space)
    idx = torch.tensor(keep)
    masked = _mask_nodes(obs, [i for i in range(obs["nodes"].shape[1]) if i not in keep])
    subset = {
        "nodes": obs["nodes"][:, idx],
        "node_mask": torch.ones(obs["nodes"].shape[0], len(keep)),
        "distances": obs["distances"][:, idx][:, :, idx],
        "globals": obs["globals"],
        "pairs": obs["pairs"][:, idx][:, :, idx],
    }
    with torch.no_grad():
        torch.testing.assert_close(ext(masked), ext(subset), atol=ATOL, rtol=1e-5)


def test_use_mask_false_sees_every_node(city):
    space, obs = city
    ext = make_extractor(space, use_mask=False)
    masked = _mask_nodes(obs, [0, 5])
    with torch.no_grad():
        ref = ext(masked)
        assert not torch.allclose(ext(_scramble_nodes(masked, [0, 5], 0)), ref, atol=1e-3)


def test_all_nodes_masked_is_finite_and_ignores_nodes(small):
    space, obs = small
    ext = make_extractor(space)
    none_up = clone(obs)
    none_up["node_mask"][:] = 0.0
    with torch.no_grad():
        out = ext(none_up)
        assert torch.isfinite(out).all()
        scrambled = _scramble_nodes(none_up, list(range(4)), 1)
        torch.testing.assert_close(ext(scrambled), out, atol=ATOL, rtol=0)


def _permute(obs: dict[str, torch.Tensor], perm: torch.Tensor, distances: bool = True):
    out = clone(obs)
    out["nodes"] = obs["nodes"][:, perm]
    out["node_mask"] = obs["node_mask"][:, perm]
    if distances:
        out["distances"] = obs["distances"][:, perm][:, :, perm]
    out["pairs"] = obs["pairs"][:, perm][:, :, perm]
    return out


@pytest.mark.parametrize("attention", [True, False])
def test_permutation_invariance(city, attention):
    space, obs = city
    obs = _mask_nodes(obs, [2, 7])  # invariance must hold with masked nodes too
    ext = make_extractor(space, attention=attention)
    g = torch.Generator().manual_seed(0)
    with torch.no_grad():
        ref = ext(obs)
        for _ in range(3):
            perm = torch.randperm(obs["nodes"].shape[1], generator=g)
            assert not torch.equal(perm, torch.arange(len(perm)))
            torch.testing.assert_close(ext(_permute(obs, perm)), ref, atol=ATOL, rtol=1e-5)
        # Control: permuting the nodes but not the distances is a different input.
        perm = torch.roll(torch.arange(obs["nodes"].shape[1]), 1)
        assert not torch.allclose(ext(_permute(obs, perm, distances=False)), ref, atol=1e-4)


def test_distance_summary_by_hand():
    d = torch.tensor([[[0.0, 0.2, 0.6], [0.2, 0.0, 1.0], [0.6, 1.0, 0.0]]])
    all_up = torch.ones(1, 3, dtype=torch.bool)
    s = distance_summary(d, all_up)[0]
    torch.testing.assert_close(s[:, 0], torch.tensor([0.4, 0.6, 0.8]))  # mean to the others
    torch.testing.assert_close(s[:, 1], torch.tensor([0.2, 0.2, 0.6]))  # least to the others
    # Node 1 masked: it is nobody's neighbour; node 1's own row reduces over 0 and 2.
    s = distance_summary(d, torch.tensor([[True, False, True]]))[0]
    torch.testing.assert_close(s[:, 0], torch.tensor([0.6, 0.6, 0.6]))
    torch.testing.assert_close(s[:, 1], torch.tensor([0.6, 0.2, 0.6]))
    # Only one node up: no other node, so both summaries are 1.
    s = distance_summary(d, torch.tensor([[False, True, False]]))[0]
    torch.testing.assert_close(s[1], torch.tensor([1.0, 1.0]))


def test_same_weights_on_different_node_counts(small, city):
    """Parameter shapes do not depend on N; one extractor runs on 4, 13 and 3 nodes."""
    (s_space, s_obs), (c_space, c_obs) = small, city
    ext_small = make_extractor(s_space, seed=0)
    ext_city = make_extractor(c_space, seed=1)
    shapes_small = {k: v.shape for k, v in ext_small.state_dict().items()}
    shapes_city = {k: v.shape for k, v in ext_city.state_dict().items()}
    assert shapes_small == shapes_city
    ext_city.load_state_dict(ext_small.state_dict())  # strict: same keys and shapes
    space3, obs3 = collect(SMALL, steps=2, rsu__count=2)  # 2 RSUs + 1 UAV
    assert obs3["nodes"].shape[1] == 3
    with torch.no_grad():
        for obs in (s_obs, c_obs, obs3):
            out = ext_small(obs)
            assert out.shape == (obs["nodes"].shape[0], ext_small.features_dim)
            assert torch.isfinite(out).all()
            torch.testing.assert_close(ext_city(obs), out)  # same weights, same function


def test_gradients_reach_every_parameter(small):
    space, obs = small
    ext = make_extractor(space).train()
    ext(obs).square().sum().backward()
    missing = [n for n, p in ext.named_parameters() if p.grad is None or not p.grad.abs().sum()]
    assert not missing, f"no gradient for {missing}"


def test_ppo_multi_input_policy_learns_with_extractor():
    from stable_baselines3 import PPO

    env = gym.make(SMALL, obs_mode="dict")
    policy_kwargs = resolve_policy_kwargs(
        {
            "features_extractor_class": "NodeSetExtractor",
            "features_extractor_kwargs": {"embed_dim": 32, "n_heads": 2, "features_dim": 64},
            "net_arch": [64],
        }
    )
    model = PPO(
        "MultiInputPolicy",
        env,
        n_steps=64,
        batch_size=32,
        n_epochs=1,
        seed=0,
        device="cpu",
        policy_kwargs=policy_kwargs,
    )
    assert isinstance(model.policy.features_extractor, NodeSetExtractor)
    before = {k: v.clone() for k, v in model.policy.state_dict().items()}
    model.learn(128)
    assert model.num_timesteps == 128
    after = model.policy.state_dict()
    changed = [k for k in before if k.startswith("features_extractor.")]
    assert changed and any(not torch.equal(before[k], after[k]) for k in changed)
    obs, _ = env.reset(seed=1)
    action, _ = model.predict(obs, deterministic=True)
    assert env.action_space.contains(np.asarray(action, dtype=np.int64))
    env.close()


def test_resolver_maps_names_and_rejects_unknown():
    out = resolve_policy_kwargs({"features_extractor_class": "NodeSetExtractor", "net_arch": [8]})
    assert out == {"features_extractor_class": NodeSetExtractor, "net_arch": [8]}
    assert resolve_policy_kwargs(None) == {}
    given = {"features_extractor_class": NodeSetExtractor}
    assert resolve_policy_kwargs(given) == given  # a class is passed through
    assert resolve_policy_kwargs({"net_arch": [8]}) == {"net_arch": [8]}
    with pytest.raises(ValueError, match=r"'SetEncoder'.*known: NodeSetExtractor"):
        resolve_policy_kwargs({"features_extractor_class": "SetEncoder"})


def test_pair_summary_by_hand():
    from roadedge.agents.encoder import pair_summary

    p = torch.arange(18, dtype=torch.float32).reshape(1, 3, 3, 2)  # p[i, j, k] = 6i + 2j + k
    mask = torch.tensor([[True, False, True]])
    out = pair_summary(p, mask)
    # node 0: outgoing p[0, 0] + p[0, 2] = (0+4, 1+5); incoming p[0, 0] + p[2, 0] = (0+12, 1+13)
    torch.testing.assert_close(out[0, 0], torch.tensor([4.0, 6.0, 12.0, 14.0]))
    # node 2: outgoing p[2, 0] + p[2, 2] = (12+16, 13+17); incoming p[0, 2] + p[2, 2] = (4+16, 5+17)
    torch.testing.assert_close(out[0, 2], torch.tensor([28.0, 30.0, 20.0, 22.0]))
    torch.testing.assert_close(out[0, 1], torch.zeros(4))  # masked: no pairs at all


@pytest.mark.parametrize("attention", [True, False])
def test_the_pair_features_of_unmasked_nodes_reach_the_output(city, attention):
    space, obs = city
    ext = make_extractor(space, attention=attention)
    assert ext.n_pair_features == space["pairs"].shape[-1] == 5
    changed = clone(obs)
    changed["pairs"][:, 3, 4] = torch.tensor([0.5, 0.25, 1.0, 0.75, 0.125])
    with torch.no_grad():
        assert not torch.allclose(ext(changed), ext(obs), atol=1e-4)
