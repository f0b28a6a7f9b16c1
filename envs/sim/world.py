"""The simulation state: struct-of-arrays for a batch of B environments.

Every array has the environment on its leading axis: nodes (B, N), vehicles
(B, V), tasks (B, T). A single environment is a batch of one. Where a
per-environment sum over entities is needed, the code flattens to global
indices (``env * N + node``) and uses ``np.bincount``.
"""

from __future__ import annotations

from dataclasses import dataclass, fields

import numpy as np

# Task lifecycle (``World.task_state``). Terminal outcomes are counted, and the
# row is freed for reuse immediately, so FREE rows hold no live task.
FREE = 0
QUEUED = 1  # generated, waiting for a slot
RUNNING = 2  # hosted on a node (which may have failed unbeknownst to the controller)
ORPHANED = 3  # host declared down; waiting for failover (no slot held)

# Kind of a row of the task table (``World.task_kind``): sessions and tasks share
# the table, the ledger and every invariant; only generation and outcomes differ.
KIND_TASK = 0  # a short compute job: work, deadline; completes, misses or drops
KIND_SESSION = 1  # a vehicle's long-lived service instance: ends with its vehicle, or drops

# Why a node is down (``World.down_cause``).
CAUSE_NONE = 0
CAUSE_FAULT = 1
CAUSE_BATTERY = 2

NO_NODE = -1


