"""Typed, validated scenario configuration.

Every knob of the simulation lives in one frozen dataclass tree rooted at
:class:`ScenarioConfig`. Each numeric field declares its allowed range in its
metadata, so a typo (``vehicles.max_vehicle``) or an out-of-range value
(``migration.cooldown_s=-1``) fails loudly with an error naming the dotted key
and what is allowed. Defaults are taken from the source documents (seeds):

* seed 000 (migration manager): overload thresholds 0.8 (RSU) / 0.7 (UAV),
  battery threshold 0.2, cooldown 10 s, backhaul 100 Mbps, cost weights
  0.4/0.3/0.3, keep-before-break phases 70/25/5 %, at most 3 tasks per
  migration, EWMA alpha 0.1.
* seed 001 (failover coordinator): 3 reassignment attempts, reliability
  threshold 0.8, priorities high/medium/low = 8/5/2, 300 s failure cooldown,
  2 backups per task.

Presets live in ``envs/scenarios/*.yaml`` as overrides of these defaults.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, ClassVar, get_type_hints

SCENARIO_DIR = Path(__file__).resolve().parent.parent / "scenarios"


class ConfigError(ValueError):
    """A scenario configuration key is unknown or its value is out of range."""


def _f(default: Any, lo: float | None = None, hi: float | None = None, doc: str = ""):
    """A dataclass field with an inclusive allowed range ``[lo, hi]``."""
    return field(default=default, metadata={"lo": lo, "hi": hi, "doc": doc})


def _nested(factory):
    return field(default_factory=factory)


class _Section:
    """Mixin: range validation on construction and dict round-trips."""

    def __post_init__(self) -> None:
        hints = get_type_hints(type(self))
        for f in fields(self):  # type: ignore[arg-type]
            value = getattr(self, f.name)
            typ = hints[f.name]
            if dataclasses.is_dataclass(typ):
                continue
            _check_value(f"{self._prefix()}{f.name}", value, typ, f.metadata)

    def _prefix(self) -> str:
        key = getattr(type(self), "SECTION", "")
        return f"{key}." if key else ""

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for f in fields(self):  # type: ignore[arg-type]
            value = getattr(self, f.name)
            out[f.name] = value.to_dict() if isinstance(value, _Section) else _plain(value)
        return out


def _plain(value: Any) -> Any:
    if isinstance(value, tuple):
        return [_plain(v) for v in value]
    return value


def _check_value(key: str, value: Any, typ: Any, meta: Mapping[str, Any]) -> None:
    lo, hi = meta.get("lo"), meta.get("hi")
    if typ is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"{key} must be true or false, got {value!r}")
        return
    if typ is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"{key} must be an integer, got {value!r}")
    elif typ is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(f"{key} must be a number, got {value!r}")
        if not math.isfinite(value):
            raise ConfigError(f"{key} must be finite, got {value!r}")
    elif typ is str:
        if not isinstance(value, str):
            raise ConfigError(f"{key} must be a string, got {value!r}")
        return
    else:  # tuple[float, ...]
        if not isinstance(value, tuple) or not all(
            isinstance(v, (int, float)) and not isinstance(v, bool) for v in value
        ):
            raise ConfigError(f"{key} must be a list of numbers, got {value!r}")
        for i, v in enumerate(value):
            _check_value(f"{key}[{i}]", v, float, meta)
        return
    if (lo is not None and value < lo) or (hi is not None and value > hi):
        raise ConfigError(f"{key}={value!r} is out of range: allowed [{lo}, {hi}]")


# --------------------------------------------------------------------------- sections


MAP_KINDS = ("grid", "highway", "trace")


@dataclass(frozen=True)
class MapConfig(_Section):
    """The road network, by ``kind``:

    * ``grid``: a Manhattan grid of ``grid_blocks`` x ``grid_blocks`` blocks;
    * ``highway``: a straight road along x of ``highway_length_m`` with
      ``lanes_per_direction`` lanes each way (3GPP TR 37.885 highway scenario);
    * ``trace``: recorded vehicle positions replayed from ``trace_file`` (e.g. a SUMO
      run converted by ``roadedge-trace``), a window of ``horizon`` ticks per episode.

    The fields of the other kind are ignored.
    """

    SECTION: ClassVar[str] = "map"

    kind: str = _f("grid", doc="road network: grid | highway | trace")
    grid_blocks: int = _f(4, 1, 64, "grid: blocks per side; roads run on the block edges")
    block_m: float = _f(250.0, 20.0, 5000.0, "grid: block side length [m]")
    highway_length_m: float = _f(5000.0, 100.0, 1e6, "highway: road length along x [m]")
    lanes_per_direction: int = _f(3, 1, 8, "highway: lanes in each direction")
    lane_width_m: float = _f(3.5, 2.5, 5.0, "highway: lane width [m]")
    trace_file: str = _f(
        "",
        doc="trace: the .npz trace (as given, else relative to envs/scenarios/traces)",
    )

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.kind not in MAP_KINDS:
            raise ConfigError(f"map.kind must be one of {list(MAP_KINDS)}, got {self.kind!r}")

    @property
    def road_width_m(self) -> float:
        """Highway: both carriageways, ``2 * lanes_per_direction * lane_width_m`` [m]."""
        return 2 * self.lanes_per_direction * self.lane_width_m


@dataclass(frozen=True)
class RSUConfig(_Section):
    """Roadside units on a regular k x k grid over the map (k = ceil(sqrt(count))),
    each moved onto the nearest horizontal road."""

    SECTION: ClassVar[str] = "rsu"

    count: int = _f(9, 0, 1024)
    cpu_ghz: float = _f(20.0, 0.1, 1000.0, "CPU capacity [GHz = 1e9 cycles/s]")
    max_jobs: int = _f(8, 1, 256, "concurrent task slots")
    coverage_m: float = _f(350.0, 1.0, 1e5, "radio coverage radius [m]")
    height_m: float = _f(10.0, 0.0, 500.0, "antenna height [m]")
    tx_power_dbm: float = _f(33.0, -30.0, 60.0, "transmit power [dBm]")
    services_per_node: int = _f(3, 1, 64, "service types each RSU can run")


@dataclass(frozen=True)
class UAVConfig(_Section):
    """Battery-powered UAVs hovering on a regular k x k grid over the map."""

    SECTION: ClassVar[str] = "uav"

    count: int = _f(4, 0, 1024)
    cpu_ghz: float = _f(8.0, 0.1, 1000.0, "CPU capacity [GHz]")
    max_jobs: int = _f(4, 1, 256, "concurrent task slots")
    coverage_m: float = _f(450.0, 1.0, 1e5, "radio coverage radius (ground distance) [m]")
    altitude_m: float = _f(100.0, 1.0, 5000.0, "hover altitude [m]")
    tx_power_dbm: float = _f(30.0, -30.0, 60.0, "transmit power [dBm]")
    services_per_node: int = _f(2, 1, 64, "service types each UAV can run")
    battery_wh: float = _f(60.0, 0.1, 1e5, "battery capacity [Wh]")
    hover_power_w: float = _f(150.0, 0.0, 1e5, "hover power draw [W]")
    compute_power_w: float = _f(50.0, 0.0, 1e5, "extra draw at full CPU utilisation [W]")
    return_battery_fraction: float = _f(0.1, 0.0, 0.99, "UAV leaves to recharge below this")
    recharge_s: float = _f(120.0, 0.0, 1e6, "time away recharging (node down) [s]")
    initial_battery_min_fraction: float = _f(0.3, 0.0, 1.0, "reset battery ~ U[this, 1]")


@dataclass(frozen=True)
class VehicleConfig(_Section):
    SECTION: ClassVar[str] = "vehicles"

    max_vehicles: int = _f(100, 1, 1_000_000, "row capacity (padded, masked)")
    initial_vehicles: int = _f(60, 0, 1_000_000, "vehicles on the map at reset")
    arrival_rate_hz: float = _f(1.2, 0.0, 1e6, "Poisson entries at the map boundary [1/s]")
    speed_min_mps: float = _f(8.0, 0.0, 100.0, "[m/s]")
    speed_max_mps: float = _f(16.0, 0.0, 100.0, "[m/s]")
    turn_probability: float = _f(0.5, 0.0, 1.0, "P(turn left or right) at an intersection")


@dataclass(frozen=True)
class TaskConfig(_Section):
    SECTION: ClassVar[str] = "tasks"

    rate_per_vehicle_hz: float = _f(
        0.01,
        0.0,
        50.0,
        "Poisson task arrivals per vehicle: background load (rate * dt <= 0.5) [1/s]",
    )
    n_services: int = _f(4, 1, 64, "service types")
    work_gcycles_min: float = _f(20.0, 0.001, 1e6, "[1e9 CPU cycles]")
    work_gcycles_max: float = _f(80.0, 0.001, 1e6, "[1e9 CPU cycles]")
    input_mb_min: float = _f(1.0, 0.0, 1e5, "input uploaded at dispatch [MB]")
    input_mb_max: float = _f(5.0, 0.0, 1e5, "[MB]")
    state_mb_min: float = _f(5.0, 0.0, 1e5, "migratable state [MB]")
    state_mb_max: float = _f(50.0, 0.0, 1e5, "[MB]")
    deadline_s_min: float = _f(40.0, 0.1, 1e6, "relative deadline [s]")
    deadline_s_max: float = _f(80.0, 0.1, 1e6, "[s]")
    priority_probs: tuple[float, ...] = _f((0.2, 0.5, 0.3), 0.0, 1.0, "P(high, medium, low)")
    max_tasks: int = _f(256, 1, 10_000_000, "task row capacity; arrivals beyond it are dropped")
    dispatch_load_weight: float = _f(1.0, 0.0, 1e3, "dispatch score: x slot load (0 = nearest)")
    dispatch_distance_weight_per_km: float = _f(0.5, 0.0, 1e3, "dispatch score: x distance [1/km]")
    dispatch_affinity_bonus: float = _f(0.3, 0.0, 1e3, "dispatch score: minus, if serving vehicle")


@dataclass(frozen=True)
class SessionConfig(_Section):
    """Long-lived per-vehicle service sessions: the workload that migrates.

    A session is a vehicle's service instance (seed 000's session keep-alive,
    seed 004's session affinity), hosted on one node at a time and charged
    every tick the latency its vehicle sees. It ends when its vehicle leaves
    the map, or after a drawn duration when ``mean_duration_s > 0``.
    """

    SECTION: ClassVar[str] = "sessions"

    vehicle_share: float = _f(0.5, 0.0, 1.0, "P(a vehicle starts a session when it enters)")
    start_rate_hz: float = _f(
        0.0, 0.0, 10.0, "Poisson session starts per vehicle without one, after entry [1/s]"
    )
    mean_duration_s: float = _f(
        0.0, 0.0, 1e9, "exponential session duration (0: until the vehicle leaves) [s]"
    )
    state_mb_min: float = _f(10.0, 0.0, 1e5, "migratable session state [MB]")
    state_mb_max: float = _f(50.0, 0.0, 1e5, "[MB]")
    setup_mb: float = _f(2.0, 0.0, 1e5, "uploaded to start a session (or restart it) [MB]")
    request_rate_hz: float = _f(
        3.0, 0.0, 1e4, "requests a session sends per second, each charged its latency [1/s]"
    )


@dataclass(frozen=True)
class RadioConfig(_Section):
    SECTION: ClassVar[str] = "radio"

    bandwidth_mhz: float = _f(20.0, 0.01, 1e4, "access-link bandwidth [MHz]")
    noise_dbm: float = _f(-101.0, -200.0, 0.0, "noise power over the bandwidth [dBm]")
    pathloss_ref_db: float = _f(38.0, 0.0, 200.0, "path loss at 1 m [dB]")
    pathloss_exponent: float = _f(2.8, 1.5, 6.0, "log-distance exponent")
    interference_factor: float = _f(0.05, 0.0, 1.0, "share of other nodes' power as interference")
    request_mb: float = _f(0.1, 0.0, 1e4, "per-tick request/response exchanged [MB]")
    hop_latency_ms: float = _f(5.0, 0.0, 1e4, "per backhaul hop, switching + propagation [ms]")
    compute_request_gcycles: float = _f(0.05, 0.0, 1e4, "per-request compute [1e9 cycles]")
    out_of_coverage_ms: float = _f(
        0.0, 0.0, 1e6, "network latency charged while no node is in range (0: none) [ms]"
    )


RETRY_POLICIES = ("none", "next_peer")


@dataclass(frozen=True)
class MigrationConfig(_Section):
    SECTION: ClassVar[str] = "migration"

    rsu_overload_threshold: float = _f(0.8, 0.0, 1.0, "seed 000")
    uav_overload_threshold: float = _f(0.7, 0.0, 1.0, "seed 000")
    battery_threshold: float = _f(0.2, 0.0, 1.0, "seed 000: low-battery trigger (fraction)")
    dynamic_threshold_load: float = _f(0.7, 0.0, 1.0, "mean RSU load above which ...")
    dynamic_threshold_factor: float = _f(0.9, 0.0, 1.0, "... thresholds are scaled by this")
    mobility_trigger_fraction: float = _f(
        0.5, 0.0, 1.0, "share of hosted tasks whose vehicle is attached elsewhere"
    )
    congestion_hops: float = _f(2.0, 0.0, 1e3, "mean access->host hops above which: congested")
    cooldown_s: float = _f(10.0, 0.0, 1e6, "seed 000: per-node cooldown after a migration [s]")
    backhaul_mbps: float = _f(100.0, 0.001, 1e6, "seed 000: migration bandwidth [Mbps]")
    parallel_factor: float = _f(0.5, 0.0, 1.0, "seed 000: parallel-transfer factor")
    alpha_comp: float = _f(0.4, 0.0, 10.0, "seed 000 cost weight")
    alpha_tx: float = _f(0.3, 0.0, 10.0, "seed 000 cost weight")
    alpha_lat: float = _f(0.3, 0.0, 10.0, "seed 000 cost weight")
    state_mb_ref: float = _f(10.0, 1e-6, 1e6, "state size that costs 1 unit of computation [MB]")
    prepare_fraction: float = _f(0.70, 0.0, 1.0, "seed 000 keep-before-break")
    sync_fraction: float = _f(0.25, 0.0, 1.0, "seed 000 keep-before-break")
    switch_fraction: float = _f(0.05, 0.0, 1.0, "seed 000 keep-before-break (downtime)")
    max_tasks_per_migration: int = _f(3, 1, 1024, "seed 000")
    success_base: float = _f(0.9, 0.0, 1.0, "seed 000 success probability")
    success_distance_m: float = _f(10000.0, 1.0, 1e9, "seed 000 distance scale [m]")
    success_distance_cap: float = _f(0.3, 0.0, 1.0, "seed 000")
    success_load_weight: float = _f(0.1, 0.0, 1.0, "seed 000")
    success_urgency_weight: float = _f(0.05, 0.0, 1.0, "seed 000")
    ewma_alpha: float = _f(0.1, 0.0, 1.0, "seed 000 moving-average cost")
    rsu_capacity_weight: float = _f(0.7, 0.0, 1.0, "seed 000 target score RSU->RSU")
    uav_capacity_weight: float = _f(0.8, 0.0, 1.0, "seed 000 target score UAV->RSU")
    distance_scale_m: float = _f(1000.0, 1e-6, 1e9, "seed 000 target distance score scale")
    retry_policy: str = _f(
        "next_peer",
        doc="seed 003: after a failed or cancelled migration, none | next_peer (retry the "
        "rows on the next-best untried target by the seed 000 score, with backoff)",
    )
    max_attempts: int = _f(
        3, 1, 1000, "seed 003: migration attempts per chain, the original included (next_peer)"
    )

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.retry_policy not in RETRY_POLICIES:
            raise ConfigError(
                f"migration.retry_policy must be one of {list(RETRY_POLICIES)}, "
                f"got {self.retry_policy!r}"
            )


@dataclass(frozen=True)
class FaultConfig(_Section):
    SECTION: ClassVar[str] = "faults"

    rsu_mttf_s: float = _f(20000.0, 1.0, 1e12, "mean time to failure of an RSU [s]")
    uav_mttf_s: float = _f(10000.0, 1.0, 1e12, "[s]")
    mttr_s: float = _f(60.0, 1.0, 1e12, "mean time to repair [s]")
    heartbeat_interval_s: float = _f(1.0, 1e-3, 1e6, "seed 001/002 [s]")
    heartbeat_misses: int = _f(3, 1, 1000, "missed heartbeats before a node is declared down")
    max_reassignment_attempts: int = _f(3, 1, 1000, "seed 001")
    orphan_timeout_s: float = _f(10.0, 0.0, 1e6, "orphaned tasks not failed over by then drop [s]")
    replication: bool = _f(True, doc="keep periodic replicas of task progress")
    replica_interval_s: float = _f(5.0, 1e-3, 1e6, "checkpoint period [s]")
    failure_cooldown_s: float = _f(300.0, 0.0, 1e9, "seed 001 [s]")
    reliability_threshold: float = _f(0.8, 0.0, 1.0, "seed 001")
    backup_count: int = _f(2, 0, 64, "seed 001 backups per task (backup policy)")
    priority_high: int = _f(8, 1, 100, "seed 001")
    priority_medium: int = _f(5, 1, 100, "seed 001")
    priority_low: int = _f(2, 1, 100, "seed 001")
    controller_outages: bool = _f(
        False, doc="seed 003: the controller (Raft-like leader) fails and is re-elected"
    )
    controller_mttf_s: float = _f(
        86400.0, 1.0, 1e12, "controller mean time to failure (exponential) [s]"
    )
    controller_mttr_s: float = _f(
        10.0, 0.0, 1e12, "controller mean time to restart after a crash (exponential) [s]"
    )
    election_delay_s: float = _f(
        15.0, 0.0, 1e6, "leader election after the restart, before decisions count again [s]"
    )


@dataclass(frozen=True)
class RewardConfig(_Section):
    """Weights of the named reward terms (reward = completion - sum(w * term))."""

    SECTION: ClassVar[str] = "reward"

    completion: float = _f(1.0, 0.0, 1e6, "per completed task (x priority/5)")
    latency: float = _f(0.5, 0.0, 1e6, "per second of summed task latency")
    deadline_miss: float = _f(1.0, 0.0, 1e6, "per missed task (x priority/5)")
    drop: float = _f(2.0, 0.0, 1e6, "per dropped task (x priority/5)")
    migration_cost: float = _f(0.05, 0.0, 1e6, "per unit of seed-000 migration cost")
    downtime: float = _f(0.5, 0.0, 1e6, "per second of task downtime")
    uav_energy: float = _f(0.01, 0.0, 1e6, "per kJ drawn by UAVs")


@dataclass(frozen=True)
class ScenarioConfig(_Section):
    name: str = _f("city")
    dt_s: float = _f(1.0, 0.01, 60.0, "controller tick [s]")
    horizon: int = _f(300, 1, 10_000_000, "ticks per episode (truncation)")
    map: MapConfig = _nested(MapConfig)
    rsu: RSUConfig = _nested(RSUConfig)
    uav: UAVConfig = _nested(UAVConfig)
    vehicles: VehicleConfig = _nested(VehicleConfig)
    tasks: TaskConfig = _nested(TaskConfig)
    sessions: SessionConfig = _nested(SessionConfig)
    radio: RadioConfig = _nested(RadioConfig)
    migration: MigrationConfig = _nested(MigrationConfig)
    faults: FaultConfig = _nested(FaultConfig)
    reward: RewardConfig = _nested(RewardConfig)

    def __post_init__(self) -> None:
        super().__post_init__()
        _check_consistency(self)

    @property
    def n_nodes(self) -> int:
        return self.rsu.count + self.uav.count

    # -- construction ----------------------------------------------------------

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ScenarioConfig:
        return _build(cls, data, "")

    def replace(self, overrides: Mapping[str, Any]) -> ScenarioConfig:
        """A copy with nested ``overrides`` (dicts, dotted or ``__`` keys) applied."""
        merged = _merge(self.to_dict(), normalize_overrides(overrides), "")
        return ScenarioConfig.from_dict(merged)


def _check_consistency(cfg: ScenarioConfig) -> None:
    """Cross-field rules that one field's range cannot express."""
    if cfg.n_nodes < 2:
        raise ConfigError("rsu.count + uav.count must be at least 2 (migration needs a target)")
    pairs = [
        ("vehicles.speed_min_mps", "vehicles.speed_max_mps"),
        ("tasks.work_gcycles_min", "tasks.work_gcycles_max"),
        ("tasks.input_mb_min", "tasks.input_mb_max"),
        ("tasks.state_mb_min", "tasks.state_mb_max"),
        ("tasks.deadline_s_min", "tasks.deadline_s_max"),
        ("sessions.state_mb_min", "sessions.state_mb_max"),
    ]
    for lo_key, hi_key in pairs:
        if _get(cfg, lo_key) > _get(cfg, hi_key):
            raise ConfigError(f"{lo_key} must not exceed {hi_key}")
    if cfg.tasks.rate_per_vehicle_hz * cfg.dt_s > 0.5:
        raise ConfigError(
            "tasks.rate_per_vehicle_hz * dt_s must be at most 0.5 (arrivals per vehicle and "
            f"tick are drawn up to 4), got {cfg.tasks.rate_per_vehicle_hz * cfg.dt_s:g}"
        )
    if cfg.sessions.start_rate_hz * cfg.dt_s > 1.0:
        raise ConfigError(
            "sessions.start_rate_hz * dt_s must be at most 1 (at most one start per vehicle "
            f"and tick), got {cfg.sessions.start_rate_hz * cfg.dt_s:g}"
        )
    if cfg.vehicles.initial_vehicles > cfg.vehicles.max_vehicles and cfg.map.kind != "trace":
        raise ConfigError("vehicles.initial_vehicles must not exceed vehicles.max_vehicles")
    phases = cfg.migration.prepare_fraction + cfg.migration.sync_fraction
    phases += cfg.migration.switch_fraction
    if abs(phases - 1.0) > 1e-9:
        raise ConfigError(
            "migration.prepare_fraction + sync_fraction + switch_fraction must sum to 1, "
            f"got {phases}"
        )
    if len(cfg.tasks.priority_probs) != 3 or abs(sum(cfg.tasks.priority_probs) - 1.0) > 1e-6:
        raise ConfigError("tasks.priority_probs must be three probabilities summing to 1")
    for node, sect in (("rsu", cfg.rsu), ("uav", cfg.uav)):
        if sect.services_per_node > cfg.tasks.n_services:
            raise ConfigError(f"{node}.services_per_node must not exceed tasks.n_services")
    if cfg.map.kind == "grid":
        _check_grid(cfg)
    elif cfg.map.kind == "highway":
        _check_highway(cfg)
    else:
        _check_trace(cfg)


