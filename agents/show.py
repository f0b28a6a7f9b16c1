"""``roadedge-show``: record one episode of a baseline or a trained model as GIF/MP4.

    roadedge-show --scenario city --policy threshold+failover --out episode.gif
    roadedge-show --model runs/<run>/best_model.zip --out agent.mp4

Frames come from the env's ``rgb_array`` renderer (map, nodes, vehicles, task
links, migrations in flight, side panel). ``--steps n`` records the first n ticks
(at least 1; without it, the whole episode), ``--every k`` keeps one frame in k
and ``--scale`` shrinks frames, for small files. MP4 needs the
``imageio-ffmpeg`` package (in the ``viz`` extra); GIF needs only Pillow. A mistake
in the arguments is one line ``roadedge-show: error: ...`` and exit code 2, before
any frame is drawn.
"""

from __future__ import annotations

import argparse
import math
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from .cli import UsageError, check_writable_file, parse_pairs, run
from .models import ModelPolicy, check_model_fits, load_model, model_obs_mode

PROG = "roadedge-show"


def _shrink(frame: np.ndarray, scale: float) -> np.ndarray:
    if scale >= 1.0:
        return frame
    from PIL import Image

    h, w = frame.shape[:2]
    size = (max(int(w * scale), 1), max(int(h * scale), 1))
    return np.asarray(Image.fromarray(frame).resize(size, Image.Resampling.LANCZOS))


