"""Trace mobility (``map.kind = "trace"``): replay recorded vehicle positions, e.g. a SUMO run.

A trace holds, for every second ``s = 0 .. n_seconds - 1``, the vehicles on the map with
their position, speed and heading (MODEL.md §3.2). Trace vehicles are numbered in order of
first appearance and each is present for one contiguous run of seconds (a vehicle that
vanishes and comes back is a new trace vehicle). An episode replays a window of
``horizon + 1`` seconds ``s0 .. s0 + horizon``; the start ``s0`` is drawn from the episode
key, so different seeds play different windows and a seed always plays the same one.

Per tick the compiled kernel (:func:`_replay_kernel`), for every environment:

1. deactivates the rows whose trace vehicle's run has ended;
2. copies x, y, speed and heading of the vehicles present at the current second into
   their rows;
3. gives each vehicle that enters at this second (every vehicle present, at reset) the
   lowest free row (inactive and owning no live task), as :func:`.mobility.spawn_vehicles`
   does; a vehicle that finds no free row is lost for its whole run.

A row's ``veh_serial`` is its trace vehicle number minus the lowest number in the window,
so serials are small, unique in the episode and independent of the controller.

On disk a trace is a compressed ``.npz`` (:func:`save_trace`); in memory, a :class:`Trace`
with per-second CSR arrays (:func:`load_trace`, cached per file).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from numba import njit

from .rng import Stream, uniform_at

FORMAT = "roadedge-trace-1"
STREAM_TRACE_WINDOW = int(Stream.TRACE_WINDOW)  # the window draw, one per episode
_S_WINDOW = np.uint64(STREAM_TRACE_WINDOW)
_ZERO = np.uint64(0)
POS_SCALE = 100.0  # stored positions: centimetres (SUMO writes 2 decimals)
SPEED_SCALE = 100.0  # stored speeds: cm/s
HEADING_SCALE = 100.0  # stored headings: 0.01 degree
SITE_RADIUS_M = 50.0  # a junction's load: vehicle-seconds within this distance
SITE_CELL_M = 50.0  # no junctions in the trace: 50 m cells are the candidate sites
SPACING = 1.0  # RSU sites at least SPACING * sqrt(map area / rsu.count) apart (first pass)
SHIPPED_DIR = Path(__file__).resolve().parent.parent / "scenarios" / "traces"


class TraceError(ValueError):
    """A trace file is missing or is not a RoadEdge trace."""


@dataclass(frozen=True)
class Trace:
    """A trace in replay form. Entries are ordered by second, then by vehicle number."""

    dt_s: float  # seconds between samples (1)
    offsets: np.ndarray  # (n_seconds + 1,) int64: entries of second s are offsets[s]:offsets[s+1]
    vid: np.ndarray  # (E,) int64 trace vehicle number
    x: np.ndarray  # (E,) float64 [m], map coordinates: [0, width]
    y: np.ndarray  # (E,) float64 [m], [0, height]
    speed: np.ndarray  # (E,) float64 [m/s]
    heading: np.ndarray  # (E,) float64 [deg], counter-clockwise from +x, in [0, 360)
    direction: np.ndarray  # (E,) int8: heading rounded to veh_dir's codes 0 +x, 1 +y, 2 -x, 3 -y
    t_first: np.ndarray  # (n_vehicles,) int64 first second of each trace vehicle
    t_last: np.ndarray  # (n_vehicles,) int64 last second
    lowest: np.ndarray  # (n_seconds + 1,) int64: lowest vehicle number present at or after s
    width_m: float
    height_m: float
    origin: np.ndarray  # (2,) source coordinates of the map's (0, 0) [m]
    roads: np.ndarray  # (K, 2, 2) float64 road segments [m], map coordinates
    sites_xy: np.ndarray  # (S, 2) candidate RSU sites [m]: the junctions, or occupied cells
    sites_load: np.ndarray  # (S,) vehicle-seconds near each site

    @property
    def n_seconds(self) -> int:
        return int(self.offsets.shape[0] - 1)

    @property
    def n_vehicles(self) -> int:
        return int(self.t_first.shape[0])

    @property
    def counts(self) -> np.ndarray:
        """Vehicles present per second, (n_seconds,)."""
        return np.diff(self.offsets)

    def at(self, second: int) -> slice:
        return slice(int(self.offsets[second]), int(self.offsets[second + 1]))


# --------------------------------------------------------------------------- building


def _heading_code(heading_deg: np.ndarray) -> np.ndarray:
    """Nearest of the four grid headings (0 +x, 1 +y, 2 -x, 3 -y); 45 degrees rounds to even."""
    return (np.round(np.asarray(heading_deg) / 90.0).astype(np.int64) % 4).astype(np.int8)


def build_arrays(
    time_index: np.ndarray,
    name_index: np.ndarray,
    x: np.ndarray,
    y: np.ndarray,
    speed: np.ndarray,
    heading: np.ndarray,
    origin: tuple[float, float],
    size: tuple[float, float],
    roads: np.ndarray | None = None,
    sites_xy: np.ndarray | None = None,
) -> dict[str, np.ndarray]:
    """The stored arrays of a trace from raw samples (one per vehicle and second).

    ``time_index`` (whole seconds from 0), ``name_index`` (the source's vehicle, any
    integer), positions in source coordinates [m], ``speed`` [m/s], ``heading`` [deg,
    counter-clockwise from +x]. The map is ``[0, size[0]] x [0, size[1]]`` with source
    point ``origin`` at (0, 0). Samples are split into trace vehicles: one per contiguous
    run of seconds of a source vehicle (a new one after a gap, or a jump of more than
    327 m: a teleport). ``sites_xy`` (source coordinates): candidate RSU sites, default the occupied
    50 m cells.
    """
    t = np.asarray(time_index, np.int64)
    name = np.asarray(name_index, np.int64)
    if t.size == 0:
        raise TraceError("the trace is empty: no vehicle in any second")
    xq = np.round((np.asarray(x, np.float64) - origin[0]) * POS_SCALE).astype(np.int64)
    yq = np.round((np.asarray(y, np.float64) - origin[1]) * POS_SCALE).astype(np.int64)
    vq = np.round(np.clip(speed, 0.0, 655.0) * SPEED_SCALE).astype(np.int64)
    hq = np.round(np.mod(heading, 360.0) * HEADING_SCALE).astype(np.int64) % 36000
    # vehicle-major: by source vehicle, then time
    order = np.lexsort((t, name))
    t, name, xq, yq, vq, hq = (a[order] for a in (t, name, xq, yq, vq, hq))
    dx, dy = np.diff(xq, prepend=0), np.diff(yq, prepend=0)
    new_run = np.ones(t.size, bool)
    new_run[1:] = (name[1:] != name[:-1]) | (t[1:] != t[:-1] + 1)
    new_run |= (np.abs(dx) > 32767) | (np.abs(dy) > 32767)
    if np.any((name[1:] == name[:-1]) & (t[1:] == t[:-1])):
        raise TraceError("a vehicle appears twice in the same second")
    run = np.cumsum(new_run) - 1
    starts = np.flatnonzero(new_run)
    run_t0 = t[starts]
    # trace vehicles in order of first appearance (ties: by source vehicle)
    first_order = np.lexsort((name[starts], run_t0))
    rank = np.empty_like(first_order)
    rank[first_order] = np.arange(first_order.size)
    vid = rank[run]
    order = np.lexsort((t, vid))  # vehicle-major by trace vehicle number
    t, vid, xq, yq, vq, hq = (a[order] for a in (t, vid, xq, yq, vq, hq))
    first = np.ones(t.size, bool)
    first[1:] = vid[1:] != vid[:-1]
    lengths = np.diff(np.append(np.flatnonzero(first), t.size))
    dx, dy = np.diff(xq, prepend=0), np.diff(yq, prepend=0)
    dx[first], dy[first] = 0, 0
    if sites_xy is None:
        sites = np.zeros((0, 2))
    else:
        sites = np.asarray(sites_xy, np.float64).reshape(-1, 2) - np.asarray(origin)
    if roads is None:
        segs = np.zeros((0, 2, 2))
    else:
        segs = np.asarray(roads, np.float64).reshape(-1, 2, 2) - np.asarray(origin)
    return {
        "format": np.array(FORMAT),
        "dt_s": np.array(1.0),
        "size_m": np.array([float(size[0]), float(size[1])]),
        "origin": np.array([float(origin[0]), float(origin[1])]),
        "veh_t0": t[first].astype(np.int32),
        "veh_len": lengths.astype(np.int32),
        "x0_cm": xq[first].astype(np.int32),
        "y0_cm": yq[first].astype(np.int32),
        "dx_cm": dx.astype(np.int16),
        "dy_cm": dy.astype(np.int16),
        "speed_cms": vq.astype(np.uint16),
        "heading_cdeg": hq.astype(np.uint16),
        "roads": segs.astype(np.float32),
        "sites_xy": sites.astype(np.float32),
    }


def save_trace(path: str | Path, arrays: dict[str, np.ndarray]) -> Path:
    """Write the arrays of :func:`build_arrays` as a compressed ``.npz``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "wb") as fh:
        np.savez_compressed(fh, **arrays)
    return path


