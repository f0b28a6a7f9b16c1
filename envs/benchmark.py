"""``roadedge-bench``: how fast RoadEdge runs on this machine.

Prints, and writes as JSON (``--out``, default ``results/bench.json``):

1. per preset, a single ``RoadEdgeEnv`` under random valid actions: steps/s,
   vehicle-steps/s, time per tick phase (decisions, faults, heartbeats,
   mobility, radio, tasks, compute, migrations, outcomes, controller) and
   observation,
   and peak memory of the simulation;
2. the native batched env (``RoadEdgeVectorEnv``) under random valid actions:
   env-steps/s for batch sizes, counting the time inside the env (action masks
   and steps; drawing the random actions is the agent's time, as in 1);
3. scaling with the vehicle count (100, 1,000, 10,000) and the node count;
4. the environment's share of wall time in SB3 PPO training on ``city``;
5. references measured in the same run (shared machines are noisy, so compare
   ratios): mobile-env's small-central scenario (if installed), raw ``CartPole-v1``
   steps/s (the unwrapped env, constant action) and
   the start-up of a fresh process that makes, resets and steps ``RoadEdge-v1``
   with the compiled kernels loaded from the disk cache.

Timings are medians of repeated windows after a warm-up; nothing here is
asserted. ``--quick`` shortens every window (a smoke run for the tests).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path
from typing import Any

import numpy as np

from .migration_env import RoadEdgeEnv
from .sim.config import load_scenario, preset_names
from .vector_env import RoadEdgeVectorEnv

PHASES = (
    "decisions",
    "faults",
    "heartbeats",
    "mobility",
    "radio",
    "tasks",
    "compute",
    "migrations",
    "outcomes",
    "controller",
)


def _random_valid(masks: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """One uniformly random valid choice per node, for (..., N, N + 1) masks."""
    return np.argmax(np.where(masks, rng.random(masks.shape), -1.0), axis=-1)


def _windows(fn, window_s: float, repeats: int, timed=None) -> list[float]:
    """Run ``fn`` (returning steps done) in ``repeats`` windows; steps/s of each, over the
    window's wall time, or over the seconds ``timed`` holds (``timed[0]``, which ``fn``
    adds to and each window zeroes) when only part of ``fn`` is to be counted."""
    rates = []
    for _ in range(repeats):
        steps, start = 0, time.perf_counter()
        if timed is not None:
            timed[0] = 0.0
        while time.perf_counter() - start < window_s:
            steps += fn()
        seconds = time.perf_counter() - start if timed is None else timed[0]
        rates.append(steps / seconds)
    return rates


def bench_single(
    preset: str, window_s: float, repeats: int, seed: int = 0, **overrides: Any
) -> dict[str, Any]:
    """Steps/s of one env under random valid actions, and where the time goes."""
    env = RoadEdgeEnv(preset, record_events=False, **overrides)
    N = env.n_nodes
    rng = np.random.default_rng(seed)
    env.reset(seed=seed)
    vehicles: list[int] = []
    durations: list[float] = []

    def run(n: int = 50) -> int:
        for _ in range(n):
            action = _random_valid(env.sim.action_mask()[0].reshape(N, N + 1), rng)
            t0 = time.perf_counter()
            _, _, _, truncated, _ = env.step(action)
            durations.append(time.perf_counter() - t0)
            vehicles.append(int(env.sim.world.veh_active.sum()))
            if truncated:
                env.reset()
        return n

    run(100)  # warm-up
    durations.clear()
    vehicles.clear()
    env.sim.phase_times = {}
    _windows(run, window_s, repeats)
    steps = len(durations)
    step_s = float(np.median(durations))  # robust to the odd stall of a shared machine
    phases = {k: v / steps for k, v in env.sim.phase_times.items()}  # means
    env.sim.phase_times = None
    # Observation cost: time building it alone.
    t0 = time.perf_counter()
    for _ in range(50):
        env._observe()
    obs_s = (time.perf_counter() - t0) / 50
    phases["observation"] = obs_s
    tracemalloc.start()
    probe = RoadEdgeEnv(preset, record_events=False, **overrides)
    probe.reset(seed=seed)
    for _ in range(20):
        probe.step(np.zeros(N, dtype=np.int64))
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    mean_vehicles = float(np.mean(vehicles)) if vehicles else 0.0
    return {
        "preset": preset,
        "nodes": N,
        "max_vehicles": env.cfg.vehicles.max_vehicles,
        "mean_vehicles": mean_vehicles,
        "steps_per_s": 1.0 / step_s,
        "vehicle_steps_per_s": mean_vehicles / step_s,
        "step_ms": 1e3 * step_s,
        "phase_ms": {k: 1e3 * v for k, v in phases.items()},
        "peak_memory_mb": peak / 2**20,
    }


def bench_batched(preset: str, batch: int, window_s: float, repeats: int) -> dict[str, Any]:
    venv = RoadEdgeVectorEnv(batch, scenario=preset)
    venv.reset(seed=0)
    N = venv.n_nodes
    rng = np.random.default_rng(0)

    in_env = [0.0]  # seconds inside the env (mask and step), as the single env is timed

    def run(n: int = 5) -> int:
        for _ in range(n):
            t0 = time.perf_counter()
            masks = venv.action_masks().reshape(batch, N, N + 1)
            t1 = time.perf_counter()
            actions = _random_valid(masks, rng)  # the agent's time, not the env's
            t2 = time.perf_counter()
            venv.step(actions)
            in_env[0] += t1 - t0 + time.perf_counter() - t2
        return n * batch

    run(2)
    rates = _windows(run, window_s, repeats, timed=in_env)  # the action sampling left out
    return {"preset": preset, "batch": batch, "env_steps_per_s": float(np.median(rates))}


def bench_cartpole(window_s: float, repeats: int) -> float:
    """Raw CartPole-v1 steps/s: the unwrapped env, constant action, reset on termination."""
    import gymnasium as gym

    env = gym.make("CartPole-v1").unwrapped
    env.reset(seed=0)

    def run(n: int = 1000) -> int:
        for _ in range(n):
            if env.step(1)[2]:
                env.reset()
        return n

    run()
    return float(np.median(_windows(run, window_s, repeats)))


def bench_mobile_env(window_s: float, repeats: int) -> float | None:
    """Steps/s of mobile-env's ``mobile-small-central-v0`` (5 UEs, 3 base stations) under
    random actions, the peer of the single env; None when ``mobile-env`` is not installed
    (``pip install -e '.[bench]'``)."""
    try:
        import gymnasium as gym
        import mobile_env  # noqa: F401  (registers its ids)
    except ImportError:
        return None
    env = gym.make("mobile-small-central-v0").unwrapped
    env.reset(seed=0)
    env.action_space.seed(0)

    def run(n: int = 50) -> int:
        for _ in range(n):
            _, _, terminated, truncated, _ = env.step(env.action_space.sample())
            if terminated or truncated:
                env.reset()
        return n

    run()
    return float(np.median(_windows(run, window_s, repeats)))


_START_CODE = (
    "import gymnasium as gym, numpy as np, roadedge.envs\n"
    "e = gym.make('RoadEdge-v1'); e.reset(seed=0)\n"
    "e.step(np.zeros(e.action_space.shape, np.int64))\n"
)


def _start_s(env: dict | None = None) -> float:
    import subprocess
    import sys

    t0 = time.perf_counter()
    subprocess.run([sys.executable, "-c", _START_CODE], check=True, env=env)
    return time.perf_counter() - t0


def bench_start_s(repeats: int = 3) -> float:
    """Median wall time [s] of a fresh Python process that imports RoadEdge, makes,
    resets and steps ``RoadEdge-v1`` (compiled kernels loaded from the disk cache)."""
    _start_s()  # compile if not cached yet
    return float(np.median([_start_s() for _ in range(repeats)]))


def bench_cold_start_s() -> float:
    """The same with an empty kernel cache (``NUMBA_CACHE_DIR`` pointed at a fresh
    folder, the user's cache untouched): the first import, compile included."""
    import os
    import tempfile

    with tempfile.TemporaryDirectory(prefix="roadedge-cold-") as tmp:
        return _start_s({**os.environ, "NUMBA_CACHE_DIR": tmp})


def scaling_overrides(vehicles: int) -> dict[str, Any]:
    """The city with ``vehicles`` vehicles (arrivals and task table scaled alike)."""
    scale = vehicles / 100
    return {
        "vehicles": {
            "max_vehicles": vehicles,
            "initial_vehicles": int(0.6 * vehicles),
            "arrival_rate_hz": 1.2 * scale,
        },
        "tasks": {"max_tasks": max(256, int(2.56 * vehicles))},
    }


def node_overrides(rsus: int) -> dict[str, Any]:
    """A larger map with ``rsus`` RSUs and ``rsus // 2`` UAVs."""
    grid = max(4, int(np.ceil(np.sqrt(rsus))))
    return {
        "map": {"grid_blocks": grid},
        "rsu": {"count": rsus},
        "uav": {"count": max(1, rsus // 2)},
    }


class _NullEnv:
    """A do-nothing env with RoadEdge's spaces (zeros, reward 0, ``horizon`` steps): the
    PPO run's peer, so the share of time the env costs can be read against PPO alone."""

    def __init__(self, observation_space, action_space, horizon: int):
        import gymnasium as gym

        class Null(gym.Env):
            def __init__(self):
                self.observation_space, self.action_space = observation_space, action_space
                self._zero = np.zeros(observation_space.shape, observation_space.dtype)
                self._t = 0

            def reset(self, *, seed=None, options=None):
                super().reset(seed=seed)
                self._t = 0
                return self._zero, {}

            def step(self, action):
                self._t += 1
                return self._zero, 0.0, False, self._t >= horizon, {}

        self.cls = Null


def _ppo_run(venv, timesteps: int) -> tuple[float, float]:
    """Wall time of SB3 PPO for ``timesteps`` on ``venv`` and the time inside its step."""
    from stable_baselines3 import PPO

    inner = getattr(venv, "venv", venv)
    spent = {"s": 0.0}
    original = inner.step

    def timed_step(actions):
        t0 = time.perf_counter()
        out = original(actions)
        spent["s"] += time.perf_counter() - t0
        return out

    inner.step = timed_step
    model = PPO(
        "MlpPolicy", venv, n_steps=256, batch_size=256, n_epochs=5, device="cpu", seed=0, verbose=0
    )
    t0 = time.perf_counter()
    model.learn(timesteps)
    return time.perf_counter() - t0, spent["s"]


def bench_sb3_share(timesteps: int, n_envs: int = 8) -> dict[str, Any]:
    """Fraction of PPO training wall time spent inside the env's step, and PPO's speed on
    a do-nothing env with the same spaces (the peer: what PPO costs by itself)."""
    import torch
    from stable_baselines3.common.vec_env import DummyVecEnv

    from .vector_env import make_sb3_vec_env

    torch.set_num_threads(1)
    venv = make_sb3_vec_env(n_envs, scenario="city")
    null = _NullEnv(venv.observation_space, venv.action_space, horizon=300).cls
    _ppo_run(DummyVecEnv([null] * n_envs), 512)  # warm-up: torch's and SB3's first calls
    null_wall, _ = _ppo_run(DummyVecEnv([null] * n_envs), timesteps)
    wall, env_s = _ppo_run(venv, timesteps)
    return {
        "timesteps": timesteps,
        "n_envs": n_envs,
        "wall_s": wall,
        "env_s": env_s,
        "env_share": env_s / wall,
        "steps_per_s": timesteps / wall,
        "null_env_steps_per_s": timesteps / null_wall,
    }


def format_report(res: dict[str, Any]) -> str:
    lines = [
        "## Single environment, random valid actions",
        "",
        "| preset | nodes | vehicles | steps/s | vehicle-steps/s | ms/step | peak MB |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in res["single"]:
        lines.append(
            f"| {r['preset']} | {r['nodes']} | {r['mean_vehicles']:.0f} | "
            f"{r['steps_per_s']:.0f} | {r['vehicle_steps_per_s']:.0f} | "
            f"{r['step_ms']:.3f} | {r['peak_memory_mb']:.1f} |"
        )
    lines += [
        "",
        "## Time per phase of a tick [ms]",
        "",
        "| preset | " + " | ".join(PHASES + ("observation",)) + " |",
        "|---|" + "---|" * (len(PHASES) + 1),
    ]
    for r in res["single"]:
        cells = [f"{r['phase_ms'].get(k, 0.0):.3f}" for k in PHASES + ("observation",)]
        lines.append(f"| {r['preset']} | " + " | ".join(cells) + " |")
    lines += [
        "",
        "## Native batched env (city, random valid actions; time in the env)",
        "",
        "| batch | env-steps/s |",
        "|---|---|",
    ]
    for r in res["batched"]:
        lines.append(f"| {r['batch']} | {r['env_steps_per_s']:.0f} |")
    lines += [
        "",
        "## Scaling with vehicles (city layout)",
        "",
        "| vehicles | mean on map | steps/s | vehicle-steps/s | ms/step |",
        "|---|---|---|---|---|",
    ]
    for r in res["vehicle_scaling"]:
        lines.append(
            f"| {r['max_vehicles']} | {r['mean_vehicles']:.0f} | {r['steps_per_s']:.0f} | "
            f"{r['vehicle_steps_per_s']:.0f} | {r['step_ms']:.2f} |"
        )
    lines += ["", "## Scaling with nodes", "", "| nodes | steps/s | ms/step |", "|---|---|---|"]
    for r in res["node_scaling"]:
        lines.append(f"| {r['nodes']} | {r['steps_per_s']:.0f} | {r['step_ms']:.2f} |")
    ref = res.get("reference")
    if ref:
        cp = ref["cartpole_steps_per_s"]
        lines += [
            "",
            "## References (same run)",
            "",
            f"Raw CartPole-v1: {cp:.0f} steps/s. RoadEdge `city` single env: "
            f"{res['single'][0]['steps_per_s'] / cp:.3f}x CartPole.",
        ]
        me = ref.get("mobile_env_steps_per_s")
        if me:
            city = res["single"][0]
            lines.append(
                f"mobile-env small-central (5 UEs): {me:.0f} steps/s. RoadEdge `city` single "
                f"env ({city['mean_vehicles']:.0f} vehicles): {city['steps_per_s'] / me:.2f}x "
                f"its steps/s, {city['mean_vehicles'] * city['steps_per_s'] / (5 * me):.0f}x "
                "its user-steps/s."
            )
        else:
            lines.append("mobile-env is not installed (`pip install -e '.[bench]'`): no peer.")
        lines += [
            f"Native batch of {r['batch']}: {r['env_steps_per_s'] / cp:.3f}x CartPole."
            for r in res["batched"]
        ]
        lines.append(
            f"Fresh process: import, make, reset and step `RoadEdge-v1` with the kernels "
            f"cached: {ref['cached_start_s']:.2f} s."
        )
        if ref.get("cold_start_s") is not None:
            lines.append(f"The same with an empty kernel cache: {ref['cold_start_s']:.1f} s.")
    if res.get("sb3"):
        s = res["sb3"]
        lines += [
            "",
            f"SB3 PPO on city ({s['n_envs']} envs, {s['timesteps']} steps): "
            f"{s['steps_per_s']:.0f} steps/s, env {100 * s['env_share']:.1f} % of wall time; "
            f"on a do-nothing env with the same spaces: {s['null_env_steps_per_s']:.0f} "
            f"steps/s (RoadEdge trains at "
            f"{100 * s['steps_per_s'] / s['null_env_steps_per_s']:.0f} % of that speed)",
        ]
    return "\n".join(lines)


def plot_scaling(res: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib.figure import Figure

    fig = Figure(figsize=(5, 3.5), dpi=120)
    ax = fig.add_subplot(1, 1, 1)
    xs = [r["max_vehicles"] for r in res["vehicle_scaling"]]
    ax.loglog(xs, [r["steps_per_s"] for r in res["vehicle_scaling"]], "o-", label="steps/s")
    ax.loglog(
        xs,
        [r["vehicle_steps_per_s"] for r in res["vehicle_scaling"]],
        "s--",
        label="vehicle-steps/s",
    )
    ax.set_xlabel("vehicles (max on the map)")
    ax.set_ylabel("per second")
    ax.set_title("RoadEdge single-env speed vs vehicles")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path)


def run(quick: bool = False, sb3: bool = True) -> dict[str, Any]:
    window, reps = (0.2, 1) if quick else (1.0, 3)
    res: dict[str, Any] = {
        "machine": {
            "python": platform.python_version(),
            "processor": platform.processor() or platform.machine(),
            "numpy": np.__version__,
        }
    }
    res["single"] = [bench_single(p, window, reps) for p in preset_names()]
    res["batched"] = [
        bench_batched("city", b, window, reps) for b in ((1, 16) if quick else (1, 16, 64, 256))
    ]
    vehicle_counts = (100, 1000) if quick else (100, 1000, 10_000)
    res["vehicle_scaling"] = [
        bench_single("city", window, reps, **scaling_overrides(v)) for v in vehicle_counts
    ]
    node_counts = (9,) if quick else (9, 25, 64)
    res["node_scaling"] = [
        bench_single("city", window, reps, **node_overrides(n)) for n in node_counts
    ]
    res["sb3"] = bench_sb3_share(2048 if quick else 8192) if sb3 else None
    res["reference"] = {
        "cartpole_steps_per_s": bench_cartpole(window, reps),
        "mobile_env_steps_per_s": bench_mobile_env(window, reps),
        "cached_start_s": bench_start_s(1 if quick else 3),
        "cold_start_s": None if quick else bench_cold_start_s(),
    }
    return res


PROG = "roadedge-bench"


def _unwritable(path: Path) -> str | None:
    """Why the file ``path`` cannot be written (checked before the long run), or None."""
    if path.is_dir():
        return "is a folder, not a file"
    if path.exists() and not os.access(path, os.W_OK):
        return "is not writable"
    folder = path.parent
    while not folder.exists() and folder.parent != folder:
        folder = folder.parent
    if not folder.is_dir():
        return f"cannot be written: {folder} is a file"
    if not os.access(folder, os.W_OK | os.X_OK):
        return f"cannot be written: {folder} is not writable"
    try:  # permissions can say yes where the file system says no (root, /proc, read-only)
        with tempfile.NamedTemporaryFile(dir=folder, prefix=".roadedge-bench-"):
            pass
    except OSError as exc:
        return f"cannot be written: {folder}: {exc.strerror or exc}"
    return None


def _usage_error(message: str) -> SystemExit:
    """One line ``roadedge-bench: error: ...`` on stderr; the exit (code 2) to raise."""
    print(f"{PROG}: error: {message}", file=sys.stderr)
    return SystemExit(2)


def main(argv: list[str] | None = None) -> int:
    """``roadedge-bench``; an output path that cannot be written is one line on stderr
    and exit code 2, before any measurement."""
    p = argparse.ArgumentParser(prog=PROG, description=__doc__.split("\n\n")[0])
    p.add_argument("--out", default="results/bench.json", help="JSON output path")
    p.add_argument("--quick", action="store_true", help="short windows (smoke run)")
    p.add_argument("--no-sb3", action="store_true", help="skip the PPO training share")
    p.add_argument(
        "--plot", default=None, help="PNG of steps/s vs vehicles (default: next to --out)"
    )
    args = p.parse_args(argv)
    out = Path(args.out)
    plot = Path(args.plot) if args.plot else out.with_suffix(".png")
    for flag, path in (("--out", out), ("--plot", plot)):
        why = _unwritable(path)
        if why:
            raise _usage_error(f"{flag} {path} {why}")
    try:
        load_scenario("city")  # fail fast if the package data is missing
    except (OSError, ValueError) as exc:
        raise _usage_error(f"cannot load the city preset ({exc})") from None
    start = time.perf_counter()
    res = run(quick=args.quick, sb3=not args.no_sb3)
    res["wall_s"] = time.perf_counter() - start
    print(format_report(res))  # first: a failed write below loses no measurement
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(res, indent=2))
    except OSError as exc:
        raise _usage_error(f"--out {out}: {exc.strerror or exc}") from None
    try:
        plot.parent.mkdir(parents=True, exist_ok=True)
        plot_scaling(res, plot)
        print(f"\nwrote {out} and {plot} ({res['wall_s']:.0f} s)")
    except ImportError:
        print(f"\nwrote {out} ({res['wall_s']:.0f} s; install matplotlib for the plot)")
    except OSError as exc:
        raise _usage_error(f"--plot {plot}: {exc.strerror or exc}") from None
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