def _check_grid(cfg: ScenarioConfig) -> None:
    if cfg.vehicles.speed_max_mps * cfg.dt_s >= cfg.map.block_m:
        raise ConfigError(
            "vehicles.speed_max_mps * dt_s must be below map.block_m "
            "(a vehicle crosses at most one intersection per tick)"
        )
    blocks = cfg.map.grid_blocks
    if cfg.rsu.count > (blocks + 1) ** 2:
        raise ConfigError(
            f"map.grid_blocks={blocks} is too small for rsu.count={cfg.rsu.count}: a "
            f"{blocks}x{blocks} grid has {(blocks + 1) ** 2} intersections and rsu.count must "
            "not exceed them (raise map.grid_blocks or lower rsu.count)"
        )
    if cfg.uav.count > blocks**2:
        raise ConfigError(
            f"map.grid_blocks={blocks} is too small for uav.count={cfg.uav.count}: a "
            f"{blocks}x{blocks} grid has {blocks**2} blocks and uav.count must not exceed them "
            "(raise map.grid_blocks or lower uav.count)"
        )


HIGHWAY_MIN_SPACING_M = 10.0


def _check_highway(cfg: ScenarioConfig) -> None:
    length = cfg.map.highway_length_m
    if cfg.vehicles.speed_max_mps * cfg.dt_s >= length:
        raise ConfigError(
            "vehicles.speed_max_mps * dt_s must be below map.highway_length_m "
            "(an entering vehicle must be on the road for at least one tick)"
        )
    for node, count in (("rsu", cfg.rsu.count), ("uav", cfg.uav.count)):
        if count * HIGHWAY_MIN_SPACING_M > length:
            raise ConfigError(
                f"{node}.count must not exceed map.highway_length_m / {HIGHWAY_MIN_SPACING_M:g} "
                f"(nodes are spaced evenly along the highway, at least "
                f"{HIGHWAY_MIN_SPACING_M:g} m apart), got {count} on {length:g} m"
            )