# --------------------------------------------------------------------------- loading


def resolve_path(trace_file: str) -> Path:
    """``trace_file`` as given (absolute, or relative to the working directory) if that file
    exists, else relative to the shipped traces (``envs/scenarios/traces``)."""
    given = Path(trace_file).expanduser()
    if given.is_file() or given.is_absolute():
        return given
    shipped = SHIPPED_DIR / trace_file
    return shipped if shipped.is_file() else given


def load_trace(trace_file: str | Path) -> Trace:
    """The trace in ``trace_file`` (see :func:`resolve_path`), cached per file and version.
    Raises :class:`TraceError` when it is missing or not a trace."""
    path = resolve_path(str(trace_file))
    if not path.is_file():
        raise TraceError(
            f"trace file {trace_file} not found (looked in the working directory and "
            f"{SHIPPED_DIR}); make one with python -m roadedge.envs.trace_cli"
        )
    stat = path.stat()
    return _load_cached(str(path.resolve()), stat.st_mtime_ns, stat.st_size)


@functools.lru_cache(maxsize=8)
def _load_cached(path: str, _mtime_ns: int, _size: int) -> Trace:
    try:
        with np.load(path, allow_pickle=False) as data:
            arrays = {k: data[k] for k in data.files}
    except Exception as exc:  # zip, pickle or format errors: all mean "not a trace"
        raise TraceError(f"{path} is not a RoadEdge trace (.npz): {exc}") from None
    if "format" not in arrays or str(arrays["format"]) != FORMAT:
        raise TraceError(
            f"{path} is not a RoadEdge trace: no format={FORMAT!r} entry "
            "(make one with python -m roadedge.envs.trace_cli)"
        )
    try:
        return _decode(arrays)
    except (KeyError, ValueError, IndexError) as exc:
        raise TraceError(f"{path} is a damaged RoadEdge trace: {exc}") from None


