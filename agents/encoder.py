"""A permutation-invariant, node-count-agnostic encoder for RoadEdge's dict observation.

``NodeSetExtractor`` is an SB3 features extractor for ``obs_mode="dict"``
(``nodes`` (N, F), ``node_mask`` (N,), ``distances`` (N, N), ``globals`` (G,),
and, when the space has it, ``pairs`` (N, N, P)). It treats the nodes as a *set*:

1. every node row gets two distance summaries, its mean and its least
   distance to the *other unmasked* nodes (how central / how isolated it is
   among the nodes that are up), and ``2 * P`` pair summaries, the sums of its
   outgoing (``pairs[i, :]``) and incoming (``pairs[:, i]``) pair features over
   the unmasked nodes (e.g. its sessions heading elsewhere, other nodes'
   sessions heading here), and goes through one shared MLP;
2. one layer of multi-head self-attention between the nodes, with the node
   mask as key padding mask (masked nodes are never attended to) and a
   learned per-head penalty ``-softplus(w_h) * d_ij`` on the logits, so a head
   can prefer nearby nodes (migrations are cheaper between close nodes), plus
   a learned per-head linear term of ``pairs[i, j]`` (zero at start);
   residual + LayerNorm, then a shared feed-forward block, residual + LayerNorm;
3. masked mean- and max-pooling over the unmasked nodes, concatenated with an
   MLP of the global features, then a final linear layer + ReLU to
   ``features_dim``. Nothing depends on how many masked nodes there are, so
   padding an observation with extra masked nodes does not change the output.

Why: the flat MLP sees node ``i`` always in input slot ``i`` and so must learn
the same rule once per slot, and it cannot be applied to another node count.
Here every learned weight is shared across nodes, so the output is invariant
to the order of the nodes, nodes that are masked out (believed down) have no
influence at all, and the same weights run on any number of nodes: the
parameter shapes depend only on the per-node feature width ``F`` and the
global width ``G``, never on ``N``.

Caveats:

* The *extractor* is node-count agnostic, not the whole policy. SB3's action
  head for ``MultiDiscrete([N + 1] * N)`` is a linear layer with
  ``N * (N + 1)`` outputs, so a saved policy transfers only between
  scenarios with the same action space. For another node count, build a new
  model and copy the extractor's ``state_dict`` into it (the action and value
  heads start fresh), or use ``NodePointerPolicy`` (``pointer.py``), whose
  per-node action head has no weight that depends on N either.
* The output is invariant to the node order by design, and the stock
  MultiDiscrete head maps it to per-slot logits with a separate weight row per
  slot. So slot ``i``'s decision sees node ``i`` only through the pooled
  summary: the head can learn "which slot is which" only insofar as the pooled
  embedding still encodes it (static features such as CPU, UAV flag,
  capabilities and distance summaries help). This is the price of pairing a
  set encoder with the stock head; compare against the flat ``MlpPolicy``
  before relying on it.
* RoadEdge's ``node_mask`` means "believed up", not "padding". A node that is
  masked out is invisible here, including its ``orphans`` count that a
  failover decision needs (only the global ``orphans`` share remains). Pass
  ``use_mask=False`` to encode every node (the ``up`` feature still tells
  them apart, and its mean-pool is the share of nodes up) when that matters
  more than ignoring absent nodes.
"""

from __future__ import annotations

import math

import torch
from gymnasium import spaces
from stable_baselines3.common.torch_layers import BaseFeaturesExtractor
from torch import nn

OBS_KEYS = ("nodes", "node_mask", "distances", "globals")  # and "pairs" when present
N_DIST_FEATURES = 2  # mean and least distance to the other unmasked nodes
PAIR_SUMMARIES = 2  # per pair feature: outgoing and incoming sums over the unmasked nodes
_NEG = -1e9  # logit of a masked key: finite, so an all-masked row gives no NaN


