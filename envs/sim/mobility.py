"""Manhattan-grid mobility: vehicles drive on block edges, turn at intersections,
leave at the boundary and enter as a Poisson stream.

Roads are the lines ``x = k * block_m`` and ``y = k * block_m`` for
``k = 0..grid_blocks``. A vehicle moves ``speed * dt`` per tick along its
direction; when it reaches an intersection it turns left or right with
probability ``turn_probability`` (split evenly) or goes straight, and carries
the remaining distance into the new direction. The config guarantees
``speed_max * dt < block_m``, so at most one intersection is crossed per tick.
All vehicles of all environments move in one compiled kernel call.

With ``map.kind = "highway"`` the same kernels call :mod:`.highway`'s per-vehicle
steps (a straight multi-lane road); :func:`arrivals` and the row bookkeeping of
:func:`spawn_vehicles` are shared. With ``map.kind = "trace"`` :mod:`.trace` replays
recorded positions instead: it moves, removes and adds the vehicles itself.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit

from . import highway, trace
from .config import ScenarioConfig
from .rng import Stream, poisson_at, poisson_cap, uniform_at
from .world import World

MAP_GRID, MAP_HIGHWAY = 0, 1  # map.kind, as the kernels see it
_S_TURN = np.uint64(Stream.VEHICLE_TURN)
_S_ARRIVALS, _ZERO = np.uint64(Stream.VEHICLE_ARRIVALS), np.uint64(0)
_GRID_INIT = (
    Stream.VEHICLE_INIT_ROAD,
    Stream.VEHICLE_INIT_POS,
    Stream.VEHICLE_INIT_DIR,
    Stream.VEHICLE_INIT_SPEED,
)
_GRID_ENTRY = (
    Stream.VEHICLE_ENTRY_ROAD,
    Stream.VEHICLE_ENTRY_POS,
    Stream.VEHICLE_ENTRY_DIR,
    Stream.VEHICLE_SPEED,
)
_S_INIT_ROAD, _S_INIT_POS, _S_INIT_DIR, _S_INIT_SPEED = (np.uint64(s) for s in _GRID_INIT)
_S_ENTRY_ROAD, _S_ENTRY_POS, _S_ENTRY_DIR, _S_ENTRY_SPEED = (np.uint64(s) for s in _GRID_ENTRY)


def _map_args(cfg: ScenarioConfig) -> tuple:
    """The map and vehicle parameters the kernels take, in their order (fixed types, so
    each kernel compiles once)."""
    m, vc = cfg.map, cfg.vehicles
    return (
        MAP_HIGHWAY if m.kind == "highway" else MAP_GRID,
        float(m.block_m),
        int(m.grid_blocks),
        float(m.highway_length_m),
        int(m.lanes_per_direction),
        float(m.lane_width_m),
        float(m.road_width_m),
        float(vc.speed_min_mps),
        float(vc.speed_max_mps),
    )


@njit(cache=True)
def _grid_move(x, y, direction, speed_mps, dt_s, block_m, size_m, turn_p, key, tick, serial):
    """One tick of one grid vehicle: (x, y, heading, still on the map)."""
    along_x = direction % 2 == 0
    pos = x if along_x else y
    step = speed_mps * dt_s
    # distance to the next intersection ahead (a full block when standing on one)
    cell = pos / block_m
    if direction < 2:
        ahead = (math.floor(cell + 1e-9) + 1.0) * block_m
    else:
        ahead = (math.ceil(cell - 1e-9) - 1.0) * block_m
    to_cross = abs(ahead - pos)
    new_d, rest, base = direction, step, pos
    if step >= to_cross:  # turn left / right with p/2 each, or go straight
        u = uniform_at(key, tick, _S_TURN, serial)
        turn = 1 if u < turn_p / 2 else (3 if u < turn_p else 0)
        new_d = (direction + turn) % 4
        rest = step - to_cross
        base = ahead
    # the crossing point (if any), then the rest along the new heading
    bx = base if along_x else x
    by = y if along_x else base
    if new_d == 0:
        bx += rest
    elif new_d == 1:
        by += rest
    elif new_d == 2:
        bx -= rest
    else:
        by -= rest
    tol = 1e-6
    on_map = -tol <= bx <= size_m + tol and -tol <= by <= size_m + tol
    return bx, by, new_d, on_map


@njit(cache=True)
def _move_kernel(
    veh_active, veh_x, veh_y, veh_dir, veh_speed, veh_serial, key, tick, dt_s, turn_p,
    kind, block_m, grid_blocks, length_m, lanes, lane_width_m, road_width_m, v_min, v_max,
):  # fmt: skip
    B, V = veh_x.shape
    for b in range(B):
        for v in range(V):
            if not veh_active[b, v]:
                continue
            if kind == MAP_HIGHWAY:
                x, on_map = highway.move(
                    veh_x[b, v], veh_dir[b, v], veh_speed[b, v], dt_s, length_m
                )
                veh_x[b, v] = x
            else:
                x, y, d, on_map = _grid_move(
                    veh_x[b, v], veh_y[b, v], veh_dir[b, v], veh_speed[b, v], dt_s, block_m,
                    grid_blocks * block_m, turn_p, key[b], tick[b], veh_serial[b, v],
                )  # fmt: skip
                veh_x[b, v], veh_y[b, v], veh_dir[b, v] = x, y, d
            veh_active[b, v] = on_map


def move_vehicles(world: World, cfg: ScenarioConfig) -> None:
    """Advance every active vehicle one tick; deactivate those that leave the map."""
    if cfg.map.kind == "trace":  # the trace's next second: moves, exits and entries
        trace.replay(world, cfg, initial=False)
        return
    w = world
    args = w.bound("move", (cfg,), lambda: (
        w.veh_active, w.veh_x, w.veh_y, w.veh_dir, w.veh_speed, w.veh_serial, w.key, w.tick,
        cfg.dt_s, cfg.vehicles.turn_probability, *_map_args(cfg),
    ))  # fmt: skip
    _move_kernel(*args)


@njit(cache=True)
def _grid_place(key, tick, serial, initial, block_m, grid_blocks, v_min, v_max):
    """Grid: position, heading and speed of the vehicle with entry number ``serial``.
    Reset (tick 0) and entries in the first step (also tick 0) use different streams."""
    if initial:
        u_road = uniform_at(key, tick, _S_INIT_ROAD, serial)
        u_pos = uniform_at(key, tick, _S_INIT_POS, serial)
        u_dir = uniform_at(key, tick, _S_INIT_DIR, serial)
        u_speed = uniform_at(key, tick, _S_INIT_SPEED, serial)
    else:
        u_road = uniform_at(key, tick, _S_ENTRY_ROAD, serial)
        u_pos = uniform_at(key, tick, _S_ENTRY_POS, serial)
        u_dir = uniform_at(key, tick, _S_ENTRY_DIR, serial)
        u_speed = uniform_at(key, tick, _S_ENTRY_SPEED, serial)
    size = grid_blocks * block_m
    road = min(int(u_road * (grid_blocks + 1)), grid_blocks) * block_m
    direction = min(int(u_dir * 4), 3)
    if initial:
        along = u_pos * size
    else:  # enter from the side the heading points away from
        along = 0.0 if direction < 2 else size
    if direction % 2 == 0:
        x, y = along, road
    else:
        x, y = road, along
    return x, y, direction, v_min + u_speed * (v_max - v_min)


@njit(cache=True)
def _spawn_kernel(
    counts, initial, veh_active, veh_tasks, veh_serial, veh_spawned, veh_x, veh_y, veh_dir,
    veh_speed, veh_new, veh_wants_session, veh_serving, key, tick,
    kind, block_m, grid_blocks, length_m, lanes, lane_width_m, road_width_m, v_min, v_max,
):  # fmt: skip
    B, V = veh_x.shape
    for b in range(B):
        placed = 0
        for v in range(V):
            if placed >= counts[b]:
                break
            if veh_active[b, v] or veh_tasks[b, v] != 0:
                continue
            serial = veh_spawned[b] + np.uint64(placed)
            placed += 1
            if kind == MAP_HIGHWAY:
                x, y, d, speed = highway.place(
                    key[b], tick[b], serial, initial, length_m, lanes, lane_width_m,
                    road_width_m, v_min, v_max,
                )  # fmt: skip
            else:
                x, y, d, speed = _grid_place(
                    key[b], tick[b], serial, initial, block_m, grid_blocks, v_min, v_max
                )
            veh_serial[b, v] = serial
            veh_x[b, v], veh_y[b, v], veh_dir[b, v], veh_speed[b, v] = x, y, d, speed
            veh_active[b, v] = True
            veh_new[b, v] = True  # its entry session draw is due (sessions.start_sessions)
            veh_wants_session[b, v] = False
            veh_serving[b, v] = -1
        veh_spawned[b] += np.uint64(placed)


def spawn_vehicles(world: World, cfg: ScenarioConfig, counts: np.ndarray, initial: bool) -> None:
    """Activate ``counts[b]`` free vehicle rows in each environment ``b`` (lowest rows first).

    A row is free when the vehicle is off the map and owns no live task (its
    tasks keep their vehicle index until they end). ``initial`` places vehicles
    anywhere on the roads (reset); otherwise they enter at the boundary.

    The k-th vehicle to enter in an episode gets serial number k, and every
    draw about it (entry, speed, turns, its tasks) is keyed on that serial, not
    on its row: which rows are free depends on when tasks end, i.e. on the
    controller, and the traffic must not (common random numbers).

    ``map.kind = "trace"``: at reset the window's first second is placed (``counts`` is
    ignored); entries come with the trace's seconds (:func:`move_vehicles`).
    """
    if cfg.map.kind == "trace":
        if initial:
            trace.replay(world, cfg, initial=True)
        return
    w = world
    args = w.bound("spawn", (cfg,), lambda: (
        w.veh_active, w.veh_tasks, w.veh_serial, w.veh_spawned, w.veh_x, w.veh_y, w.veh_dir,
        w.veh_speed, w.veh_new, w.veh_wants_session, w.veh_serving, w.key, w.tick,
        *_map_args(cfg),
    ))  # fmt: skip
    _spawn_kernel(np.asarray(counts, dtype=np.int64), initial, *args)


@njit(cache=True)
def _arrivals_kernel(key, tick, mean, cap, out):
    for b in range(out.shape[0]):
        out[b] = poisson_at(uniform_at(key[b], tick[b], _S_ARRIVALS, _ZERO), mean, cap)


def arrivals(world: World, cfg: ScenarioConfig) -> np.ndarray:
    """Poisson number of vehicles entering each environment this tick, shape (B,): exact
    inversion up to ``rng.poisson_cap(mean)`` (P(count > cap) < 1e-12 at any rate)."""
    if cfg.map.kind == "trace":  # entries are the trace's
        return np.zeros(world.key.shape[0], np.int64)
    mean = float(cfg.vehicles.arrival_rate_hz * cfg.dt_s)
    out = np.empty(world.key.shape[0], np.int64)
    cap = world.bound("arrivals", (cfg,), lambda: poisson_cap(mean))
    _arrivals_kernel(world.key, world.tick, mean, cap, out)
    return out