def _check_trace(cfg: ScenarioConfig) -> None:
    from .trace import TraceError, load_trace

    if not cfg.map.trace_file:
        raise ConfigError("map.trace_file must name a trace (.npz) when map.kind is trace")
    try:
        tr = load_trace(cfg.map.trace_file)
    except TraceError as exc:
        raise ConfigError(f"map.trace_file: {exc}") from None
    if abs(cfg.dt_s - tr.dt_s) > 1e-9:
        raise ConfigError(
            f"dt_s must equal the trace's sample period {tr.dt_s:g} s when map.kind is trace, "
            f"got {cfg.dt_s:g}"
        )
    if cfg.horizon >= tr.n_seconds:
        raise ConfigError(
            f"horizon={cfg.horizon} is too long for the trace {cfg.map.trace_file}: an episode "
            f"replays horizon + 1 seconds and the trace has {tr.n_seconds}"
        )
    n_sites = len(tr.sites_xy)
    if cfg.rsu.count > n_sites:
        raise ConfigError(
            f"rsu.count={cfg.rsu.count} exceeds the {n_sites} candidate RSU sites of the trace "
            f"{cfg.map.trace_file} (its junctions)"
        )


def _get(cfg: Any, dotted: str) -> Any:
    for part in dotted.split("."):
        cfg = getattr(cfg, part)
    return cfg


