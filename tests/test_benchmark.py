"""Smoke tests of ``roadedge-bench`` (``envs/benchmark.py``): the quick run writes the
JSON and prints the report, and the pieces work on their own. Speeds are never
asserted, only that they were measured."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import numpy as np
import pytest

from roadedge.envs import benchmark as bench
from roadedge.envs.sim.config import load_scenario, preset_names

ROW_KEYS = {
    "preset",
    "nodes",
    "max_vehicles",
    "mean_vehicles",
    "steps_per_s",
    "vehicle_steps_per_s",
    "step_ms",
    "phase_ms",
    "peak_memory_mb",
}


@pytest.fixture
def one_torch_thread():
    """Restores torch's thread count (``bench_sb3_share`` sets one thread itself)."""
    torch = pytest.importorskip("torch")
    previous = torch.get_num_threads()
    yield
    torch.set_num_threads(previous)


def check_single_row(row: dict) -> None:
    """A ``bench_single`` result: every field, positive rates, every phase timed."""
    assert set(row) == ROW_KEYS
    assert row["steps_per_s"] > 0 and row["step_ms"] > 0
    assert row["steps_per_s"] == pytest.approx(1e3 / row["step_ms"])
    assert 0 < row["mean_vehicles"] <= row["max_vehicles"]
    assert row["vehicle_steps_per_s"] == pytest.approx(row["mean_vehicles"] * row["steps_per_s"])
    assert set(row["phase_ms"]) == set(bench.PHASES) | {"observation"}
    assert all(v >= 0 for v in row["phase_ms"].values())
    assert sum(row["phase_ms"].values()) > 0
    assert row["peak_memory_mb"] > 0


