"""Compile every kernel of the simulation core once, so later starts load them from disk.

The kernels are Numba functions with ``cache=True``: the first process to use them
compiles them (about 20 s on a 2-core machine) and stores the machine code next
to the sources; every later start loads it in about 1.5 s. ``python -m
roadedge.envs.sim.warmup`` (run by ``make test`` before the suite, so the test
workers do not all compile at once) steps a small grid, a highway and the SUMO
trace world, with failures, retries and every observation mode, then a batch with
the parallel kernel variants forced, and prints how long it took.
"""

from __future__ import annotations

import os
import time

import numpy as np


def warm_up() -> float:
    """Compile (or load) every kernel; returns the seconds it took."""
    import gymnasium as gym

    import roadedge.envs  # noqa: F401  (registers the ids)

    from .parallel import MIN_BATCH

    start = time.perf_counter()
    worlds = (
        ("RoadEdge-small-v1", "flat"),
        ("RoadEdge-highway-v1", "dict"),
        ("RoadEdge-sumo-v1", "flat"),
    )
    for env_id, obs_mode in worlds:
        env = gym.make(env_id, obs_mode=obs_mode, check_invariants=True).unwrapped
        env.reset(seed=0)
        rng = np.random.default_rng(0)
        for _ in range(5):  # some moves, so the migration kernels run too
            mask = env.action_masks().reshape(env.n_nodes, env.n_nodes + 1)
            action = np.array([rng.choice(np.flatnonzero(row)) for row in mask])
            env.step(action)
        env.close()
    forced = os.environ.get("ROADEDGE_PARALLEL")
    os.environ["ROADEDGE_PARALLEL"] = "1"  # the parallel variants of the batch kernels
    try:
        venv = gym.make_vec(
            "roadedge.envs:RoadEdge-small-v1", num_envs=MIN_BATCH,
            vectorization_mode="vector_entry_point",
        )  # fmt: skip
        venv.reset(seed=0)
        rng = np.random.default_rng(0)
        N = venv.single_action_space.shape[0]
        for _ in range(5):
            venv.step(rng.integers(0, N + 1, size=(MIN_BATCH, N)))
        venv.close()
    finally:
        if forced is None:
            os.environ.pop("ROADEDGE_PARALLEL", None)
        else:
            os.environ["ROADEDGE_PARALLEL"] = forced
    return time.perf_counter() - start


def main() -> int:
    seconds = warm_up()
    print(f"roadedge: simulation kernels ready ({seconds:.1f} s)", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