def _build(cls: type, data: Mapping[str, Any], prefix: str) -> Any:
    if not isinstance(data, Mapping):
        raise ConfigError(f"{prefix.rstrip('.') or 'config'} must be a mapping, got {data!r}")
    hints = get_type_hints(cls)
    names = {f.name for f in fields(cls)}
    unknown = sorted(set(data) - names)
    if unknown:
        where = prefix.rstrip(".") or "the scenario"
        raise ConfigError(
            f"unknown config key {prefix}{unknown[0]!s} (allowed in {where}: {sorted(names)})"
        )
    kwargs: dict[str, Any] = {}
    for name, value in data.items():
        typ = hints[name]
        if dataclasses.is_dataclass(typ):
            kwargs[name] = _build(typ, value, f"{prefix}{name}.")
        elif typ is float and isinstance(value, int) and not isinstance(value, bool):
            kwargs[name] = float(value)
        elif isinstance(value, list):
            kwargs[name] = tuple(value)
        else:
            kwargs[name] = value
    try:
        return cls(**kwargs)
    except TypeError as exc:  # pragma: no cover - guarded by the unknown-key check
        raise ConfigError(str(exc)) from exc


def normalize_overrides(overrides: Mapping[str, Any]) -> dict[str, Any]:
    """Turn ``{"vehicles.max_vehicles": 5, "rsu__count": 3}`` into nested dicts."""
    nested: dict[str, Any] = {}
    for key, value in overrides.items():
        parts = key.replace("__", ".").split(".")
        node = nested
        for part in parts[:-1]:
            node = node.setdefault(part, {})
            if not isinstance(node, dict):
                raise ConfigError(f"override {key} conflicts with a scalar at {part}")
        leaf = parts[-1]
        if isinstance(value, Mapping):
            value = normalize_overrides(value)
            existing = node.get(leaf, {})
            if isinstance(existing, dict):
                value = {**existing, **value}
        node[leaf] = value
    return nested