@dataclass
class World:
    """All mutable state. Created by :func:`allocate`; rows reset by the simulator."""

    # --- per environment (B,)
    key: np.ndarray  # uint64 episode key (from reset(seed))
    tick: np.ndarray  # uint64 ticks since reset
    time_s: np.ndarray  # float simulated time [s]
    veh_spawned: np.ndarray  # uint64 vehicles that entered this episode (next serial)
    ctrl_up: np.ndarray  # bool: the controller (leader) acts on decisions (seed 003)
    ctrl_down_since_s: np.ndarray  # when the controller last failed [s]
    ctrl_elected_s: np.ndarray  # when its outage ends: restart + leader election [s]
    # --- nodes (B, N)
    node_up: np.ndarray  # bool, the truth
    view_up: np.ndarray  # bool, the controller's belief (heartbeats)
    last_heartbeat_s: np.ndarray  # time of the last heartbeat received [s]
    view_load: np.ndarray  # slot load reported in the last heartbeat [0, 1]
    view_battery: np.ndarray  # battery fraction reported in the last heartbeat
    down_cause: np.ndarray  # int8 CAUSE_*
    down_since_s: np.ndarray  # when the node went down [s]
    repair_at_s: np.ndarray  # when it comes back [s]
    battery_j: np.ndarray  # UAV battery energy [J] (RSUs: +inf)
    slots_used: np.ndarray  # int, tasks hosted (ledger)
    slots_reserved: np.ndarray  # int, slots held for incoming migrations (ledger)
    cooldown_until_s: np.ndarray  # migration cooldown end (seed 000) [s]
    failures: np.ndarray  # int, failures detected this episode
    last_failure_s: np.ndarray  # time of the last detected failure [s] (-inf if none)
    node_completed: np.ndarray  # int, tasks completed on this node (past performance)
    node_lost: np.ndarray  # int, tasks interrupted on this node
    # --- migrations, indexed by source node (one active migration per source)
    mig_active: np.ndarray  # bool
    mig_target: np.ndarray  # int node
    mig_start_s: np.ndarray
    mig_end_s: np.ndarray
    mig_downtime_s: np.ndarray
    mig_success_p: np.ndarray
    mig_cost: np.ndarray
    mig_trigger: np.ndarray  # int8 trigger code (triggers.Trigger)
    mig_retry: np.ndarray  # bool: the active migration is an automatic retry (seed 003)
    # --- retry on another peer (seed 003), per source node
    retry_fails: np.ndarray  # int consecutive failed/cancelled migrations (backoff exponent)
    retry_pending: np.ndarray  # bool: a retry of the last failed migration is scheduled
    retry_attempt: np.ndarray  # int attempts made in the current chain (1: the original)
    retry_tried: np.ndarray  # bool (B, N, N): targets already tried by source n's chain
    # --- vehicles (B, V)
    veh_active: np.ndarray  # bool: on the map
    veh_x: np.ndarray  # [m]
    veh_y: np.ndarray  # [m]
    veh_dir: np.ndarray  # int8: 0 +x, 1 +y, 2 -x, 3 -y
    veh_speed: np.ndarray  # [m/s]
    veh_access: np.ndarray  # int: access node (best SINR among up nodes in range), -1 none
    veh_rate_mbps: np.ndarray  # access-link Shannon rate [Mbps]
    veh_serving: np.ndarray  # int: node hosting the vehicle's latest task (affinity)
    veh_tasks: np.ndarray  # int: live tasks owned (a row is reusable only at 0)
    veh_serial: np.ndarray  # uint64: the vehicle's entry number this episode (its RNG index)
    veh_new: np.ndarray  # bool: entered since the last session draw (entry draw pending)
    veh_wants_session: np.ndarray  # bool: its session must be (re)started until it ends
    veh_left_s: np.ndarray  # (B, V, N) when its access link to node n last ended [s] (-inf none)
    # --- tasks (B, T)
    task_state: np.ndarray  # int8 FREE/QUEUED/RUNNING/ORPHANED
    task_kind: np.ndarray  # int8 KIND_TASK / KIND_SESSION
    task_vehicle: np.ndarray  # int vehicle row
    task_service: np.ndarray  # int service type
    task_priority: np.ndarray  # int 8/5/2 (seed 001)
    task_work: np.ndarray  # total work [cycles]
    task_done: np.ndarray  # work done [cycles]
    task_replica: np.ndarray  # work done at the last replica checkpoint [cycles]
    task_input_mb: np.ndarray
    task_state_mb: np.ndarray
    task_created_s: np.ndarray
    task_deadline_s: np.ndarray  # absolute deadline [s]; sessions: planned end (inf: with vehicle)
    task_ready_s: np.ndarray  # no progress before this time (upload, restart, switch) [s]
    task_host: np.ndarray  # int node, -1 if none
    task_origin: np.ndarray  # int node the task last ran on (failover source)
    task_backup: np.ndarray  # int node holding the task's replica, -1 none
    task_mig_target: np.ndarray  # int node of an in-flight migration, -1 none
    task_attempts: np.ndarray  # int failed failover attempts so far (seed 001: max 3)
    task_retry_src: np.ndarray  # int source whose pending retry will move this row, -1 none
    task_orphaned_s: np.ndarray  # when the controller orphaned it [s]
    task_interrupted_s: np.ndarray  # when its host died [s] (nan if not interrupted)
    task_latency_ms: np.ndarray  # latency of the last tick [ms]

    @property
    def batch_size(self) -> int:
        return int(self.key.shape[0])

    def copy(self) -> World:
        return World(**{f.name: getattr(self, f.name).copy() for f in fields(self)})

    def subset(self, kind: type) -> tuple:
        """The arrays named by the fields of the named tuple class ``kind``, as one tuple of
        the same arrays: the form the compiled kernels take (Numba compiles attribute
        access on it). Built once per class: the arrays are only ever written in place,
        never replaced. A kernel that takes only what it uses compiles faster and is
        cheaper to call."""
        subsets = self.__dict__.setdefault("_subsets", {})
        cached = subsets.get(kind)
        if cached is None:
            cached = subsets[kind] = kind(*(getattr(self, name) for name in kind._fields))
        return cached

    def subset_arrays(self, kind: type) -> tuple:
        """:meth:`subset` as a plain tuple, built once per class: a kernel unboxes a plain
        tuple about twice as fast as a named one, and names it inside
        (``w = kind(*arrays)``)."""
        plain = self.__dict__.setdefault("_plain_subsets", {})
        cached = plain.get(kind)
        if cached is None:
            cached = plain[kind] = tuple(self.subset(kind))
        return cached

    def bound(self, site: str, depends: tuple, build) -> tuple:
        """The arguments of the kernel call ``site`` (world arrays and constants derived from
        the config and layout), built by ``build()`` once and rebuilt only when one of
        ``depends`` (the config, the layout, a replaceable helper) changes:
        building them every tick costs more than the kernel itself on small worlds."""
        calls = self.__dict__.setdefault("_bound", {})
        hit = calls.get(site)
        try:  # tuples compare items by identity first: the usual hit costs no __eq__
            same = hit is not None and hit[0] == depends
        except ValueError:  # an equal-looking layout whose arrays NumPy will not compare
            same = False
        if not same:
            hit = calls[site] = (depends, build())
        return hit[1]


