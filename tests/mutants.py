"""Mutation testing of the simulator core with Cosmic Ray, a module at a time.

``make mutants`` (or ``python tests/mutants.py [MODULE ...] --budget-s 600``) asks
whether the tests notice small changes to the code: Cosmic Ray rewrites one
operator, number or comparison at a time ("a mutant") and runs the tests that
cover that module; a mutant the tests still pass on has *survived*, and marks a
behaviour no test pins.

* Each module is mutated in a throw-away copy of the repository (``git ls-files``),
  never in the working tree, so an interrupted run leaves nothing mutated.
* Sessions are kept in ``results/mutants/<module>.sqlite``: a second run
  continues where the budget stopped the first, and ``--fresh`` starts over.
  ``--recheck`` runs the current tests against the survivors only (after
  writing a test for one) and marks those now killed.
* ``--sample N`` runs a seeded random sample of N mutants per module instead of
  all of them (the big modules have ~1,000 each, about an hour apiece): the kill
  rate is then an estimate, reported with its 95 % Wilson interval. The sample
  is drawn when a module's session is created (``--fresh`` to draw again).
* For each module the report gives killed / survived / other (timeouts,
  incompetent mutants that break the import) and the kill rate over the
  mutants run so far, and writes every survivor (line, operator, diff) to
  ``results/mutants/<module>-survivors.md``, to be read one by one: a survivor
  is either a missing test or an *equivalent* mutant (one that cannot change
  behaviour, e.g. ``x >= 0`` -> ``x > 0`` where ``x`` is never 0).
"""

from __future__ import annotations

import argparse
import math
import os
import random
import shutil
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

# module of envs/sim -> the fast tests that exercise it (run with -x, no xdist)
MODULE_TESTS: dict[str, list[str]] = {
    "formulas": ["tests/test_formulas.py"],
    "sessions": [
        "tests/test_session_rows.py",
        "tests/test_sessions.py",
        "tests/test_sessions_pinned.py",
    ],
    "layout": [
        "tests/test_backhaul.py",
        "tests/test_formulas.py",
        "tests/test_highway.py",
        "tests/test_radio_mobility.py",
        "tests/test_layout_geometry.py",
    ],
    "compute": ["tests/test_sessions_pinned.py", "tests/test_pinned.py", "tests/test_formulas.py"],
    "ledger": ["tests/test_ledger.py"],
    "triggers": ["tests/test_triggers.py", "tests/test_baselines.py"],
    "radio": ["tests/test_radio_mobility.py"],
    "mobility": [
        "tests/test_radio_mobility.py",
        "tests/test_highway.py",
        "tests/test_mobility_pinned.py",
    ],
    "highway": ["tests/test_highway.py"],
    "faults": [
        "tests/test_faults_pinned.py",
        "tests/test_pinned.py",
        "tests/test_controller.py",
        "tests/test_simulator.py",
    ],
    "migration": [
        "tests/test_migration_pinned.py",
        "tests/test_retry.py",
        "tests/test_pinned.py",
        "tests/test_simulator.py",
        "tests/test_baselines.py",
    ],
    "scheduler": [
        "tests/test_session_rows.py",
        "tests/test_simulator.py",
        "tests/test_sessions.py",
        "tests/test_pinned.py",
        "tests/test_scheduler_pinned.py",
    ],
    "view": ["tests/test_pinned.py", "tests/test_baselines.py"],
    "rng": ["tests/test_formulas.py", "tests/test_radio_mobility.py", "tests/test_simulator.py"],
    "stats": ["tests/test_simulator.py"],
    "outcomes": [
        "tests/test_outcomes_pinned.py",
        "tests/test_sessions_pinned.py",
        "tests/test_session_rows.py",
        "tests/test_pinned.py",
        "tests/test_simulator.py",
    ],
    "phases": [
        "tests/test_controller.py",
        "tests/test_outcomes_pinned.py",
        "tests/test_sessions_pinned.py",
        "tests/test_pinned.py",
        "tests/test_simulator.py",
    ],
    "simulator": ["tests/test_simulator.py", "tests/test_pinned.py", "tests/test_sessions.py"],
}

# Numba's disk cache (cache=True) notices a change to a kernel's own file, not to a
# compiled function it calls from another module: a mutant of rng.uniform_at would leave
# mobility's cached kernels running the original. Before each mutant's tests the cached
# kernels of the modules that compile calls into the mutated one are deleted.
_ALL_KERNELS = [
    "compute", "faults", "formulas", "highway", "migration", "mobility", "outcomes", "radio",
    "rng", "scheduler", "sessions", "triggers",
]  # fmt: skip
NUMBA_DEPENDENTS: dict[str, list[str]] = {
    "rng": ["rng", "mobility", "highway", "scheduler", "sessions", "faults", "migration"],
    "formulas": ["formulas", "migration"],
    "scheduler": ["scheduler", "sessions"],
    "highway": ["highway", "mobility"],
    "triggers": ["triggers", "migration"],
    "ledger": ["ledger", "faults", "scheduler", "sessions", "outcomes", "migration"],
    "world": _ALL_KERNELS,
}


