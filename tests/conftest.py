"""Shared fixtures: the simulation core's configs and layouts, world comparison, torch threads."""

from __future__ import annotations

from dataclasses import fields

import numpy as np
import pytest

from roadedge.envs.sim.config import MigrationConfig, ScenarioConfig, load_scenario
from roadedge.envs.sim.layout import Layout, build_layout
from roadedge.envs.sim.world import World


@pytest.fixture(scope="session")
def small_cfg() -> ScenarioConfig:
    """The ``small`` preset: 3 RSUs + 1 UAV on a 2x2-block grid."""
    return load_scenario("small")


@pytest.fixture(scope="session")
def small_layout(small_cfg: ScenarioConfig) -> Layout:
    return build_layout(small_cfg)


@pytest.fixture
def one_torch_thread():
    """torch with one thread: on 2 cores its default of 2 stalls SB3 at times."""
    torch = pytest.importorskip("torch")
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


@pytest.fixture
def mig_cfg() -> MigrationConfig:
    """Seed 000's migration defaults."""
    return MigrationConfig()


def worlds_equal(a: World, b: World) -> list[str]:
    """Names of the World fields that differ between ``a`` and ``b`` (NaN equals NaN)."""
    out = []
    for f in fields(a):
        x, y = getattr(a, f.name), getattr(b, f.name)
        if x.shape != y.shape or x.dtype != y.dtype:
            out.append(f.name)
        elif not np.array_equal(x, y, equal_nan=x.dtype.kind == "f"):
            out.append(f.name)
    return out


@pytest.fixture
def assert_same_world():
    """``assert_same_world(a, b)`` fails naming every field that differs."""

    def check(a: World, b: World) -> None:
        diff = worlds_equal(a, b)
        assert not diff, f"World fields differ: {diff}"

    return check