def write_video(frames: list[np.ndarray], out: Path, fps: float) -> None:
    """GIF via Pillow, MP4 via imageio-ffmpeg."""
    suffix = out.suffix.lower()
    out.parent.mkdir(parents=True, exist_ok=True)
    if suffix == ".gif":
        from PIL import Image

        # One shared palette (from a middle frame), no dithering: smaller files, no flicker.
        palette = Image.fromarray(frames[len(frames) // 2]).quantize(
            colors=64, method=Image.Quantize.MEDIANCUT
        )
        images = [
            Image.fromarray(f).quantize(palette=palette, dither=Image.Dither.NONE) for f in frames
        ]
        images[0].save(
            out, save_all=True, append_images=images[1:], loop=0, duration=int(1000 / fps)
        )
    elif suffix == ".mp4":
        _check_mp4_writer()
        import imageio.v2 as imageio

        with imageio.get_writer(out, fps=fps, macro_block_size=1) as writer:
            for f in frames:
                writer.append_data(f)
    else:
        raise UsageError(f"--out must end in .gif or .mp4, got {out.name}")


def _check_mp4_writer() -> None:
    """Raise :class:`~.cli.UsageError` unless imageio and its ffmpeg plugin import."""
    try:
        import imageio.v2  # noqa: F401
        import imageio_ffmpeg  # noqa: F401
    except ImportError:
        raise UsageError(
            "writing .mp4 needs imageio-ffmpeg: pip install imageio-ffmpeg "
            "(or roadedge[viz]), or write a .gif"
        ) from None


def _setup(args):
    """The env (``rgb_array``) and the policy, every argument checked before any frame."""
    from .evaluate import _check_policy_name, checked_env

    kwargs = parse_pairs(args.env_kwargs, "--env-kwargs")
    if args.scenario:
        kwargs["scenario"] = args.scenario
    if not args.model:
        _check_policy_name(args.policy)
        env = checked_env(args.env_id, {**kwargs, "render_mode": "rgb_array"})
        from roadedge.baselines import make_policy

        return env, make_policy(args.policy, env, seed=args.seed)
    model = load_model(args.model)
    kwargs.setdefault("obs_mode", model_obs_mode(model))
    env = checked_env(args.env_id, {**kwargs, "render_mode": "rgb_array"})
    try:
        check_model_fits(model, env, args.model, f"{args.env_id} ({env.unwrapped.cfg.name!r})")
    except UsageError:
        env.close()
        raise
    return env, ModelPolicy(model, env)


def record(args) -> Path:
    """Record the episode of ``args`` (see :func:`build_parser`) and write the video."""
    env, policy = _setup(args)
    obs, info = env.reset(seed=args.seed)
    horizon = env.unwrapped.cfg.horizon
    steps = horizon if args.steps is None else min(args.steps, horizon)
    frames = [_shrink(env.render(), args.scale)]
    try:
        from tqdm.auto import tqdm

        bar = tqdm(total=steps, desc="recording", unit="tick", disable=not args.progress)
    except ImportError:
        bar = None
    start = time.perf_counter()
    for t in range(steps):
        action, _ = policy.predict(obs, deterministic=True)
        obs, _, terminated, truncated, info = env.step(action)
        if (t + 1) % args.every == 0 or terminated or truncated:
            frames.append(_shrink(env.render(), args.scale))
        if bar is not None:
            bar.update(1)
        if terminated or truncated:
            break
    if bar is not None:
        bar.close()
    env.close()
    out = Path(args.out)
    write_video(frames, out, args.fps)
    m = info["metrics"]
    print(
        f"wrote {out}: {len(frames)} frames of {steps} ticks in "
        f"{time.perf_counter() - start:.0f} s ({out.stat().st_size / 1e6:.1f} MB); "
        f"completed {m['tasks_completed']:.0f}, missed {m['tasks_missed']:.0f}, "
        f"dropped {m['tasks_dropped']:.0f}, migrations {m['migrations_started']:.0f}, "
        f"failovers {m['failovers']:.0f}"
    )
    return out


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog=PROG, description=__doc__.split("\n\n")[0])
    p.add_argument(
        "--env-id", default="RoadEdge-v1", help="registered env id (default: RoadEdge-v1)"
    )
    p.add_argument("--scenario", default=None, help="preset name or YAML path")
    p.add_argument(
        "--env-kwargs",
        nargs="*",
        default=[],
        metavar="KEY=VALUE",
        help="env/config overrides, e.g. horizon=100 faults__mttr_s=30",
    )
    p.add_argument("--policy", default="threshold+failover", help="a baseline name (see --list)")
    p.add_argument("--model", default=None, help="a trained SB3 model .zip (overrides --policy)")
    p.add_argument("--seed", type=int, default=0, help="episode seed")
    p.add_argument(
        "--steps",
        type=int,
        default=None,
        help="ticks to record, at least 1 (default: the whole episode, the horizon)",
    )
    p.add_argument("--every", type=int, default=1, help="keep one frame in this many ticks")
    p.add_argument("--scale", type=float, default=1.0, help="frame size factor (0, 1]")
    p.add_argument("--fps", type=float, default=8.0, help="frames per second, > 0 (default: 8)")
    p.add_argument("--out", default="episode.gif", help="output .gif or .mp4")
    p.add_argument("--list", action="store_true", help="list the policy names and exit")
    p.add_argument("--no-progress", dest="progress", action="store_false", help="no progress bar")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    """``roadedge-show``; a user mistake is one line on stderr and exit code 2."""
    args = build_parser().parse_args(argv)
    return run(PROG, lambda: _main(args))


def _main(args: argparse.Namespace) -> int:
    if args.list:
        from .evaluate import print_policy_list

        print_policy_list()
        return 0
    if args.steps is not None and args.steps < 1:
        raise UsageError(
            f"--steps must be at least 1 (leave it out for the whole episode), got {args.steps}"
        )
    if args.every < 1:
        raise UsageError("--every must be at least 1")
    if not 0 < args.scale <= 1:
        raise UsageError("--scale must be in (0, 1]")
    if not (args.fps > 0 and math.isfinite(args.fps)):
        raise UsageError(f"--fps must be a positive number, got {args.fps:g}")
    out = Path(args.out)
    if out.suffix.lower() not in (".gif", ".mp4"):
        raise UsageError(f"--out must end in .gif or .mp4, got {args.out}")
    check_writable_file(out, "--out")
    if out.suffix.lower() == ".mp4":
        _check_mp4_writer()
    record(args)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