def _merge(base: dict[str, Any], over: Mapping[str, Any], prefix: str) -> dict[str, Any]:
    out = dict(base)
    for key, value in over.items():
        if key not in base:
            where = prefix.rstrip(".") or "the scenario"
            raise ConfigError(
                f"unknown config key {prefix}{key} (allowed in {where}: {sorted(base)})"
            )
        if isinstance(base[key], dict):
            if not isinstance(value, Mapping):
                raise ConfigError(f"{prefix}{key} is a section; give a mapping, got {value!r}")
            out[key] = _merge(base[key], value, f"{prefix}{key}.")
        else:
            out[key] = value
    return out


# --------------------------------------------------------------------------- presets


def preset_names() -> list[str]:
    """Names of the shipped scenario presets (``envs/scenarios/*.yaml``)."""
    return sorted(p.stem for p in SCENARIO_DIR.glob("*.yaml"))


def _yaml_loader():
    """A SafeLoader that refuses duplicate keys in a mapping (YAML keeps the last silently)."""
    import yaml

    class _StrictLoader(yaml.SafeLoader):
        def construct_mapping(self, node, deep=False):
            if isinstance(node, yaml.MappingNode):
                seen: dict[Any, Any] = {}
                for key_node, _ in node.value:
                    if key_node.tag == "tag:yaml.org,2002:merge":
                        continue  # ``<<:`` merges may be overridden by explicit keys
                    key = self.construct_object(key_node, deep=deep)
                    try:
                        first = seen.setdefault(key, key_node.start_mark)
                    except TypeError:
                        continue  # unhashable key: the base constructor reports it
                    if first is not key_node.start_mark:
                        raise yaml.constructor.ConstructorError(
                            None,
                            None,
                            f"duplicate key {key!r} (first given on line {first.line + 1})",
                            key_node.start_mark,
                        )
            return super().construct_mapping(node, deep=deep)

    return _StrictLoader


