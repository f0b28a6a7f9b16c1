"""A per-node ("pointer") action head for RoadEdge's ``MultiDiscrete([N + 1] * N)`` action.

SB3's stock head for a MultiDiscrete action is one linear layer from a
pooled feature vector to all ``N * (N + 1)`` logits: node ``i``'s choice
"move to ``j``" has its own weight row, learned from the rare ticks where
that exact pair mattered. A failover from a dead node, say, has to be
learned once per node. Here the logits are computed *from the nodes
themselves*, with weights shared by every node and every pair:

* ``stay[i]  = MLP(h_i, g) + noop_bias`` — choice 0, "do nothing at node i";
* ``move[i, j] = w . relu(A h_i + B h_j + c d_ij + P p_ij + G g + b)`` — choice
  ``j + 1``, "move node i's most urgent tasks to node j";

where ``h`` are the per-node embeddings of :class:`NodeSetExtractor`
(attention between nodes, so each embedding knows its context), ``g`` the
pooled summary, ``d`` the normalised pairwise distances and ``p`` the
observation's pair features (``pairs``: node i's sessions attached to / heading
for node j, a migration in flight i -> j), when the space has them. What is learned
about one node or pair applies to all of them, the logits follow the nodes
when they are permuted, and no weight of the policy depends on ``N``
(the value head reads the pooled summary only), so a saved policy runs on
scenarios with another node count.

Use it through the hyperparameter files (``policy: NodePointerPolicy`` with
``obs_mode: dict``, and no ``net_arch`` in ``policy_kwargs``: the heads are
fixed, ``value_net_arch`` sets the value MLP); ``train.py`` picks the
maskable variant for ``maskable_ppo``. From your own code::

    from sb3_contrib import MaskablePPO
    from roadedge.agents.pointer import MaskableNodePointerPolicy

    env = gymnasium.make("roadedge.envs:RoadEdge-v1", obs_mode="dict")
    model = MaskablePPO(MaskableNodePointerPolicy, env)
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from gymnasium import spaces
from sb3_contrib.common.maskable.policies import MaskableMultiInputActorCriticPolicy
from stable_baselines3.common.policies import MultiInputActorCriticPolicy
from stable_baselines3.common.torch_layers import BaseFeaturesExtractor
from torch import nn

from .encoder import NodeSetExtractor


class NodeEmbeddingExtractor(BaseFeaturesExtractor):
    """Per-node embeddings, pooled summary, distances and pair features, packed into one
    flat tensor.

    SB3 passes one tensor from the extractor to the heads, so the output is
    ``[h (N*E) | pooled (P) | distances (N*N) | pairs (N*N*Q)]`` (``Q`` pair
    features, 0 without ``pairs``); :func:`unpack` splits it again. Every node is
    encoded (``use_mask=False``): a node believed down must stay visible, its
    orphans are what a failover acts on.
    """

    def __init__(
        self,
        observation_space: spaces.Dict,
        embed_dim: int = 64,
        n_heads: int = 4,
        global_dim: int = 32,
        pooled_dim: int = 128,
    ):
        n = int(observation_space["nodes"].shape[0])
        pairs_space = observation_space.spaces.get("pairs")
        q = 0 if pairs_space is None else int(pairs_space.shape[-1])
        super().__init__(observation_space, n * embed_dim + pooled_dim + n * n * (1 + q))
        self.encoder = NodeSetExtractor(
            observation_space,
            embed_dim=embed_dim,
            n_heads=n_heads,
            global_dim=global_dim,
            features_dim=pooled_dim,
            use_mask=False,
        )
        self.embed_dim, self.pooled_dim = embed_dim, pooled_dim
        self.n_pair_features = q
        self.layout = (n, embed_dim, pooled_dim, q)  # what :func:`unpack` needs

    def forward(self, observations: dict[str, torch.Tensor]) -> torch.Tensor:
        h, mask, g = self.encoder.encode_nodes(observations)
        pooled = self.encoder.pool(h, mask, g)
        b = h.shape[0]
        parts = [h.reshape(b, -1), pooled, observations["distances"].reshape(b, -1)]
        if self.n_pair_features:
            parts.append(observations["pairs"].reshape(b, -1))
        return torch.cat(parts, 1)


def unpack(
    latent: torch.Tensor, n_nodes: int, embed_dim: int, pooled_dim: int, n_pair_features: int = 0
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """(h (B, N, E), pooled (B, P), distances (B, N, N), pairs (B, N, N, Q)) from the
    extractor's packed output (``pairs`` has Q = 0 features without them)."""
    b, width = latent.shape
    n, e, p, q = n_nodes, embed_dim, pooled_dim, n_pair_features
    if n * e + p + n * n * (1 + q) != width:
        raise ValueError(
            f"latent width {width} does not match {n} nodes, embed {e}, pooled {p}, "
            f"{q} pair features"
        )
    h = latent[:, : n * e].reshape(b, n, e)
    pooled = latent[:, n * e : n * e + p]
    start = n * e + p
    distances = latent[:, start : start + n * n].reshape(b, n, n)
    pairs = latent[:, start + n * n :].reshape(b, n, n, q)
    return h, pooled, distances, pairs