def _decode(a: dict[str, np.ndarray]) -> Trace:
    t0 = a["veh_t0"].astype(np.int64)
    length = a["veh_len"].astype(np.int64)
    n_veh, n_entries = t0.size, int(length.sum())
    if n_veh == 0 or np.any(length < 1) or a["dx_cm"].size != n_entries:
        raise ValueError("vehicle runs and samples disagree")
    vid = np.repeat(np.arange(n_veh), length)
    start = np.cumsum(length) - length
    step = np.arange(n_entries) - np.repeat(start, length)
    t = np.repeat(t0, length) + step

    def integrate(first, delta):
        c = np.cumsum(delta.astype(np.int64))
        return np.repeat(first.astype(np.int64) - c[start], length) + c

    xq, yq = integrate(a["x0_cm"], a["dx_cm"]), integrate(a["y0_cm"], a["dy_cm"])
    t_last = t0 + length - 1
    n_sec = int(t_last.max()) + 1
    order = np.lexsort((vid, t))  # time-major, by vehicle number within a second
    heading = a["heading_cdeg"].astype(np.float64)[order] / HEADING_SCALE
    offsets = np.zeros(n_sec + 1, np.int64)
    np.cumsum(np.bincount(t, minlength=n_sec), out=offsets[1:])
    lowest = np.full(n_sec + 1, n_veh, np.int64)
    np.minimum.at(lowest, t_last, np.arange(n_veh))
    lowest = np.minimum.accumulate(lowest[::-1])[::-1]
    width, height = (float(v) for v in a["size_m"])
    sites_xy, sites_load = _site_loads(a["sites_xy"], xq / POS_SCALE, yq / POS_SCALE, width, height)
    return Trace(
        dt_s=float(a["dt_s"]),
        offsets=offsets,
        vid=vid[order],
        x=xq[order] / POS_SCALE,
        y=yq[order] / POS_SCALE,
        speed=a["speed_cms"].astype(np.float64)[order] / SPEED_SCALE,
        heading=heading,
        direction=_heading_code(heading),
        t_first=t0,
        t_last=t_last,
        lowest=lowest,
        width_m=width,
        height_m=height,
        origin=a["origin"].astype(np.float64),
        roads=a["roads"].astype(np.float64).reshape(-1, 2, 2),
        sites_xy=sites_xy,
        sites_load=sites_load,
    )