def load_yaml(path: str | Path) -> dict[str, Any]:
    """Parse a scenario file; any problem is a ``ConfigError`` naming the file and line."""
    import yaml

    raw = Path(path).read_bytes()
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = raw.count(b"\n", 0, exc.start) + 1
        raise ConfigError(
            f"{path}:{line}: not UTF-8 text (byte {raw[exc.start]:#04x} at offset {exc.start})"
        ) from None
    try:
        data = yaml.load(text, Loader=_yaml_loader()) or {}  # a SafeLoader
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None) or getattr(exc, "context_mark", None)
        where = f"{path}:{mark.line + 1}" if mark is not None else str(path)
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        context = getattr(exc, "context", None)
        detail = f"{problem} ({context})" if context else problem
        if not problem.startswith("duplicate key"):
            detail = f"malformed YAML: {detail}"
        raise ConfigError(f"{where}: {detail}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: a scenario file must hold a mapping")
    return data


def load_scenario(
    scenario: str | Path | ScenarioConfig = "city", overrides: Mapping[str, Any] | None = None
) -> ScenarioConfig:
    """Resolve a preset name, a YAML path or a config object, then apply overrides.

    A YAML file may name a preset (or another file) to start from with ``base: <preset>``;
    a chain of bases that comes back to a file already in it is a ``ConfigError``.
    """
    cfg = scenario if isinstance(scenario, ScenarioConfig) else _load_file(scenario, ())
    if overrides:
        cfg = cfg.replace(overrides)
    return cfg


