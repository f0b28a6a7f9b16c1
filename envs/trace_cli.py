"""``roadedge-trace``: make a RoadEdge trace (``map.kind = trace``) from SUMO.

Three ways in (README, "Real road networks"):

* ``roadedge-trace FCD.xml -o trace.npz [--net NET.net.xml]``: convert a SUMO FCD
  output (``sumo --fcd-output``). The XML is streamed (iterparse, elements cleared), so
  hour-long traces need no more memory than the trace itself. ``--net`` adds the road
  edges (drawn under the map), the junctions (RSU sites) and the network's bounds.
* ``roadedge-trace --net NET.net.xml -o trace.npz``: random trips on that network
  (``randomTrips.py``), a SUMO run, then the conversion.
* ``roadedge-trace --generate grid|spider|rand -o trace.npz``: the same on a network
  made by ``netgenerate`` (traffic lights at every junction).

Errors are one line on stderr and exit code 2.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
import xml.etree.ElementTree as ET
from array import array
from pathlib import Path

import numpy as np

from .sim.trace import TraceError, build_arrays, load_trace, save_trace

PROG = "roadedge-trace"
SUMO_MISSING = "SUMO not found: install the `sumo` extra: pip install roadedge[sumo]"


class TraceCLIError(Exception):
    """A user-facing error: printed as one line, exit code 2."""


# --------------------------------------------------------------------------- parsing


def _iter_elements(path: Path, root_tag: str, what: str):
    """(event, element) of ``path`` streamed; a wrong root or malformed XML is an error."""
    if not path.is_file():
        raise TraceCLIError(f"{path}: no such file")
    try:
        events = ET.iterparse(str(path), events=("start", "end"))
        event, root = next(events)
        if root.tag != root_tag:
            raise TraceCLIError(
                f"{path} is not {what}: its root element is <{root.tag}>, not <{root_tag}>"
            )
        depth = 1
        for event, elem in events:
            depth += 1 if event == "start" else -1
            yield event, elem
            if event == "end" and depth == 1:
                root.clear()  # a finished top-level element: drop it (streaming)
    except ET.ParseError as exc:
        raise TraceCLIError(f"{path} is not {what}: malformed XML ({exc})") from None
    except StopIteration:  # pragma: no cover - iterparse raises ParseError on empty files
        raise TraceCLIError(f"{path} is not {what}: empty file") from None


def read_fcd(
    path: str | Path, dt_s: float = 1.0, begin_s: float | None = None
) -> dict[str, np.ndarray]:
    """The vehicle samples of a SUMO FCD file: every ``<vehicle>`` of the ``<timestep>``s at
    ``time = begin_s + k * dt_s`` (k = 0, 1, ...; other timesteps are skipped). ``begin_s``
    defaults to the first timestep's time.

    Returns arrays ``t`` (k), ``vehicle`` (index into ``names``), ``x``, ``y`` [m, network
    coordinates], ``speed`` [m/s], ``heading`` [deg, counter-clockwise from +x; SUMO's
    ``angle`` is clockwise from north: heading = 90 - angle] and ``names``.
    """
    path = Path(path)
    names: dict[str, int] = {}
    t, veh = array("q"), array("q")
    x, y, speed, heading = array("d"), array("d"), array("d"), array("d")
    k = -1
    for event, elem in _iter_elements(path, "fcd-export", "a SUMO FCD file (fcd-export)"):
        if event == "start":
            if elem.tag == "timestep":
                time_s = float(elem.get("time", "nan"))
                if begin_s is None:
                    begin_s = time_s
                q = (time_s - begin_s) / dt_s
                k = round(q) if q > -1e-9 and abs(q - round(q)) < 1e-6 else -1
            continue
        if elem.tag == "vehicle" and k >= 0:
            try:
                vx, vy = float(elem.attrib["x"]), float(elem.attrib["y"])
                v, angle = float(elem.get("speed", 0.0)), float(elem.get("angle", 90.0))
            except KeyError as exc:
                raise TraceCLIError(
                    f"{path}: a vehicle has no {exc.args[0]} attribute (write the FCD in "
                    "network coordinates, without --fcd-output.geo)"
                ) from None
            t.append(k)
            veh.append(names.setdefault(elem.get("id", ""), len(names)))
            x.append(vx)
            y.append(vy)
            speed.append(v)
            heading.append((90.0 - angle) % 360.0)
    return {
        "t": np.frombuffer(t, np.int64),
        "vehicle": np.frombuffer(veh, np.int64),
        "x": np.frombuffer(x),
        "y": np.frombuffer(y),
        "speed": np.frombuffer(speed),
        "heading": np.frombuffer(heading),
        "names": np.array(list(names)),
    }


def read_net(path: str | Path) -> dict[str, np.ndarray]:
    """Bounds (``convBoundary``), road segments of every non-internal lane, and the
    non-internal junctions of a SUMO network, streamed."""
    path = Path(path)
    bounds = None
    segments: list[tuple[float, float, float, float]] = []
    junctions: list[tuple[float, float]] = []
    depth_edge_internal = False
    for event, elem in _iter_elements(path, "net", "a SUMO network (.net.xml)"):
        if event == "start":
            if elem.tag == "edge":
                depth_edge_internal = elem.get("function") == "internal"
            elif elem.tag == "location" and elem.get("convBoundary"):
                bounds = [float(v) for v in elem.get("convBoundary").split(",")]
            continue
        if elem.tag == "lane" and not depth_edge_internal and elem.get("shape"):
            pts = [tuple(float(c) for c in p.split(",")[:2]) for p in elem.get("shape").split()]
            segments += [(*a, *b) for a, b in zip(pts[:-1], pts[1:], strict=False)]
        elif elem.tag == "junction":
            if elem.get("type") != "internal" and elem.get("x") is not None:
                junctions.append((float(elem.get("x")), float(elem.get("y"))))
    return {
        "bounds": np.array(bounds if bounds else [np.nan] * 4),
        "roads": np.array(segments, np.float64).reshape(-1, 2, 2),
        "junctions": np.array(junctions, np.float64).reshape(-1, 2),
    }


def convert(
    fcd: str | Path,
    out: str | Path,
    net: str | Path | None = None,
    dt_s: float = 1.0,
    begin_s: float | None = None,
) -> dict[str, float]:
    """FCD (+ network) -> trace ``.npz``: the timesteps from ``begin_s`` (default: the
    first) on, every ``dt_s``. Returns a summary (vehicles, seconds, sizes, time)."""
    start = time.perf_counter()
    samples = read_fcd(fcd, dt_s, begin_s)
    if samples["t"].size == 0:
        raise TraceCLIError(f"{fcd}: the trace is empty (no vehicle at any sampled second)")
    lo = np.array([samples["x"].min(), samples["y"].min()])
    hi = np.array([samples["x"].max(), samples["y"].max()])
    roads = sites = None
    if net is not None:
        n = read_net(net)
        roads, sites = n["roads"], n["junctions"]
        if np.all(np.isfinite(n["bounds"])):
            lo = np.minimum(lo, n["bounds"][:2])
            hi = np.maximum(hi, n["bounds"][2:])
        if len(sites) == 0:
            sites = None
    size = np.round(np.maximum(hi - lo, 1.0) * 100.0) / 100.0  # cm, as the positions
    try:
        arrays = build_arrays(
            samples["t"], samples["vehicle"], samples["x"], samples["y"], samples["speed"],
            samples["heading"], (float(lo[0]), float(lo[1])), (float(size[0]), float(size[1])),
            roads, sites,
        )  # fmt: skip
    except TraceError as exc:
        raise TraceCLIError(f"{fcd}: {exc}") from None
    path = save_trace(out, arrays)
    tr = load_trace(path)
    return {
        "seconds": tr.n_seconds,
        "vehicles": tr.n_vehicles,
        "samples": int(tr.vid.size),
        "mean_on_map": float(tr.counts.mean()),
        "peak_on_map": int(tr.counts.max()),
        "width_m": tr.width_m,
        "height_m": tr.height_m,
        "bytes": path.stat().st_size,
        "convert_s": time.perf_counter() - start,
    }


# --------------------------------------------------------------------------- SUMO


def sumo_home() -> Path | None:
    """SUMO's installation: ``$SUMO_HOME``, else the ``eclipse-sumo`` wheel's."""
    env = os.environ.get("SUMO_HOME")
    if env and Path(env).is_dir():
        return Path(env)
    try:
        import sumo  # the eclipse-sumo wheel

        return Path(sumo.SUMO_HOME)
    except ImportError:
        return None


def sumo_tool(name: str) -> str:
    """Path of a SUMO binary (``sumo``, ``netgenerate``) or tool script (``randomTrips.py``)."""
    home = sumo_home()
    if name.endswith(".py"):
        if home is not None and (home / "tools" / name).is_file():
            return str(home / "tools" / name)
        raise TraceCLIError(SUMO_MISSING)
    if home is not None:
        for cand in (home / "bin" / name, home / "bin" / f"{name}.exe"):
            if cand.is_file():
                return str(cand)
    found = shutil.which(name)
    if found is None:
        raise TraceCLIError(SUMO_MISSING)
    return found


def _run(cmd: list[str], what: str) -> None:
    env = dict(os.environ)
    home = sumo_home()
    if home is not None:
        env.setdefault("SUMO_HOME", str(home))
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env)
    if proc.returncode != 0:
        lines = (proc.stderr or proc.stdout).strip().splitlines()
        last = lines[-1] if lines else f"exit code {proc.returncode}"
        raise TraceCLIError(f"{what} failed: {last}")


def generate_net(kind: str, out: Path, args: argparse.Namespace) -> None:
    """A network by ``netgenerate``: traffic lights at every junction, no U-turns."""
    cmd = [
        sumo_tool("netgenerate"), f"--{kind}", "-o", str(out), "--seed", str(args.seed),
        "--default-junction-type", "traffic_light", "--no-turnarounds", "true",
        "--default.lanenumber", str(args.lanes), "--default.speed", str(args.speed_limit),
    ]  # fmt: skip
    if kind == "grid":
        cmd += ["--grid.number", str(args.grid_number), "--grid.length", str(args.block_m)]
    _run(cmd, "netgenerate")


def simulate(net: Path, workdir: Path, args: argparse.Namespace) -> Path:
    """Random trips on ``net`` for warmup + duration seconds, run by SUMO; the FCD path."""
    end = args.warmup + args.duration
    trips, routes, fcd = workdir / "trips.xml", workdir / "routes.rou.xml", workdir / "fcd.xml"
    _run(
        [
            sys.executable, sumo_tool("randomTrips.py"), "-n", str(net), "-b", "0",
            "-e", str(end), "-p", str(args.period), "--fringe-factor", str(args.fringe_factor),
            "--min-distance", str(args.min_distance), "--seed", str(args.seed),
            "-o", str(trips), "-r", str(routes), "--validate",
        ],
        "randomTrips.py",
    )  # fmt: skip
    _run(
        [
            sumo_tool("sumo"), "-n", str(net), "-r", str(routes), "--begin", "0",
            "--end", str(end), "--step-length", "1", "--fcd-output", str(fcd),
            "--no-step-log", "true", "--no-warnings", "true", "--seed", str(args.seed),
        ],
        "sumo",
    )  # fmt: skip
    return fcd


# --------------------------------------------------------------------------- CLI


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog=PROG,
        description="Make a RoadEdge trace (.npz, map.kind = trace) from SUMO: convert an FCD "
        "file, or run SUMO on a network (--net) or a generated one (--generate).",
    )
    p.add_argument("fcd", nargs="?", help="SUMO FCD output (sumo --fcd-output) to convert")
    p.add_argument("-o", "--out", required=True, help="trace file to write (.npz)")
    p.add_argument("--net", help="SUMO network (.net.xml): roads, junctions and bounds")
    p.add_argument("--generate", choices=("grid", "spider", "rand"), help="netgenerate a network")
    p.add_argument(
        "--begin", type=float, help="FCD: first second kept [s] (default: the first timestep)"
    )
    p.add_argument("--duration", type=float, default=3600.0, help="trace length [s]")
    p.add_argument("--warmup", type=float, default=600.0, help="simulated before the trace [s]")
    p.add_argument("--period", type=float, default=1.0, help="seconds between trip departures")
    p.add_argument(
        "--fringe-factor", type=float, default=5.0, help="randomTrips: trips from the edge"
    )
    p.add_argument("--min-distance", type=float, default=500.0, help="randomTrips: min trip [m]")
    p.add_argument("--grid-number", type=int, default=8, help="grid: junctions per side")
    p.add_argument("--block-m", type=float, default=300.0, help="grid: block length [m]")
    p.add_argument("--lanes", type=int, default=2, help="lanes per direction")
    p.add_argument("--speed-limit", type=float, default=13.89, help="[m/s] (13.89 = 50 km/h)")
    p.add_argument("--seed", type=int, default=1, help="netgenerate / randomTrips / sumo seed")
    p.add_argument("--keep", help="keep the SUMO files (net, routes, FCD) in this directory")
    return p


def run(args: argparse.Namespace) -> dict[str, float]:
    if args.fcd is not None:
        if args.generate:
            raise TraceCLIError("give an FCD file or --generate, not both")
        return convert(args.fcd, args.out, args.net, begin_s=args.begin)
    if not (args.net or args.generate):
        raise TraceCLIError("nothing to do: give an FCD file, --net NET.net.xml or --generate")
    if args.net and args.generate:
        raise TraceCLIError("give --net or --generate, not both")
    if args.duration < 1 or args.warmup < 0 or args.period <= 0:
        raise TraceCLIError("--duration must be >= 1, --warmup >= 0 and --period > 0")
    sumo_tool("sumo")  # fail early, before any work
    with tempfile.TemporaryDirectory(prefix="roadedge-trace-") as tmp:
        workdir = Path(args.keep) if args.keep else Path(tmp)
        workdir.mkdir(parents=True, exist_ok=True)
        start = time.perf_counter()
        net = Path(args.net) if args.net else workdir / "net.net.xml"
        if args.generate:
            generate_net(args.generate, net, args)
        elif not net.is_file():
            raise TraceCLIError(f"{net}: no such file")
        fcd = simulate(net, workdir, args)
        sumo_s = time.perf_counter() - start
        summary = convert(fcd, args.out, net, begin_s=args.warmup)
        summary["sumo_s"] = sumo_s
        summary["fcd_bytes"] = fcd.stat().st_size
    return summary


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        summary = run(args)
    except TraceCLIError as exc:
        print(f"{PROG}: error: {exc}", file=sys.stderr)
        return 2
    parts = [
        f"{summary['vehicles']} vehicles",
        f"{summary['seconds']} s",
        f"{summary['mean_on_map']:.0f} on the map on average (peak {summary['peak_on_map']})",
        f"{summary['width_m']:.0f} x {summary['height_m']:.0f} m",
        f"{summary['bytes'] / 1e6:.2f} MB",
        f"converted in {summary['convert_s']:.1f} s",
    ]
    if "sumo_s" in summary:
        parts.append(f"SUMO {summary['sumo_s']:.1f} s (FCD {summary['fcd_bytes'] / 1e6:.0f} MB)")
    print(f"{PROG}: wrote {args.out}: " + ", ".join(parts))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