class PointerHead(nn.Module):
    """Logits ``(B, N * (N + 1))`` in the MultiDiscrete layout: per node, [stay, move to 0..N-1]."""

    def __init__(self, extractor: NodeEmbeddingExtractor, hidden: int = 64):
        super().__init__()
        e, p = extractor.embed_dim, extractor.pooled_dim
        self.layout = extractor.layout
        self.stay = nn.Sequential(nn.Linear(e + p, hidden), nn.ReLU(), nn.Linear(hidden, 1))
        self.src = nn.Linear(e, hidden)
        self.dst = nn.Linear(e, hidden, bias=False)
        self.ctx = nn.Linear(p, hidden, bias=False)
        self.dist = nn.Parameter(torch.zeros(hidden))
        q = extractor.n_pair_features
        self.pairs = nn.Linear(q, hidden, bias=False) if q else None
        self.move = nn.Linear(hidden, 1)
        # Start near uniform, as SB3 does (gain 0.01 on the output layer), plus a
        # learnable offset of "do nothing" that ``noop_logit_bias`` sets.
        for out in (self.stay[-1], self.move):
            nn.init.orthogonal_(out.weight, gain=0.01)
            nn.init.zeros_(out.bias)
        self.noop_bias = nn.Parameter(torch.zeros(()))

    def forward(self, latent: torch.Tensor) -> torch.Tensor:
        h, pooled, distances, pairs = unpack(latent, *self.layout)
        b, n, _ = h.shape
        ctx = pooled[:, None, :].expand(b, n, pooled.shape[1])
        stay = self.stay(torch.cat([h, ctx], -1)) + self.noop_bias  # (B, N, 1)
        pair = (
            self.src(h)[:, :, None, :]
            + self.dst(h)[:, None, :, :]
            + self.ctx(pooled)[:, None, None, :]
            + distances[..., None] * self.dist
        )
        if self.pairs is not None:
            pair = pair + self.pairs(pairs)
        move = self.move(torch.relu(pair)).squeeze(-1)  # (B, N, N): i -> j
        return torch.cat([stay, move], -1).reshape(b, n * (n + 1))


class _PointerMixin:
    """Builds the SB3 actor-critic with :class:`PointerHead` as its action net.

    The policy latent is the extractor output itself (``net_arch`` ``pi=[]``);
    the value head is an MLP on the pooled summary only, so no weight depends
    on the node count.
    """

    def __init__(self, observation_space, action_space, lr_schedule, **kwargs: Any):
        n = int(observation_space["nodes"].shape[0])
        if not (
            isinstance(action_space, spaces.MultiDiscrete)
            and action_space.nvec.shape == (n,)
            and np.all(action_space.nvec == n + 1)
        ):
            raise ValueError(
                f"NodePointerPolicy needs MultiDiscrete([N + 1] * N) with N = {n} nodes, "
                f"got {action_space}"
            )
        self.value_hidden = tuple(kwargs.pop("value_net_arch", (128,)))
        kwargs.setdefault("features_extractor_class", NodeEmbeddingExtractor)
        if kwargs.get("net_arch") is not None:
            raise ValueError(
                "NodePointerPolicy builds its own heads: pass value_net_arch (value MLP widths) "
                "and features_extractor_kwargs, not net_arch"
            )
        kwargs["net_arch"] = {"pi": [], "vf": []}
        super().__init__(observation_space, action_space, lr_schedule, **kwargs)

    def _get_constructor_parameters(self) -> dict[str, Any]:
        data = super()._get_constructor_parameters()  # what policy.save() stores for load()
        data.pop("net_arch", None)
        data["value_net_arch"] = self.value_hidden
        return data

    def _build(self, lr_schedule) -> None:
        super()._build(lr_schedule)
        extractor = self.features_extractor
        if not isinstance(extractor, NodeEmbeddingExtractor):
            raise ValueError(
                "NodePointerPolicy needs features_extractor_class=NodeEmbeddingExtractor"
            )
        self.action_net = PointerHead(extractor)
        layers: list[nn.Module] = []
        width = extractor.pooled_dim
        for hidden in self.value_hidden:
            layers += [nn.Linear(width, hidden), nn.Tanh()]
            width = hidden
        layers.append(nn.Linear(width, 1))
        self.value_net = nn.Sequential(_Pooled(extractor.layout), *layers)
        self.optimizer = self.optimizer_class(  # again: the heads changed
            self.parameters(), lr=lr_schedule(1), **self.optimizer_kwargs
        )


class _Pooled(nn.Module):
    """The pooled summary out of the packed latent (no parameters)."""

    def __init__(self, layout: tuple[int, int, int, int]):
        super().__init__()
        self.layout = layout

    def forward(self, latent: torch.Tensor) -> torch.Tensor:
        return unpack(latent, *self.layout)[1]


class NodePointerPolicy(_PointerMixin, MultiInputActorCriticPolicy):
    """PPO / A2C policy with a per-node pointer head (see the module docstring)."""


class MaskableNodePointerPolicy(_PointerMixin, MaskableMultiInputActorCriticPolicy):
    """MaskablePPO policy with a per-node pointer head (see the module docstring)."""