def _load_file(scenario: str | Path, chain: tuple[tuple[Path, str], ...]) -> ScenarioConfig:
    """Load a preset or YAML file; ``chain`` holds the files (resolved, as named) that
    named this one as their ``base``."""
    text = str(scenario)
    if text.endswith((".yaml", ".yml")) or Path(text).is_file():
        path = Path(text)
        if not path.is_file():
            raise ConfigError(f"scenario file {text} does not exist")
    elif text in preset_names():
        path = SCENARIO_DIR / f"{text}.yaml"
    else:
        raise ConfigError(
            f"unknown scenario {text!r}: give a preset ({', '.join(preset_names())}) "
            "or a path to a .yaml file"
        )
    resolved = path.resolve()
    if any(resolved == seen for seen, _ in chain):
        names = [name for _, name in chain] + [text]
        raise ConfigError(
            f"scenario base cycle: {' -> '.join(names)} (each file's base: names the next)"
        )
    data = load_yaml(path)
    base_name = data.pop("base", None)
    if base_name is not None and not isinstance(base_name, str):
        raise ConfigError(f"{path}: base must be a preset name or a file path, got {base_name!r}")
    base = _load_file(base_name, (*chain, (resolved, text))) if base_name else ScenarioConfig()
    data.setdefault("name", Path(text).stem)
    return base.replace(data)
