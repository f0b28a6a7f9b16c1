"""Rendering: frame shape and content, node failures, and no effect on trajectories."""

from __future__ import annotations

import warnings

import gymnasium as gym
import numpy as np
import pytest

from roadedge.envs import env_ids
from roadedge.envs import render as render_mod
from roadedge.envs.render import FRAME_SHAPE


def n_colours(frame: np.ndarray) -> int:
    packed = frame.astype(np.uint32)
    return len(np.unique((packed[..., 0] << 16) | (packed[..., 1] << 8) | packed[..., 2]))


def actions(env, steps: int, seed: int = 0) -> list[np.ndarray]:
    n = env.unwrapped.n_nodes
    rng = np.random.default_rng(seed)
    return [rng.integers(0, n + 1, n) for _ in range(steps)]


@pytest.mark.parametrize("env_id", env_ids())
def test_frames_of_every_id(env_id):
    env = gym.make(env_id, render_mode="rgb_array")
    try:
        env.reset(seed=0)
        first = env.render()
        assert first.shape == FRAME_SHAPE == (600, 900, 3)
        assert first.dtype == np.uint8
        assert first.flags.c_contiguous
        assert n_colours(first) > 200  # map, nodes, colour bar, text: not blank
        frames = [first]
        for a in actions(env, 3):
            env.step(a)
            frames.append(env.render())
        for previous, frame in zip(frames, frames[1:], strict=False):
            assert frame.shape == FRAME_SHAPE and frame.dtype == np.uint8
            assert not np.array_equal(previous, frame)  # vehicles move, the tick advances
        # a frame is a copy: rendering again does not change a returned frame
        kept = frames[-1].copy()
        env.render()
        assert np.array_equal(kept, frames[-1])
    finally:
        env.close()


def test_node_failure_changes_the_picture():
    env = gym.make("RoadEdge-small-v1", render_mode="rgb_array")
    env.reset(seed=3)
    sim = env.unwrapped.sim
    before = env.render()
    assert np.array_equal(before, env.render())  # same state, same frame
    sim.world.node_up[0, 0] = False  # RSU 0 fails (the truth)
    down = env.render()
    changed = np.any(down != before, axis=2)
    # the node's marker (greyed, X) is drawn where the layout puts it
    x, y = sim.layout.pos_xyz[0, :2]
    size = sim.layout.map_size_m
    side, pad = 580, 0.04 * size
    col = int(10 + (x + pad) / (size + 2 * pad) * side)
    row = int(600 - 10 - (y + pad) / (size + 2 * pad) * side)
    assert changed[row - 6 : row + 7, col - 6 : col + 7].sum() > 20
    sim.world.node_up[0, 0] = True  # repaired: the cached picture comes back
    assert np.array_equal(env.render(), before)
    env.close()


def test_natural_failures_render():
    env = gym.make(
        "RoadEdge-failures-v1",
        render_mode="rgb_array",
        faults__rsu_mttf_s=100.0,
        faults__uav_mttf_s=100.0,
    )
    env.reset(seed=1)
    seen_down = False
    for a in actions(env, 40, seed=1):
        env.step(a)
        frame = env.render()
        assert frame.shape == FRAME_SHAPE
        seen_down |= not env.unwrapped.sim.world.node_up[0].all()
    assert seen_down
    env.close()


@pytest.mark.parametrize("env_id", ["RoadEdge-v1", "RoadEdge-failures-v1"])
def test_rendering_does_not_change_the_trajectory(env_id, assert_same_world):
    plain = gym.make(env_id, faults__rsu_mttf_s=300.0)
    drawn = gym.make(env_id, render_mode="rgb_array", faults__rsu_mttf_s=300.0)
    obs_a, _ = plain.reset(seed=7)
    obs_b, _ = drawn.reset(seed=7)
    drawn.render()
    assert np.array_equal(obs_a, obs_b)
    for a in actions(plain, 50, seed=7):
        obs_a, r_a, _, _, info_a = plain.step(a)
        before = drawn.unwrapped.sim.world.copy()
        drawn.render()
        assert_same_world(before, drawn.unwrapped.sim.world)  # render only reads
        obs_b, r_b, _, _, info_b = drawn.step(a)
        drawn.render()
        assert np.array_equal(obs_a, obs_b)
        assert r_a == r_b
        assert info_a == info_b
    assert_same_world(plain.unwrapped.sim.world, drawn.unwrapped.sim.world)
    plain.close()
    drawn.close()


def test_human_mode_without_display_warns_once(monkeypatch):
    monkeypatch.setattr(render_mod, "_has_display", lambda: False)
    env = gym.make("RoadEdge-small-v1", render_mode="human")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        env.reset(seed=0)
        for a in actions(env, 3):
            env.step(a)
        assert env.render() is None
    env.close()
    ours = [w for w in caught if "human rendering is off" in str(w.message)]
    assert len(ours) == 1


def test_close_and_render_again():
    env = gym.make("RoadEdge-small-v1", render_mode="rgb_array")
    env.reset(seed=0)
    first = env.render()
    env.close()
    again = env.render()
    assert np.array_equal(first, again)
    env.close()


def test_renderer_draws_any_batch_row():
    from roadedge.envs.render import Renderer
    from roadedge.envs.sim.config import load_scenario
    from roadedge.envs.sim.simulator import Simulator

    sim = Simulator(load_scenario("small"), batch_size=2)
    sim.reset(np.array([1, 2], dtype=np.uint64))
    last = sim.step(np.zeros((2, sim.layout.n_nodes), dtype=np.int64))
    renderer = Renderer(sim, "rgb_array")
    rows = [renderer.draw(env=e, last=last) for e in (0, 1)]
    assert all(f.shape == FRAME_SHAPE and f.dtype == np.uint8 for f in rows)
    assert not np.array_equal(rows[0], rows[1])  # different episodes, different pictures
    assert np.array_equal(renderer.draw(env=0, last=last), rows[0])
    renderer.close()


@pytest.mark.parametrize("how", ["pickle", "deepcopy"])
def test_env_copies_after_render(how):
    """Pickle and deepcopy work after ``render()`` (the renderer's matplotlib state is
    dropped and rebuilt on the next frame): the copy draws the original's frame, and
    draws its own world, not the original's."""
    import copy
    import pickle

    env = gym.make("RoadEdge-small-v1", render_mode="rgb_array")
    env.reset(seed=0)
    for a in actions(env, 2):
        env.step(a)
    frame = env.render()
    twin = pickle.loads(pickle.dumps(env)) if how == "pickle" else copy.deepcopy(env)
    assert np.array_equal(twin.render(), frame)
    (a,) = actions(env, 1, seed=5)
    twin.step(a)
    assert not np.array_equal(twin.render(), frame)
    assert np.array_equal(env.render(), frame)  # the original is untouched
    env.step(a)
    assert np.array_equal(env.render(), twin.render())  # same step, same picture
    twin.close()
    env.close()