def test_quick_run_writes_json_and_prints_report(tmp_path, capsys):
    """``main(["--quick", "--no-sb3", "--out", ...])`` writes the JSON (every preset,
    batched rows, vehicle and node scaling, no SB3 entry), the plot next to it, and
    prints a report naming every preset."""
    out = tmp_path / "sub" / "bench.json"  # the parent directory is created
    assert bench.main(["--quick", "--no-sb3", "--out", str(out)]) == 0
    res = json.loads(out.read_text())

    assert set(res) == {
        "machine",
        "single",
        "batched",
        "vehicle_scaling",
        "node_scaling",
        "sb3",
        "reference",
        "wall_s",
    }
    assert res["sb3"] is None and res["wall_s"] > 0
    assert res["reference"]["cartpole_steps_per_s"] > 0
    peer = res["reference"]["mobile_env_steps_per_s"]
    assert peer is None or peer > 0
    assert 0 < res["reference"]["cached_start_s"] < 120
    assert set(res["machine"]) == {"python", "processor", "numpy"}
    assert [r["preset"] for r in res["single"]] == list(preset_names())
    for row in res["single"] + res["vehicle_scaling"] + res["node_scaling"]:
        check_single_row(row)
    for row, preset in zip(res["single"], preset_names(), strict=True):
        assert row["nodes"] == load_scenario(preset).n_nodes
    assert [r["batch"] for r in res["batched"]] == [1, 16]
    assert all(r["preset"] == "city" and r["env_steps_per_s"] > 0 for r in res["batched"])
    assert [r["max_vehicles"] for r in res["vehicle_scaling"]] == [100, 1000]
    assert [r["nodes"] for r in res["node_scaling"]] == [9 + 9 // 2]

    printed = capsys.readouterr().out
    assert bench.format_report(res) in printed  # the JSON round-trips every number
    assert "x CartPole" in printed and "kernels cached" in printed
    for heading in ("## Single environment", "## Time per phase", "## Native batched env"):
        assert heading in printed
    for preset in preset_names():
        assert f"| {preset} |" in printed
    assert "SB3 PPO" not in printed
    assert str(out) in printed
    if importlib.util.find_spec("matplotlib") is not None:
        assert out.with_suffix(".png").stat().st_size > 0


def test_bench_single_with_overrides():
    """``bench_single`` with a tiny window passes config overrides to the env."""
    row = bench.bench_single("small", 0.01, 1, seed=3, vehicles={"max_vehicles": 30})
    check_single_row(row)
    assert row["preset"] == "small" and row["max_vehicles"] == 30
    assert row["nodes"] == load_scenario("small").n_nodes


def test_bench_batched_counts_env_steps():
    """``bench_batched`` reports env-steps/s for the requested batch."""
    row = bench.bench_batched("small", 3, 0.01, 2)
    assert row["preset"] == "small" and row["batch"] == 3
    assert row["env_steps_per_s"] > 0


def test_random_valid_picks_only_and_every_valid_choice():
    """The benchmark's random policy picks valid choices only, and each of them."""
    rng = np.random.default_rng(0)
    masks = rng.random((2, 5, 6)) < 0.4
    masks[..., 0] = True  # "do nothing" is always allowed
    picks = np.stack([bench._random_valid(masks, rng) for _ in range(300)])
    assert picks.shape == (300, 2, 5)
    chosen = np.zeros_like(masks)
    b, n = np.indices(picks.shape[1:])
    for p in picks:
        assert masks[b, n, p].all()
        chosen[b, n, p] = True
    np.testing.assert_array_equal(chosen, masks)


def test_windows_reports_one_rate_per_window():
    """``_windows`` runs ``repeats`` windows and returns a positive rate for each."""
    calls = []
    rates = bench._windows(lambda: calls.append(1) or 5, 0.005, 3)
    assert len(rates) == 3 and all(r > 0 for r in rates)
    assert len(calls) >= 3


@pytest.mark.parametrize("vehicles", [100, 1000, 10_000])
def test_scaling_overrides_are_valid_configs(vehicles):
    """The full run's vehicle-scaling configs load (even the 10,000-vehicle one)."""
    cfg = load_scenario("city", bench.scaling_overrides(vehicles))
    assert cfg.vehicles.max_vehicles == vehicles
    assert cfg.vehicles.initial_vehicles <= vehicles
    assert cfg.tasks.max_tasks >= vehicles


@pytest.mark.parametrize("rsus", [9, 25, 64])
def test_node_overrides_are_valid_configs(rsus):
    """The full run's node-scaling configs load with ``rsus`` RSUs and half as many UAVs."""
    cfg = load_scenario("city", bench.node_overrides(rsus))
    assert cfg.rsu.count == rsus and cfg.uav.count == rsus // 2
    assert cfg.n_nodes == rsus + rsus // 2


def test_sb3_share(one_torch_thread):
    """The PPO share measurement runs (one short rollout) and is a fraction of wall time."""
    pytest.importorskip("stable_baselines3")
    res = bench.bench_sb3_share(256, n_envs=1)
    assert res["timesteps"] == 256 and res["n_envs"] == 1
    assert 0 < res["env_s"] <= res["wall_s"]
    assert 0 < res["env_share"] <= 1


@pytest.fixture
def no_run(monkeypatch):
    """Measuring anything fails the test: the output paths are checked first."""

    def refuse(**kwargs):
        raise AssertionError("the benchmark ran before the output paths were checked")

    monkeypatch.setattr(bench, "run", refuse)


@pytest.mark.parametrize("flag", ["--out", "--plot"])
@pytest.mark.parametrize("where", ["under_a_file", "a_folder"])
def test_unwritable_output_is_one_line_before_any_run(flag, where, tmp_path, capsys, no_run):
    """An output path under a file, or that is a folder: exit code 2 and one line on
    stderr naming the option and the path, no traceback, nothing measured."""
    blocker = tmp_path / "taken"
    blocker.write_text("x")
    if where == "a_folder":
        bad = tmp_path / "folder.json"
        bad.mkdir()
    else:
        bad = blocker / "bench.json"
    argv = ["--quick", "--no-sb3", "--out", str(tmp_path / "ok.json"), flag, str(bad)]
    with pytest.raises(SystemExit) as exc:
        bench.main(argv)
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1
    assert err.startswith(f"roadedge-bench: error: {flag} {bad} ")


@pytest.mark.skipif(not Path("/proc").is_dir(), reason="needs Linux /proc")
def test_a_folder_the_file_system_refuses_is_caught_before_any_run(capsys, no_run):
    """Permission bits say yes to root in /proc; creating a file there fails."""
    with pytest.raises(SystemExit) as exc:
        bench.main(["--quick", "--no-sb3", "--out", "/proc/bench.json"])
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith("roadedge-bench: error: --out /proc/bench.json cannot be written")


def test_a_failed_final_write_keeps_the_report_and_is_one_line(tmp_path, capsys, monkeypatch):
    """If the output cannot be written after the run, the report is already printed."""
    monkeypatch.setattr(bench, "run", lambda **kw: {"wall_s": 0.0})
    monkeypatch.setattr(bench, "format_report", lambda res: "REPORT")

    def full(self, *args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(Path, "write_text", full)
    with pytest.raises(SystemExit) as exc:
        bench.main(["--out", str(tmp_path / "b.json")])
    assert exc.value.code == 2
    out, err = capsys.readouterr()
    assert "REPORT" in out
    assert (
        err.strip()
        == f"roadedge-bench: error: --out {tmp_path / 'b.json'}: No space left on device"
    )