def allocate(batch: int, n_nodes: int, n_vehicles: int, n_tasks: int) -> World:
    """Zeroed state arrays of the right shapes and dtypes (rows are set by reset)."""
    B, N, V, T = batch, n_nodes, n_vehicles, n_tasks

    def z(shape, dtype=np.float64, fill=0):
        return np.full(shape, fill, dtype=dtype)

    return World(
        key=z(B, np.uint64),
        tick=z(B, np.uint64),
        time_s=z(B),
        veh_spawned=z(B, np.uint64),
        ctrl_up=z(B, bool, True),
        ctrl_down_since_s=z(B, fill=-np.inf),
        ctrl_elected_s=z(B, fill=-np.inf),
        node_up=z((B, N), bool, True),
        view_up=z((B, N), bool, True),
        last_heartbeat_s=z((B, N)),
        view_load=z((B, N)),
        view_battery=z((B, N), fill=1.0),
        down_cause=z((B, N), np.int8),
        down_since_s=z((B, N)),
        repair_at_s=z((B, N)),
        battery_j=z((B, N)),
        slots_used=z((B, N), np.int64),
        slots_reserved=z((B, N), np.int64),
        cooldown_until_s=z((B, N), fill=-np.inf),
        failures=z((B, N), np.int64),
        last_failure_s=z((B, N), fill=-np.inf),
        node_completed=z((B, N), np.int64),
        node_lost=z((B, N), np.int64),
        mig_active=z((B, N), bool),
        mig_target=z((B, N), np.int64, NO_NODE),
        mig_start_s=z((B, N)),
        mig_end_s=z((B, N)),
        mig_downtime_s=z((B, N)),
        mig_success_p=z((B, N)),
        mig_cost=z((B, N)),
        mig_trigger=z((B, N), np.int8),
        mig_retry=z((B, N), bool),
        retry_fails=z((B, N), np.int64),
        retry_pending=z((B, N), bool),
        retry_attempt=z((B, N), np.int64),
        retry_tried=z((B, N, N), bool),
        veh_active=z((B, V), bool),
        veh_x=z((B, V)),
        veh_y=z((B, V)),
        veh_dir=z((B, V), np.int8),
        veh_speed=z((B, V)),
        veh_access=z((B, V), np.int64, NO_NODE),
        veh_rate_mbps=z((B, V)),
        veh_serving=z((B, V), np.int64, NO_NODE),
        veh_tasks=z((B, V), np.int64),
        veh_serial=z((B, V), np.uint64),
        veh_new=z((B, V), bool),
        veh_wants_session=z((B, V), bool),
        veh_left_s=z((B, V, N), fill=-np.inf),
        task_state=z((B, T), np.int8, FREE),
        task_kind=z((B, T), np.int8),
        task_vehicle=z((B, T), np.int64),
        task_service=z((B, T), np.int64),
        task_priority=z((B, T), np.int64),
        task_work=z((B, T)),
        task_done=z((B, T)),
        task_replica=z((B, T)),
        task_input_mb=z((B, T)),
        task_state_mb=z((B, T)),
        task_created_s=z((B, T)),
        task_deadline_s=z((B, T)),
        task_ready_s=z((B, T)),
        task_host=z((B, T), np.int64, NO_NODE),
        task_origin=z((B, T), np.int64, NO_NODE),
        task_backup=z((B, T), np.int64, NO_NODE),
        task_mig_target=z((B, T), np.int64, NO_NODE),
        task_attempts=z((B, T), np.int64),
        task_retry_src=z((B, T), np.int64, NO_NODE),
        task_orphaned_s=z((B, T)),
        task_interrupted_s=z((B, T), fill=np.nan),
        task_latency_ms=z((B, T)),
    )


def reset_rows(world: World, template: World, rows: np.ndarray) -> None:
    """Copy the allocation defaults of ``template`` (batch 1) into env ``rows``."""
    for f in fields(world):
        getattr(world, f.name)[rows] = getattr(template, f.name)[0]
