"""Batch-parallel kernels: the same rows as the serial ones, bit for bit; the switch that
chooses between them."""

from __future__ import annotations

import numpy as np
import pytest

from roadedge.envs.benchmark import _random_valid
from roadedge.envs.sim import parallel
from roadedge.envs.sim.config import load_scenario
from roadedge.envs.sim.parallel import KERNELS, Switch
from roadedge.envs.sim.simulator import Simulator

BATCH = 24  # above parallel.MIN_BATCH


def _rollout(force: str, monkeypatch, ticks=40):
    monkeypatch.setenv("ROADEDGE_PARALLEL", force)
    sim = Simulator(load_scenario("failures", {"horizon": 100}), BATCH, record_events=False)
    sim.reset(np.arange(1, BATCH + 1, dtype=np.uint64) * 7919)
    rng = np.random.default_rng(3)
    out = []
    for _ in range(ticks):
        res = sim.step(_random_valid(sim.action_mask(), rng))
        used = parallel.switches(sim.world)
        assert "access_links" in used and "work" in used
        assert all(sw.candidates == ((1,) if force == "1" else (0,)) for sw in used.values())
        w = sim.world
        out.append(
            (res.reward.copy(), w.veh_access.copy(), w.veh_rate_mbps.copy(), w.task_host.copy())
        )
    return out


def test_parallel_and_serial_variants_give_identical_batches(monkeypatch):
    serial = _rollout("0", monkeypatch)
    par = _rollout("1", monkeypatch)
    for tick, (a, b) in enumerate(zip(serial, par, strict=True)):
        for x, y in zip(a, b, strict=True):
            np.testing.assert_array_equal(x, y, err_msg=f"tick {tick}")


def test_every_registered_kernel_has_a_truly_parallel_twin():
    # the disk cache keys kernels by name: the twin must not load the serial code
    for name, (serial, par) in KERNELS.items():
        assert par.targetoptions.get("parallel"), name
        assert par.py_func.__qualname__ != serial.py_func.__qualname__, name


def test_switch_stays_serial_for_small_batches_and_one_thread(monkeypatch):
    monkeypatch.delenv("ROADEDGE_PARALLEL", raising=False)
    assert Switch("access_links", parallel.MIN_BATCH - 1).candidates == (0,)
    assert Switch("access_links", parallel.MIN_BATCH).candidates == (0, 1)
    monkeypatch.setattr(parallel.numba.config, "NUMBA_NUM_THREADS", 1)
    assert Switch("access_links", 1000).candidates == (0,)


class _Clock:
    def __init__(self):
        self.now = 0.0

    def __call__(self):
        return self.now


def test_switch_tries_both_then_keeps_the_faster_and_retries_the_other(monkeypatch):
    monkeypatch.delenv("ROADEDGE_PARALLEL", raising=False)
    clock = _Clock()
    monkeypatch.setattr(parallel.time, "perf_counter", clock)
    cost = {0: 3.0, 1: 1.0}  # seconds per call of the serial and parallel variants
    sw = Switch("access_links", 64)

    def variant(k):
        def run(*_):
            clock.now += cost[k]
            return k

        return run

    sw.variants = (variant(0), variant(1))
    ran = [sw.run() for _ in range(4)]
    assert ran == [0, 0, 1, 1]  # each variant twice: its first call may load it
    ran = [sw.run() for _ in range(parallel.RETRY_EVERY)]
    assert ran.count(1) == parallel.RETRY_EVERY - 1 and ran.count(0) == 1  # one retry
    cost[1] = 10.0  # the machine got busy: the parallel variant now loses
    ran = [sw.run() for _ in range(50)]
    assert ran[-10:] == [0] * 10


@pytest.mark.parametrize("value,expected", [("1", (1,)), ("on", (1,)), ("0", (0,))])
def test_the_environment_variable_forces_a_variant(monkeypatch, value, expected):
    monkeypatch.setenv("ROADEDGE_PARALLEL", value)
    assert Switch("access_links", 2).candidates == expected
