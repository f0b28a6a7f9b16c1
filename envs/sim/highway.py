"""Highway mobility (``map.kind = "highway"``): a straight multi-lane road in both directions.

The road runs along x from 0 to ``L = highway_length_m``. Its cross-section,
``W = 2 * lanes_per_direction * lane_width_m`` wide, spans ``0 <= y <= W`` with
the median at ``y = W / 2`` (right-hand traffic, seen from above with y up):

* heading +x (``veh_dir`` 0): lane ``k`` centred at ``y = (k + 0.5) * lane_width_m``,
  on the ``y < W / 2`` side (lane 0 is the outer lane, next to the road edge ``y = 0``);
* heading -x (``veh_dir`` 2): lane ``k`` centred at ``y = W - (k + 0.5) * lane_width_m``.

A vehicle keeps its lane and its speed (drawn once, uniform in
``[speed_min_mps, speed_max_mps]``) and moves ``speed * dt`` per tick; it
leaves when it passes the far end. New vehicles enter at the upstream end of
their direction (x = 0 heading +x, x = L heading -x) as the same Poisson stream
as on the grid (:func:`.mobility.arrivals`); at reset they are spread
uniformly along the road. Every draw about a vehicle is keyed on its entry
serial (common random numbers), from streams of its own (``Stream.HIGHWAY_*``).
All vehicles of all environments move in one set of array operations.
"""

from __future__ import annotations

import numpy as np

from .config import ScenarioConfig
from .rng import Stream, uniform
from .world import World

HEADING_POS_X = 0  # veh_dir values, the grid's heading codes
HEADING_NEG_X = 2


def lane_centres_m(cfg: ScenarioConfig) -> tuple[np.ndarray, np.ndarray]:
    """y of the lane centres [m]: (heading +x, heading -x), lane 0 (outer) first."""
    m = cfg.map
    k = np.arange(m.lanes_per_direction) + 0.5
    return k * m.lane_width_m, m.road_width_m - k * m.lane_width_m


def move_vehicles(world: World, cfg: ScenarioConfig) -> None:
    """Advance every active vehicle ``speed * dt`` along its lane; deactivate those that
    pass the far end (tolerance 1e-6 m)."""
    act = world.veh_active
    sign = np.where(world.veh_dir == HEADING_NEG_X, -1.0, 1.0)
    new_x = np.where(act, world.veh_x + sign * world.veh_speed * cfg.dt_s, world.veh_x)
    world.veh_x[:] = new_x
    tol = 1e-6
    world.veh_active &= ~((new_x < -tol) | (new_x > cfg.map.highway_length_m + tol))


def place(
    world: World, cfg: ScenarioConfig, initial: bool
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Position, heading and speed, shape (B, V), of a vehicle in every row, drawn for its
    serial (the caller keeps the rows that are actually spawned).

    ``initial`` (reset): anywhere along the road, ``x = u * L``; otherwise at the upstream end.
    """
    key, tick, index = world.key[:, None], world.tick[:, None], world.veh_serial
    if initial:  # reset (tick 0) and the first step (also tick 0) use different streams
        streams = (
            Stream.HIGHWAY_INIT_DIR,
            Stream.HIGHWAY_INIT_LANE,
            Stream.HIGHWAY_INIT_SPEED,
        )
    else:
        streams = (
            Stream.HIGHWAY_ENTRY_DIR,
            Stream.HIGHWAY_ENTRY_LANE,
            Stream.HIGHWAY_ENTRY_SPEED,
        )
    u_dir, u_lane, u_speed = (uniform(key, tick, s, index) for s in streams)
    m, vc = cfg.map, cfg.vehicles
    length = m.highway_length_m
    backward = u_dir >= 0.5
    direction = np.where(backward, HEADING_NEG_X, HEADING_POS_X)
    lane = np.minimum((u_lane * m.lanes_per_direction).astype(np.int64), m.lanes_per_direction - 1)
    fwd_y, back_y = lane_centres_m(cfg)
    y = np.where(backward, back_y[lane], fwd_y[lane])
    if initial:
        x = uniform(key, tick, Stream.HIGHWAY_INIT_POS, index) * length
    else:
        x = np.where(backward, length, 0.0)
    speed = vc.speed_min_mps + u_speed * (vc.speed_max_mps - vc.speed_min_mps)
    return x, y, direction, speed