def _site_loads(sites, x, y, width, height):
    """Vehicle-seconds within SITE_RADIUS_M of each site; without sites, the occupied
    SITE_CELL_M cells (centres) and their vehicle-seconds."""
    sites = np.asarray(sites, np.float64).reshape(-1, 2)
    if sites.shape[0] == 0:
        nx = max(int(np.ceil(width / SITE_CELL_M)), 1)
        ny = max(int(np.ceil(height / SITE_CELL_M)), 1)
        cx = np.clip((x // SITE_CELL_M).astype(np.int64), 0, nx - 1)
        cy = np.clip((y // SITE_CELL_M).astype(np.int64), 0, ny - 1)
        counts = np.bincount(cy * nx + cx, minlength=nx * ny)
        cells = np.flatnonzero(counts)
        xy = np.stack([(cells % nx + 0.5) * SITE_CELL_M, (cells // nx + 0.5) * SITE_CELL_M], 1)
        return xy, counts[cells].astype(np.float64)
    # 10 m histogram, then the cells whose centre is within the radius of each site
    cell = 10.0
    nx, ny = int(width // cell) + 1, int(height // cell) + 1
    hist = np.zeros((ny, nx))
    cx = np.clip((x // cell).astype(np.int64), 0, nx - 1)
    cy = np.clip((y // cell).astype(np.int64), 0, ny - 1)
    np.add.at(hist, (cy, cx), 1.0)
    gx, gy = (np.arange(nx) + 0.5) * cell, (np.arange(ny) + 0.5) * cell
    loads = np.empty(sites.shape[0])
    for i, (sx, sy) in enumerate(sites):
        near = ((gx[None, :] - sx) ** 2 + (gy[:, None] - sy) ** 2) <= SITE_RADIUS_M**2
        loads[i] = hist[near].sum()
    return sites, loads


def candidate_sites(tr: Trace) -> tuple[np.ndarray, np.ndarray]:
    """(xy (S, 2), load (S,)) of the candidate RSU sites."""
    return tr.sites_xy, tr.sites_load


# --------------------------------------------------------------------------- layout


def rsu_positions(tr: Trace, count: int) -> np.ndarray:
    """RSUs at the busiest sites, spread out (MODEL.md §3.2): sites by load (descending,
    ties by index); a site is taken when it is at least ``SPACING * sqrt(W * H / count)``
    from every site taken so far; if that leaves fewer than ``count``, the next sites by
    load fill up."""
    xy, load = candidate_sites(tr)
    if count == 0:
        return np.zeros((0, 2))
    order = np.argsort(-load, kind="stable")
    spacing = SPACING * np.sqrt(tr.width_m * tr.height_m / count)
    taken: list[int] = []
    for i in order:
        if len(taken) == count:
            break
        if all(np.hypot(*(xy[i] - xy[j])) >= spacing for j in taken):
            taken.append(int(i))
    for i in order:
        if len(taken) == count:
            break
        if int(i) not in taken:
            taken.append(int(i))
    return xy[taken].copy()


def uav_positions(tr: Trace, cells: np.ndarray) -> np.ndarray:
    """UAVs over the centres of a k x k grid of the map rectangle, ``cells`` from
    :func:`.layout.grid_cells`."""
    if len(cells) == 0:
        return np.zeros((0, 2))
    k = int(np.ceil(np.sqrt(len(cells))))
    return np.stack(
        [(cells[:, 0] + 0.5) * tr.width_m / k, (cells[:, 1] + 0.5) * tr.height_m / k], axis=1
    )


def gabriel_links(xy: np.ndarray) -> np.ndarray:
    """(R, R) bool: i and j are linked when no other point lies in the disc with diameter
    ij (the Gabriel graph: connected, planar, links between near neighbours)."""
    n = len(xy)
    d2 = ((xy[:, None, :] - xy[None, :, :]) ** 2).sum(-1)
    adjacent = np.zeros((n, n), dtype=bool)
    for i in range(n):
        for j in range(i + 1, n):
            # k inside the disc on ij  <=>  d(i,k)^2 + d(j,k)^2 < d(i,j)^2
            others = np.ones(n, bool)
            others[[i, j]] = False
            if not np.any(d2[i, others] + d2[j, others] < d2[i, j]):
                adjacent[i, j] = adjacent[j, i] = True
    return adjacent


# --------------------------------------------------------------------------- replay


@njit(cache=True)
def window_start(key, n_starts):
    """First trace second of the episode with key ``key``: ``floor(u * n_starts)``."""
    u = uniform_at(key, _ZERO, _S_WINDOW, _ZERO)
    return min(int(u * n_starts), n_starts - 1)


@njit(cache=True)
def _replay_kernel(
    initial, veh_active, veh_tasks, veh_serial, veh_spawned, veh_x, veh_y, veh_dir, veh_speed,
    veh_new, veh_wants_session, veh_serving, key, tick,
    offsets, vid, tx, ty, tspeed, tdir, t_first, t_last, lowest, n_starts, row_of,
):  # fmt: skip
    B, V = veh_x.shape
    n_sec = offsets.shape[0] - 1
    for b in range(B):
        if initial and tick[b] != 0:
            continue  # reset places only the environments being reset (tick 0)
        s0 = window_start(key[b], n_starts)
        s = s0 + int(tick[b]) + (0 if initial else 1)
        lo = lowest[s0]
        for v in range(V):  # leave at the end of the run; index the others by trace vehicle
            if veh_active[b, v]:
                i = lo + int(veh_serial[b, v])
                if t_last[i] < s:
                    veh_active[b, v] = False
                else:
                    row_of[i] = v
        free = 0
        if s < n_sec:
            for e in range(offsets[s], offsets[s + 1]):
                i = vid[e]
                v = row_of[i]
                if v < 0:
                    if not (initial or t_first[i] == s):
                        continue  # lost when it entered (no free row): lost for its run
                    while free < V and (veh_active[b, free] or veh_tasks[b, free] != 0):
                        free += 1
                    if free == V:
                        continue
                    v = free
                    serial = np.uint64(i - lo)
                    veh_serial[b, v] = serial
                    if veh_spawned[b] < serial + np.uint64(1):
                        veh_spawned[b] = serial + np.uint64(1)
                    veh_active[b, v] = True
                    veh_new[b, v] = True  # its entry session draw is due
                    veh_wants_session[b, v] = False
                    veh_serving[b, v] = -1
                    row_of[i] = v
                veh_x[b, v] = tx[e]
                veh_y[b, v] = ty[e]
                veh_speed[b, v] = tspeed[e]
                veh_dir[b, v] = tdir[e]
        for v in range(V):  # leave the scratch index empty for the next environment
            if veh_active[b, v]:
                row_of[lo + int(veh_serial[b, v])] = -1


def replay_args(cfg) -> tuple:
    """The trace arrays the kernel takes, and its scratch index (all -1 between calls)."""
    tr = load_trace(cfg.map.trace_file)
    n_starts = tr.n_seconds - cfg.horizon
    row_of = np.full(tr.n_vehicles, -1, np.int64)
    return (
        tr.offsets, tr.vid, tr.x, tr.y, tr.speed, tr.direction, tr.t_first, tr.t_last,
        tr.lowest, n_starts, row_of,
    )  # fmt: skip


def replay(world, cfg, initial: bool) -> None:
    """Set every environment's vehicles to the trace's at its current second (``initial``:
    the window's first second, only in environments at tick 0; otherwise the next second,
    as the tick that is being computed ends)."""
    w = world
    args = w.bound("trace", (cfg,), lambda: (
        w.veh_active, w.veh_tasks, w.veh_serial, w.veh_spawned, w.veh_x, w.veh_y, w.veh_dir,
        w.veh_speed, w.veh_new, w.veh_wants_session, w.veh_serving, w.key, w.tick,
        *replay_args(cfg),
    ))  # fmt: skip
    _replay_kernel(initial, *args)


def episode_start(cfg, key) -> int:
    """The window start ``s0`` of the episode with key ``key`` (a trace second)."""
    tr = load_trace(cfg.map.trace_file)
    return int(window_start(np.uint64(key), tr.n_seconds - cfg.horizon))
