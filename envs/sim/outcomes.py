"""Step 9 of a tick, outcomes: which rows end, the counters and the reward terms they give.

A task row ends when it **completes** (``done >= work - 1e-6`` while running), **misses**
its deadline (``deadline <= t + dt``, not completed, not dropped) or is **dropped**
(failover attempts exhausted, orphan timeout: decided earlier in the tick). A session row
ends when its vehicle has left the map or its planned end is reached (``sessions_ended``),
or when it is dropped (``sessions_dropped``; its vehicle starts a new one next tick). An
ended row gives back its slot and any reservation and is freed at once (the ledger's
``complete``).

Counted per environment: completions (also per host, ``node_completed``), misses,
drops, ended sessions, the latency of every charged row and, for charged sessions whose
vehicle is attached, the access-to-host backhaul hops (taken before the row is freed).
Reward terms (unweighted; MODEL.md section 10), with ``w = priority / priority_medium``:
completion ``sum w`` over completions, deadline_miss ``sum w`` over misses, drop ``sum w``
over drops plus rows lost for want of a free row, latency ``sum latency * requests``
[s] (one request per task row, ``request_rate_hz * dt`` per session row).
"""

from __future__ import annotations

import numpy as np
from numba import njit

from .ledger import complete_row
from .stats import Counters
from .world import FREE, KIND_SESSION, KIND_TASK, RUNNING, World

# columns of the per-environment term array the kernel fills
COMPLETION, LATENCY_S, DEADLINE_MISS, DROP = range(4)


@njit(cache=True)
def _outcomes_kernel(
    task_state, task_kind, task_host, task_mig_target, task_vehicle, task_done, task_work,
    task_deadline_s, task_priority, veh_active, veh_access, veh_tasks, veh_wants_session,
    slots_used, slots_reserved, node_completed, hops, dropped, charged, latency_ms, end_s,
    no_task_row, no_session_row, priority_medium, session_requests,
    tasks_completed, tasks_missed, tasks_dropped, sessions_ended, sessions_dropped,
    latency_sum_ms, latency_samples, session_latency_sum_ms, session_latency_samples,
    session_hops_sum, session_hops_samples, terms, counts,
):  # fmt: skip
    B, T = task_state.shape
    for b in range(B):
        end = end_s[b] + 1e-9
        completion = miss = drop_w = requests_ms = 0.0
        n_done = n_late = 0
        task_drop, session_drop = no_task_row[b], no_session_row[b]
        for t in range(T):
            kind = task_kind[b, t]
            v = task_vehicle[b, t]
            host = task_host[b, t]
            lat = latency_ms[b, t]
            requests_ms += lat * (session_requests if kind == KIND_SESSION else 1.0)
            if charged[b, t]:
                latency_sum_ms[b] += lat
                latency_samples[b] += 1
                if kind != KIND_TASK:
                    session_latency_sum_ms[b] += lat
                    session_latency_samples[b] += 1
                    access = veh_access[b, v]
                    if access >= 0:
                        session_hops_sum[b] += hops[access, host]
                        session_hops_samples[b] += 1
            state = task_state[b, t]
            if state == FREE:
                continue
            weight = task_priority[b, t] / priority_medium
            drop = dropped[b, t]
            done = late = over = False
            if kind == KIND_TASK:
                done = state == RUNNING and task_done[b, t] >= task_work[b, t] - 1e-6
                late = not done and not drop and task_deadline_s[b, t] <= end
            else:
                over = not drop and (not veh_active[b, v] or task_deadline_s[b, t] <= end)
            if not (done or late or drop or over):
                continue
            if done:
                node_completed[b, host] += 1
                n_done += 1
                completion += weight
            if late:
                n_late += 1
                miss += weight
            if drop:
                drop_w += weight
                if kind == KIND_TASK:
                    task_drop += 1
                else:
                    session_drop += 1
            if over:
                sessions_ended[b] += 1
                veh_wants_session[b, v] = False  # served: the vehicle wants no other
            complete_row(
                slots_used, slots_reserved, task_state, task_host, task_mig_target,
                task_vehicle, veh_tasks, b, t,
            )  # fmt: skip
        tasks_completed[b] += n_done
        tasks_missed[b] += n_late
        tasks_dropped[b] += task_drop
        sessions_dropped[b] += session_drop
        counts[b, 0], counts[b, 1], counts[b, 2] = n_done, n_late, task_drop + session_drop
        terms[COMPLETION, b] = completion
        terms[LATENCY_S, b] = requests_ms / 1000.0
        terms[DEADLINE_MISS, b] = miss
        terms[DROP, b] = drop_w + no_task_row[b] + no_session_row[b]


def settle(
    world: World,
    hops: np.ndarray,
    counters: Counters,
    dropped: np.ndarray,
    charged: np.ndarray,
    latency_ms: np.ndarray,
    end_s: np.ndarray,
    no_task_row: np.ndarray,
    no_session_row: np.ndarray,
    priority_medium: float,
    session_requests: float,
    terms: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """End this tick's finished rows and count them (module docstring).

    Returns the reward terms, one row per term, COMPLETION, LATENCY_S, DEADLINE_MISS,
    DROP (written into rows 0-3 of ``terms`` when given, a (4, B) array otherwise), and
    per environment the tasks completed, the tasks missed and the rows dropped (rows
    lost for want of a free row included), (B, 3).
    """
    w, c = world, counters
    B = w.task_state.shape[0]
    if terms is None:
        terms = np.zeros((4, B))
    counts = np.zeros((B, 3), np.int64)
    args = w.bound("settle", (hops, c), lambda: (
        w.task_state, w.task_kind, w.task_host, w.task_mig_target, w.task_vehicle, w.task_done,
        w.task_work, w.task_deadline_s, w.task_priority, w.veh_active, w.veh_access,
        w.veh_tasks, w.veh_wants_session, w.slots_used, w.slots_reserved, w.node_completed,
        hops,
    ))  # fmt: skip
    _outcomes_kernel(
        *args, dropped, charged, latency_ms, end_s, np.asarray(no_task_row, np.int64),
        np.asarray(no_session_row, np.int64), float(priority_medium), float(session_requests),
        c.tasks_completed, c.tasks_missed, c.tasks_dropped, c.sessions_ended,
        c.sessions_dropped, c.latency_sum_ms, c.latency_samples, c.session_latency_sum_ms,
        c.session_latency_samples, c.session_hops_sum, c.session_hops_samples, terms, counts,
    )  # fmt: skip
    return terms, counts
