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
These are the per-vehicle steps of the compiled mobility kernels (:mod:`.mobility`).
"""

from __future__ import annotations

import numpy as np
from numba import njit

from .config import ScenarioConfig
from .rng import Stream, uniform_at

HEADING_POS_X = 0  # veh_dir values, the grid's heading codes
HEADING_NEG_X = 2

_INIT = (Stream.HIGHWAY_INIT_DIR, Stream.HIGHWAY_INIT_LANE, Stream.HIGHWAY_INIT_SPEED)
_ENTRY = (Stream.HIGHWAY_ENTRY_DIR, Stream.HIGHWAY_ENTRY_LANE, Stream.HIGHWAY_ENTRY_SPEED)
_S_INIT_DIR, _S_INIT_LANE, _S_INIT_SPEED = (np.uint64(s) for s in _INIT)
_S_ENTRY_DIR, _S_ENTRY_LANE, _S_ENTRY_SPEED = (np.uint64(s) for s in _ENTRY)
_S_INIT_POS = np.uint64(Stream.HIGHWAY_INIT_POS)


def lane_centres_m(cfg: ScenarioConfig) -> tuple[np.ndarray, np.ndarray]:
    """y of the lane centres [m]: (heading +x, heading -x), lane 0 (outer) first."""
    m = cfg.map
    k = np.arange(m.lanes_per_direction) + 0.5
    return k * m.lane_width_m, m.road_width_m - k * m.lane_width_m


@njit(cache=True)
def move(x, direction, speed_mps, dt_s, length_m):
    """New x [m] of a vehicle after one tick, and whether it is still on the road (it
    leaves when it passes the far end, tolerance 1e-6 m)."""
    sign = -1.0 if direction == HEADING_NEG_X else 1.0
    new_x = x + sign * speed_mps * dt_s
    return new_x, -1e-6 <= new_x <= length_m + 1e-6


@njit(cache=True)
def place(key, tick, serial, initial, length_m, lanes, lane_width_m, road_width_m, v_min, v_max):
    """Position, heading and speed of the vehicle with entry number ``serial``.

    ``initial`` (reset): anywhere along the road, ``x = u * L``; otherwise at the upstream
    end (x = 0 heading +x, x = L heading -x). Reset (tick 0) and the first step (also
    tick 0) draw from different streams."""
    if initial:
        u_dir = uniform_at(key, tick, _S_INIT_DIR, serial)
        u_lane = uniform_at(key, tick, _S_INIT_LANE, serial)
        u_speed = uniform_at(key, tick, _S_INIT_SPEED, serial)
    else:
        u_dir = uniform_at(key, tick, _S_ENTRY_DIR, serial)
        u_lane = uniform_at(key, tick, _S_ENTRY_LANE, serial)
        u_speed = uniform_at(key, tick, _S_ENTRY_SPEED, serial)
    backward = u_dir >= 0.5
    lane = min(int(u_lane * lanes), lanes - 1)
    centre = (lane + 0.5) * lane_width_m
    y = road_width_m - centre if backward else centre
    if initial:
        x = uniform_at(key, tick, _S_INIT_POS, serial) * length_m
    else:
        x = length_m if backward else 0.0
    direction = HEADING_NEG_X if backward else HEADING_POS_X
    return x, y, direction, v_min + u_speed * (v_max - v_min)
