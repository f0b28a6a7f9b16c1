"""Manhattan-grid mobility: vehicles drive on block edges, turn at intersections,
leave at the boundary and enter as a Poisson stream.

Roads are the lines ``x = k * block_m`` and ``y = k * block_m`` for
``k = 0..grid_blocks``. A vehicle moves ``speed * dt`` per tick along its
direction; when it reaches an intersection it turns left or right with
probability ``turn_probability`` (split evenly) or goes straight, and carries
the remaining distance into the new direction. The config guarantees
``speed_max * dt < block_m``, so at most one intersection is crossed per tick.
All vehicles of all environments move in one set of array operations.

With ``map.kind = "highway"`` the same public functions dispatch to
:mod:`.highway` (a straight multi-lane road); :func:`arrivals` and the row
bookkeeping of :func:`spawn_vehicles` are shared.
"""

from __future__ import annotations

import numpy as np

from . import highway
from .config import ScenarioConfig
from .rng import Stream, poisson_from_uniform, uniform
from .world import World

# Unit vectors of the four headings: 0 +x, 1 +y, 2 -x, 3 -y.
DX = np.array([1.0, 0.0, -1.0, 0.0])
DY = np.array([0.0, 1.0, 0.0, -1.0])


def move_vehicles(world: World, cfg: ScenarioConfig) -> None:
    """Advance every active vehicle one tick; deactivate those that leave the map."""
    if cfg.map.kind == "highway":
        highway.move_vehicles(world, cfg)
        return
    block = cfg.map.block_m
    size = cfg.map.grid_blocks * block
    act = world.veh_active
    d = world.veh_dir.astype(np.int64)
    along_x = (d % 2) == 0
    pos = np.where(along_x, world.veh_x, world.veh_y)
    sign = np.where(d < 2, 1.0, -1.0)
    step = world.veh_speed * cfg.dt_s

    # Distance to the next intersection ahead (a full block when standing on one).
    cell = pos / block
    ahead = np.where(sign > 0, np.floor(cell + 1e-9) + 1.0, np.ceil(cell - 1e-9) - 1.0) * block
    to_cross = np.abs(ahead - pos)
    crosses = act & (step >= to_cross)

    key, tick = world.key[:, None], world.tick[:, None]
    u_turn = uniform(key, tick, Stream.VEHICLE_TURN, world.veh_serial)
    tp = cfg.vehicles.turn_probability
    turn = np.where(u_turn < tp / 2, 1, np.where(u_turn < tp, 3, 0))  # left, right, straight
    new_d = np.where(crosses, (d + turn) % 4, d)
    rest = np.where(crosses, step - to_cross, step)

    # Position at the crossing point (if any), then the rest along the new heading.
    base_along = np.where(crosses, ahead, pos)
    bx = np.where(along_x, base_along, world.veh_x)
    by = np.where(along_x, world.veh_y, base_along)
    # Snap the cross coordinate onto the road (no drift from float error).
    new_x = np.where(act, bx + DX[new_d] * rest, world.veh_x)
    new_y = np.where(act, by + DY[new_d] * rest, world.veh_y)
    world.veh_x[:] = new_x
    world.veh_y[:] = new_y
    world.veh_dir[:] = new_d.astype(np.int8)
    tol = 1e-6
    outside = (new_x < -tol) | (new_x > size + tol) | (new_y < -tol) | (new_y > size + tol)
    world.veh_active &= ~outside


def spawn_vehicles(world: World, cfg: ScenarioConfig, counts: np.ndarray, initial: bool) -> None:
    """Activate ``counts[b]`` free vehicle rows in each environment ``b``.

    A row is free when the vehicle is off the map and owns no live task (its
    tasks keep their vehicle index until they end). ``initial`` places vehicles
    anywhere on the roads (reset); otherwise they enter at the boundary.

    The k-th vehicle to enter in an episode gets serial number k, and every
    draw about it (entry, speed, turns, its tasks) is keyed on that serial, not
    on its row: which rows are free depends on when tasks end, i.e. on the
    controller, and the traffic must not (common random numbers).
    """
    free = (~world.veh_active) & (world.veh_tasks == 0)
    rank = np.cumsum(free, axis=1)
    new = free & (rank <= counts[:, None])
    if not new.any():
        return
    world.veh_serial[new] = (world.veh_spawned[:, None] + (rank - 1).astype(np.uint64))[new]
    world.veh_spawned += new.sum(1).astype(np.uint64)
    if cfg.map.kind == "highway":
        x, y, direction, speed = highway.place(world, cfg, initial)
    else:
        x, y, direction, speed = _grid_place(world, cfg, initial)
    world.veh_x[new] = x[new]
    world.veh_y[new] = y[new]
    world.veh_dir[new] = direction[new].astype(np.int8)
    world.veh_speed[new] = speed[new]
    world.veh_active[new] = True
    world.veh_new[new] = True  # its entry session draw is due (sessions.start_sessions)
    world.veh_wants_session[new] = False
    world.veh_serving[new] = -1


def _grid_place(
    world: World, cfg: ScenarioConfig, initial: bool
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Grid: position, heading and speed, shape (B, V), drawn for every row's serial."""
    index = world.veh_serial
    key, tick = world.key[:, None], world.tick[:, None]
    G, block = cfg.map.grid_blocks, cfg.map.block_m
    size = G * block
    vc = cfg.vehicles
    # Placement at reset and entries in a step draw from different streams, so
    # the reset (tick 0) and the first step (also tick 0) never share a counter.
    if initial:
        streams = (
            Stream.VEHICLE_INIT_ROAD,
            Stream.VEHICLE_INIT_POS,
            Stream.VEHICLE_INIT_DIR,
            Stream.VEHICLE_INIT_SPEED,
        )
    else:
        streams = (
            Stream.VEHICLE_ENTRY_ROAD,
            Stream.VEHICLE_ENTRY_POS,
            Stream.VEHICLE_ENTRY_DIR,
            Stream.VEHICLE_SPEED,
        )
    u_road, u_pos, u_dir, u_speed = (uniform(key, tick, s, index) for s in streams)
    road = np.minimum((u_road * (G + 1)).astype(np.int64), G) * block
    if initial:
        direction = np.minimum((u_dir * 4).astype(np.int64), 3)
        along = u_pos * size
    else:  # enter from the side the heading points away from
        direction = np.minimum((u_dir * 4).astype(np.int64), 3)
        along = np.where(direction < 2, 0.0, size)
    along_x = (direction % 2) == 0
    x = np.where(along_x, along, road)
    y = np.where(along_x, road, along)
    speed = vc.speed_min_mps + u_speed * (vc.speed_max_mps - vc.speed_min_mps)
    return x, y, direction, speed


def arrivals(world: World, cfg: ScenarioConfig) -> np.ndarray:
    """Poisson number of vehicles entering each environment this tick, shape (B,)."""
    u = uniform(world.key, world.tick, Stream.VEHICLE_ARRIVALS, np.zeros(1, np.uint64))
    mean = cfg.vehicles.arrival_rate_hz * cfg.dt_s
    # exact inversion up to k_max; P(count > k_max) < 1e-9 for every mean
    k_max = max(16, int(np.ceil(mean + 10.0 * np.sqrt(mean))))
    return poisson_from_uniform(u, mean, k_max=k_max)
