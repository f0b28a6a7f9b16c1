"""``roadedge-show``: record one episode of a baseline or a trained model as GIF/MP4.

    roadedge-show --scenario city --policy threshold+failover --out episode.gif
    roadedge-show --model runs/<run>/best_model.zip --out agent.mp4

Frames come from the env's ``rgb_array`` renderer (map, nodes, vehicles, task
links, migrations in flight, side panel). ``--every k`` keeps one frame in k
and ``--scale`` shrinks frames, for small files. MP4 needs the
``imageio-ffmpeg`` package; GIF needs only Pillow.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np


def _policy(args, env):
    if args.model:
        from .models import ModelPolicy, load_model

        return ModelPolicy(load_model(args.model), env)
    from roadedge.baselines import make_policy

    return make_policy(args.policy, env, seed=args.seed)


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
        try:
            import imageio.v2 as imageio
            import imageio_ffmpeg  # noqa: F401
        except ImportError as exc:
            raise SystemExit(
                "writing .mp4 needs imageio-ffmpeg: pip install imageio-ffmpeg (or write a .gif)"
            ) from exc
        with imageio.get_writer(out, fps=fps, macro_block_size=1) as writer:
            for f in frames:
                writer.append_data(f)
    else:
        raise SystemExit(f"--out must end in .gif or .mp4, got {out.name}")


def record(args) -> Path:
    import gymnasium as gym

    import roadedge.envs  # noqa: F401

    kwargs = {}
    if args.scenario:
        kwargs["scenario"] = args.scenario
    if args.model:
        from .models import load_model, model_obs_mode

        kwargs["obs_mode"] = model_obs_mode(load_model(args.model))
    env = gym.make(args.env_id, render_mode="rgb_array", **kwargs)
    policy = _policy(args, env)
    obs, _ = env.reset(seed=args.seed)
    horizon = env.unwrapped.cfg.horizon
    steps = min(args.steps or horizon, horizon)
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
    p = argparse.ArgumentParser(prog="roadedge-show", description=__doc__.split("\n\n")[0])
    p.add_argument("--env-id", default="RoadEdge-v1")
    p.add_argument("--scenario", default=None, help="preset name or YAML path")
    p.add_argument("--policy", default="threshold+failover", help="a baseline name")
    p.add_argument("--model", default=None, help="a trained SB3 model .zip (overrides --policy)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--steps", type=int, default=None, help="ticks to record (default: horizon)")
    p.add_argument("--every", type=int, default=1, help="keep one frame in this many ticks")
    p.add_argument("--scale", type=float, default=1.0, help="frame size factor (0, 1]")
    p.add_argument("--fps", type=float, default=8.0)
    p.add_argument("--out", default="episode.gif", help="output .gif or .mp4")
    p.add_argument("--no-progress", dest="progress", action="store_false")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.every < 1:
        raise SystemExit("--every must be at least 1")
    if not 0 < args.scale <= 1:
        raise SystemExit("--scale must be in (0, 1]")
    if args.model and not Path(args.model).is_file():
        raise SystemExit(f"model file not found: {args.model}")
    if Path(args.out).suffix.lower() not in (".gif", ".mp4"):
        raise SystemExit(f"--out must end in .gif or .mp4, got {args.out}")
    if not args.model:
        from .evaluate import _check_policy_name

        _check_policy_name(args.policy)  # before any rendering work
    record(args)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