def _write_test_script(module: str, work: Path) -> Path:
    """The command run against each mutant: drop the stale cached kernels, then the
    module's tests (fail fast, no xdist, ``slow`` and ``long`` tests left out)."""
    names = NUMBA_DEPENDENTS.get(module, [module])
    stale = " ".join(f"envs/sim/__pycache__/{n}.*.nb[ic]" for n in names)
    tests = " ".join(MODULE_TESTS[module])
    script = work / f"test-{module}.sh"
    script.write_text(
        f"cd {work}\nrm -f {stale}\n"
        f"PYTHONPATH={work}/.pkg exec {sys.executable} -m pytest -x -q -p no:cacheprovider "
        f"-p no:xdist -m 'not slow and not long' {tests}\n"
    )
    return script


CONFIG = """[cosmic-ray]
module-path = "envs/sim/{module}.py"
timeout = {timeout}
excluded-modules = []
test-command = "sh {script}"

[cosmic-ray.distributor]
name = "local"
"""


def _copy_repo(dest: Path) -> None:
    """The tracked files (and untracked, unignored ones) of the repository, plus an
    import root ``.pkg/roadedge`` that maps the packages onto this copy."""
    files = subprocess.run(
        ["git", "ls-files", "--cached", "--others", "--exclude-standard"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    for rel in files:
        src = ROOT / rel
        if src.is_file():
            (dest / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dest / rel)
    pkg = dest / ".pkg" / "roadedge"
    pkg.mkdir(parents=True)
    for name in ("envs", "agents", "baselines"):
        (pkg / name).symlink_to(dest / name)


def _counts(db: Path) -> dict[str, int]:
    con = sqlite3.connect(db)
    total = con.execute("select count(*) from mutation_specs").fetchone()[0]
    rows = con.execute("select test_outcome, worker_outcome from work_results").fetchall()
    con.close()
    killed = sum(1 for t, _ in rows if t == "KILLED")
    survived = sum(1 for t, w in rows if t == "SURVIVED" and w == "NORMAL")
    return {"total": total, "done": len(rows), "killed": killed, "survived": survived}


def _survivors(db: Path) -> list[tuple[int, str, str]]:
    con = sqlite3.connect(db)
    rows = con.execute(
        "select s.start_pos_row, s.operator_name, r.diff from work_results r "
        "join mutation_specs s on s.job_id = r.job_id "
        "where r.test_outcome = 'SURVIVED' and r.worker_outcome = 'NORMAL' "
        "order by s.start_pos_row"
    ).fetchall()
    con.close()
    return rows


def _keep_sample(db: Path, sample: int, seed: int = 0) -> None:
    """Reduce a new session to a seeded random sample of ``sample`` mutants (ordered by
    position first, so the sample does not depend on Cosmic Ray's random job ids)."""
    con = sqlite3.connect(db)
    specs = con.execute(
        "select job_id from mutation_specs "
        "order by start_pos_row, start_pos_col, operator_name, occurrence"
    ).fetchall()
    if len(specs) > sample:
        keep = {job for (job,) in random.Random(seed).sample(specs, sample)}
        drop = [(job,) for (job,) in specs if job not in keep]
        con.executemany("delete from mutation_specs where job_id = ?", drop)
        con.executemany("delete from work_items where job_id = ?", drop)
        con.commit()
    con.close()


def wilson_interval(killed: int, n: int, z: float = 1.96) -> tuple[float, float]:
    """95 % Wilson score interval of a kill rate estimated from ``n`` sampled mutants."""
    if n == 0:
        return 0.0, 1.0
    p = killed / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return max(0.0, centre - half), min(1.0, centre + half)


def run_module(
    module: str, work: Path, out: Path, budget_s: float, fresh: bool, sample: int | None = None
) -> dict:
    """Mutate ``envs/sim/<module>.py`` for at most ``budget_s`` seconds; returns counts."""
    cfg = work / f"cr-{module}.toml"
    cfg.write_text(
        CONFIG.format(module=module, timeout=240.0, script=_write_test_script(module, work))
    )
    db = out / f"{module}.sqlite"
    if fresh and db.exists():
        db.unlink()
    if not db.exists():
        subprocess.run(["cosmic-ray", "init", str(cfg), str(db)], cwd=work, check=True)
        if sample is not None:
            _keep_sample(db, sample)
    proc = subprocess.Popen(
        ["cosmic-ray", "exec", str(cfg), str(db)],
        cwd=work,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    start = time.monotonic()
    last = -1
    try:
        while proc.poll() is None:
            time.sleep(5)
            c = _counts(db)
            if c["done"] != last:  # progress, also when the output is not a terminal
                last = c["done"]
                elapsed = time.monotonic() - start
                print(f"  {module}: {c['done']}/{c['total']} mutants, {elapsed:.0f} s", flush=True)
            if time.monotonic() - start > budget_s:
                os.killpg(proc.pid, signal.SIGTERM)
                proc.wait()
                print(f"  {module}: budget of {budget_s:.0f} s used; run again to continue")
    except KeyboardInterrupt:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait()
        raise
    return _counts(db)


def recheck_survivors(module: str, work: Path, out: Path) -> dict:
    """Run the current tests against every mutant that survived so far, one by one, and
    mark those they now kill: the loop of reading a survivor, writing a test, checking."""
    db = out / f"{module}.sqlite"
    if not db.exists():
        return {"total": 0, "done": 0, "killed": 0, "survived": 0}
    con = sqlite3.connect(db)
    rows = con.execute(
        "select s.job_id, s.module_path, s.operator_name, s.occurrence from work_results r "
        "join mutation_specs s on s.job_id = r.job_id "
        "where r.test_outcome = 'SURVIVED' and r.worker_outcome = 'NORMAL'"
    ).fetchall()
    env = {**os.environ, "PYTHONPATH": str(work / ".pkg")}
    script = _write_test_script(module, work)
    killed = 0
    for i, (job_id, path, operator, occurrence) in enumerate(rows):
        original = (work / path).read_bytes()
        try:
            subprocess.run(
                ["cosmic-ray", "apply", path, operator, str(occurrence)],
                cwd=work,
                check=True,
                capture_output=True,
            )
            result = subprocess.run(["sh", str(script)], cwd=work, env=env, capture_output=True)
        finally:
            (work / path).write_bytes(original)
        if result.returncode != 0:
            killed += 1
            con.execute(
                "update work_results set test_outcome = 'KILLED' where job_id = ?", (job_id,)
            )
            con.commit()
        done = f"{i + 1}/{len(rows)}"
        print(f"  {module}: rechecked {done} survivors, {killed} now killed", flush=True)
    con.close()
    return _counts(db)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("modules", nargs="*", help=f"modules of envs/sim ({', '.join(MODULE_TESTS)})")
    p.add_argument("--budget-s", type=float, default=600.0, help="time per module [s]")
    p.add_argument("--out", default=str(ROOT / "results" / "mutants"), help="session folder")
    p.add_argument("--fresh", action="store_true", help="discard earlier sessions")
    p.add_argument(
        "--sample",
        type=int,
        default=None,
        metavar="N",
        help="run a seeded random sample of N mutants per new session (default: all)",
    )
    p.add_argument(
        "--recheck",
        action="store_true",
        help="only run the current tests against the mutants that survived so far",
    )
    args = p.parse_args(argv)
    modules = args.modules or list(MODULE_TESTS)
    unknown = [m for m in modules if m not in MODULE_TESTS]
    if unknown:
        p.error(f"unknown module {unknown[0]!r}; choose from {', '.join(MODULE_TESTS)}")
    if args.budget_s <= 0:
        p.error("--budget-s must be positive")
    if args.sample is not None and args.sample <= 0:
        p.error("--sample must be positive")
    if shutil.which("cosmic-ray") is None:
        print("cosmic-ray is not installed: pip install -e '.[dev]'", file=sys.stderr)
        return 2
    out = Path(args.out).resolve()  # cosmic-ray runs in the copy
    out.mkdir(parents=True, exist_ok=True)
    results = {}
    for module in modules:
        with tempfile.TemporaryDirectory(
            prefix="roadedge-mutants-", ignore_cleanup_errors=True
        ) as tmp:
            work = Path(tmp)
            _copy_repo(work)
            if args.recheck:
                results[module] = recheck_survivors(module, work, out)
            else:
                results[module] = run_module(
                    module, work, out, args.budget_s, args.fresh, args.sample
                )
            lines = [f"# Surviving mutants of envs/sim/{module}.py\n"]
            for row, op, diff in _survivors(out / f"{module}.sqlite"):
                lines.append(f"## line {row}: {op}\n\n```diff\n{diff.strip()}\n```\n")
            (out / f"{module}-survivors.md").write_text("\n".join(lines), encoding="utf-8")
    print("\n| module | mutants | run | killed | survived | other | kill rate [95 % CI] |")
    print("|---|---|---|---|---|---|---|")
    for module, c in results.items():
        other = c["done"] - c["killed"] - c["survived"]
        n = c["killed"] + c["survived"]
        rate = c["killed"] / max(n, 1)
        lo, hi = wilson_interval(c["killed"], n)
        print(
            f"| {module} | {c['total']} | {c['done']} | {c['killed']} | {c['survived']} "
            f"| {other} | {100 * rate:.1f} % [{100 * lo:.0f}, {100 * hi:.0f}] |"
        )
    print(f"\nsurvivors: {out}/<module>-survivors.md")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
