"""A pointer-policy model on a scenario with another node count (issue 15, item 4).

No weight of ``NodePointerPolicy`` depends on the node count, so a model trained on
one scenario acts on another with the same feature widths:
``models.adapt_node_count`` rebinds its spaces and layouts. The rebound model must
be exactly the policy a model built for that node count would be with the same
weights, and ``roadedge-eval`` must accept it; a flat-observation model stays refused.
"""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest
import torch
from sb3_contrib import MaskablePPO

import roadedge.envs  # noqa: F401  (registers the ids)
from roadedge.agents import evaluate as ev
from roadedge.agents.models import ModelError, adapt_node_count, check_model_fits
from roadedge.agents.pointer import MaskableNodePointerPolicy
from roadedge.envs.benchmark import node_overrides

SMALL = "RoadEdge-small-v1"
pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture
def saved(tmp_path):
    env = gym.make(SMALL, obs_mode="dict")
    model = MaskablePPO(MaskableNodePointerPolicy, env, device="cpu", n_steps=32, seed=1)
    with torch.no_grad():  # make the head's outputs differ between nodes and pairs
        for p in model.policy.parameters():
            p.add_(0.3 * torch.randn_like(p))
    path = tmp_path / "pointer.zip"
    model.save(path)
    return path


def _distribution(model, obs, mask):
    """The policy's logits and value on one observation."""
    policy = model.policy
    obs_t, _ = policy.obs_to_tensor(obs)
    with torch.no_grad():
        logits = policy.action_net(policy.extract_features(obs_t))
        return torch.cat([logits, policy.predict_values(obs_t)], -1)


def test_rebound_model_is_the_model_built_for_that_node_count(saved):
    big = gym.make(SMALL, obs_mode="dict", **node_overrides(9))
    n = big.unwrapped.n_nodes
    assert n == 13
    loaded = MaskablePPO.load(saved, device="cpu")
    assert adapt_node_count(loaded, big)
    native = MaskablePPO(MaskableNodePointerPolicy, big, device="cpu", n_steps=32)
    native.policy.load_state_dict(loaded.policy.state_dict())
    obs, _ = big.reset(seed=4)
    for _ in range(3):
        mask = big.unwrapped.action_masks()
        a = _distribution(loaded, obs, mask)
        b = _distribution(native, obs, mask)
        assert a.shape == (1, n * (n + 1) + 1)
        torch.testing.assert_close(a, b)
        action, _ = loaded.predict(obs, deterministic=True, action_masks=mask)
        assert big.action_space.contains(np.asarray(action))
        obs, *_ = big.step(action)
    assert not adapt_node_count(loaded, big)  # already bound: nothing to change


@pytest.mark.parametrize("batched", [False, True])
def test_evaluate_runs_a_pointer_model_on_another_node_count(saved, batched):
    records, rows = ev.evaluate(
        [f"{ev.MODEL_PREFIX}{saved}", "noop"],
        env_id=SMALL,
        episodes=1,
        env_kwargs={**node_overrides(9), "horizon": 5},
        progress=False,
        batched=batched,
    )
    assert {r["policy"] for r in records} == {f"{ev.MODEL_PREFIX}{saved}", "noop"}


def test_other_feature_widths_are_still_refused(saved):
    """Another number of services is another node feature width: refused, not rebound."""
    model = MaskablePPO.load(saved, device="cpu")
    other = gym.make(SMALL, obs_mode="dict", tasks__n_services=5, **node_overrides(9))
    assert other.observation_space["nodes"].shape[1] != model.observation_space["nodes"].shape[1]
    assert not adapt_node_count(model, other)
    with pytest.raises(ModelError, match="does not fit"):
        check_model_fits(model, other, str(saved), "five services")