def distance_summary(distances: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """(B, N, 2): per node, mean and min distance to the *other* unmasked nodes.

    Permutation-equivariant (row ``i`` only reduces over ``j``). Masked nodes
    ``j`` are left out, so their distances have no influence; a node with no
    other unmasked node gets 1 (the largest normalised distance) for both.
    """
    n = distances.shape[-1]
    eye = torch.eye(n, dtype=torch.bool, device=distances.device)
    other = mask[:, None, :] & ~eye  # (B, N, N): j unmasked and j != i
    count = other.sum(-1)
    d = torch.where(other, distances, torch.zeros_like(distances))
    mean = d.sum(-1) / count.clamp(min=1)
    least = torch.where(other, distances, torch.full_like(distances, math.inf)).amin(-1)
    none = count == 0
    mean = torch.where(none, torch.ones_like(mean), mean)
    least = torch.where(none, torch.ones_like(least), least)
    return torch.stack([mean, least], dim=-1)


def pair_summary(pairs: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """(B, N, 2P): per node ``i``, ``sum_j pairs[i, j]`` then ``sum_j pairs[j, i]`` over the
    unmasked ``j`` (``i`` itself included), each (B, N, P). Permutation-equivariant; masked
    nodes' pairs have no influence (replaced, not multiplied: NaN there cannot leak)."""
    pair = (mask[:, :, None] & mask[:, None, :])[..., None]
    p = torch.where(pair, pairs, torch.zeros_like(pairs))
    return torch.cat([p.sum(2), p.sum(1)], dim=-1)


class MaskedDistanceAttention(nn.Module):
    """Multi-head self-attention over nodes with a key padding mask and a distance bias.

    ``logits[h, i, j] = q_i . k_j / sqrt(d) - softplus(w_h) * distances[i, j]``,
    with masked keys ``j`` excluded. Equivariant to permuting the nodes.
    """

    def __init__(
        self, embed_dim: int, n_heads: int, distance_bias: bool = True, n_pair_features: int = 0
    ):
        super().__init__()
        if embed_dim % n_heads:
            raise ValueError(f"embed_dim ({embed_dim}) must be divisible by n_heads ({n_heads})")
        self.n_heads = n_heads
        self.head_dim = embed_dim // n_heads
        self.qkv = nn.Linear(embed_dim, 3 * embed_dim)
        self.out = nn.Linear(embed_dim, embed_dim)
        # softplus(-2) ~ 0.13: starts close to plain attention.
        self.distance_weight = nn.Parameter(torch.full((n_heads,), -2.0)) if distance_bias else None
        # + pairs[i, j] . u_h: zero at start, so it starts as the distance-only attention
        self.pair_weight: nn.Linear | None = None
        if n_pair_features:
            self.pair_weight = nn.Linear(n_pair_features, n_heads, bias=False)
            nn.init.zeros_(self.pair_weight.weight)

    def forward(
        self,
        x: torch.Tensor,
        mask: torch.Tensor,
        distances: torch.Tensor | None = None,
        pairs: torch.Tensor | None = None,
    ) -> torch.Tensor:
        B, N, E = x.shape
        q, k, v = self.qkv(x).view(B, N, 3, self.n_heads, self.head_dim).unbind(dim=2)
        q, k, v = (t.transpose(1, 2) for t in (q, k, v))  # (B, H, N, d)
        logits = q @ k.transpose(-1, -2) / math.sqrt(self.head_dim)  # (B, H, N, N)
        if self.distance_weight is not None and distances is not None:
            slope = nn.functional.softplus(self.distance_weight).view(1, -1, 1, 1)
            logits = logits - slope * distances[:, None]
        if self.pair_weight is not None and pairs is not None:
            logits = logits + self.pair_weight(pairs).permute(0, 3, 1, 2)
        logits = logits.masked_fill(~mask[:, None, None, :], _NEG)
        attn = torch.softmax(logits, dim=-1)
        y = (attn @ v).transpose(1, 2).reshape(B, N, E)
        return self.out(y)


class NodeSetExtractor(BaseFeaturesExtractor):
    """Set encoder for RoadEdge's dict observation (see the module docstring).

    :param observation_space: the env's ``Dict`` space with keys ``nodes``
        (N, F), ``node_mask`` (N,), ``distances`` (N, N), ``globals`` (G,) and
        optionally ``pairs`` (N, N, P). Only ``F``, ``G`` and ``P`` are read; ``N``
        may differ at call time.
    :param embed_dim: width of the per-node embedding (divisible by ``n_heads``).
    :param n_heads: attention heads.
    :param global_dim: width of the global-feature embedding.
    :param features_dim: output width (what SB3's policy/value MLPs receive).
    :param attention: one masked self-attention layer between the nodes; if
        False the nodes are only pooled (masked mean + max), as in Deep Sets.
    :param use_distances: distance summaries per node and the attention's
        distance bias; if False ``distances`` is ignored.
    :param use_mask: honour ``node_mask`` (masked nodes have no influence); if
        False every node counts (see the caveat on "believed up" above).
    """

    def __init__(
        self,
        observation_space: spaces.Dict,
        embed_dim: int = 64,
        n_heads: int = 4,
        global_dim: int = 32,
        features_dim: int = 128,
        attention: bool = True,
        use_distances: bool = True,
        use_mask: bool = True,
    ):
        super().__init__(observation_space, features_dim)
        if not isinstance(observation_space, spaces.Dict) or any(
            k not in observation_space.spaces for k in OBS_KEYS
        ):
            raise ValueError(
                f"NodeSetExtractor needs a Dict observation with keys {OBS_KEYS} "
                f"(make the env with obs_mode='dict'), got {observation_space}"
            )
        nodes_shape = observation_space["nodes"].shape
        if nodes_shape is None or len(nodes_shape) != 2:
            raise ValueError(f"'nodes' must be (N, F), got shape {nodes_shape}")
        globals_shape = observation_space["globals"].shape
        assert globals_shape is not None
        self.n_node_features = int(nodes_shape[1])
        self.n_global_features = int(globals_shape[0])
        pairs_space = observation_space.spaces.get("pairs")
        self.n_pair_features = 0 if pairs_space is None else int(pairs_space.shape[-1])
        self.use_distances = use_distances
        self.use_mask = use_mask
        node_in = (
            self.n_node_features
            + (N_DIST_FEATURES if use_distances else 0)
            + PAIR_SUMMARIES * self.n_pair_features
        )
        self.node_mlp = nn.Sequential(
            nn.Linear(node_in, embed_dim),
            nn.ReLU(),
            nn.Linear(embed_dim, embed_dim),
            nn.ReLU(),
        )
        self.attention: MaskedDistanceAttention | None = None
        if attention:
            self.attention = MaskedDistanceAttention(
                embed_dim, n_heads, use_distances, self.n_pair_features
            )
            self.norm1 = nn.LayerNorm(embed_dim)
            self.ff = nn.Sequential(
                nn.Linear(embed_dim, 2 * embed_dim), nn.ReLU(), nn.Linear(2 * embed_dim, embed_dim)
            )
            self.norm2 = nn.LayerNorm(embed_dim)
        self.global_mlp = nn.Sequential(nn.Linear(self.n_global_features, global_dim), nn.ReLU())
        self.head = nn.Sequential(
            nn.Linear(2 * embed_dim + global_dim, features_dim),
            nn.ReLU(),
        )

    def encode_nodes(
        self, observations: dict[str, torch.Tensor]
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Per-node embeddings before pooling.

        Returns ``(h, mask, g)``: ``h`` (B, N, E), zero on masked rows; the
        (B, N) bool mask that was applied; ``g`` (B, global_dim), the
        embedding of the global features. :meth:`forward` pools them; the
        pointer policy (``pointer.py``) reads ``h`` per node.
        """
        nodes = observations["nodes"]
        mask = observations["node_mask"] > 0.5  # (B, N) bool
        if not self.use_mask:
            mask = torch.ones_like(mask)
        if nodes.shape[-1] != self.n_node_features:
            raise ValueError(
                f"expected {self.n_node_features} features per node, got {nodes.shape[-1]}"
            )
        # Zero masked rows first: even NaN/inf there cannot leak (0 * inf = NaN otherwise).
        keep = mask[..., None]
        nodes = torch.where(keep, nodes, torch.zeros_like(nodes))
        distances = None
        if self.use_distances:
            distances = observations["distances"]
            pair = mask[:, :, None] & mask[:, None, :]
            distances = torch.where(pair, distances, torch.zeros_like(distances))
            nodes = torch.cat([nodes, distance_summary(distances, mask)], dim=-1)
        pairs = None
        if self.n_pair_features:
            pairs = observations["pairs"]
            if pairs.shape[-1] != self.n_pair_features:
                raise ValueError(
                    f"expected {self.n_pair_features} features per pair, got {pairs.shape[-1]}"
                )
            pair = (mask[:, :, None] & mask[:, None, :])[..., None]
            pairs = torch.where(pair, pairs, torch.zeros_like(pairs))
            nodes = torch.cat([nodes, pair_summary(pairs, mask)], dim=-1)
        h = self.node_mlp(nodes)  # (B, N, E)
        if self.attention is not None:
            h = self.norm1(h + self.attention(h, mask, distances, pairs))
            h = self.norm2(h + self.ff(h))
        h = torch.where(keep, h, torch.zeros_like(h))
        return h, mask, self.global_mlp(observations["globals"])

    def pool(self, h: torch.Tensor, mask: torch.Tensor, g: torch.Tensor) -> torch.Tensor:
        """Masked mean + max over the nodes, with the global embedding, to ``features_dim``."""
        keep = mask[..., None]
        count = mask.sum(-1, keepdim=True)  # (B, 1)
        mean = h.sum(1) / count.clamp(min=1)
        hmax = torch.where(keep, h, torch.full_like(h, -math.inf)).amax(1)
        hmax = torch.where(count > 0, hmax, torch.zeros_like(hmax))  # no node up: zeros
        return self.head(torch.cat([mean, hmax, g], dim=-1))

    def forward(self, observations: dict[str, torch.Tensor]) -> torch.Tensor:
        return self.pool(*self.encode_nodes(observations))
