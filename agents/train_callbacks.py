"""SB3 callbacks of ``train.py``: episode metrics, checkpoints, periodic evaluation, progress.

All of them count in env steps of the whole run: after ``--resume`` their
step counters start from the resumed model's ``num_timesteps``, so
checkpoints and evaluations stay on the same grid as before the interruption.
"""

from __future__ import annotations

import io
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

from .train_run import atomic_write, save_model, vecnormalize_path

EVAL_CALLBACK_EPISODES = 8  # per periodic evaluation: one batched episode per env
EVAL_SEED_OFFSET = 1_000_000  # evaluation episodes use seeds no training env ever got


def periodic_eval_seed(seed: int) -> int:
    """First seed of the periodic evaluations (held out from training and the final table)."""
    return seed + EVAL_SEED_OFFSET // 2


def _base():
    from stable_baselines3.common.callbacks import BaseCallback

    return BaseCallback


def _align(callback) -> None:
    """Start the call counter at the model's step count (resumed runs keep their grid)."""
    callback.n_calls = callback.model.num_timesteps // callback.model.n_envs


def make_metrics_callback():
    class EpisodeMetricsCallback(_base()):
        """Logs each finished episode's reward terms (summed) and ``info["metrics"]``."""

        def _on_training_start(self) -> None:
            self.sums: list[dict[str, float]] = [{} for _ in range(self.training_env.num_envs)]

        def _on_step(self) -> bool:
            for i, info in enumerate(self.locals["infos"]):
                acc = self.sums[i]
                for k, v in info.get("reward_terms", {}).items():
                    acc[k] = acc.get(k, 0.0) + v
                if "episode" in info:
                    for k, v in acc.items():
                        self.logger.record_mean(f"reward_terms/{k}", v)
                    for k, v in info.get("metrics", {}).items():
                        self.logger.record_mean(f"metrics/{k}", v)
                    self.sums[i] = {}
            return True

    return EpisodeMetricsCallback()


def make_checkpoint_callback(every_steps: int, run_dir: Path, normalize: bool):
    """``checkpoints/model_<steps>_steps.zip`` (+ ``VecNormalize`` stats), written atomically."""

    class AtomicCheckpointCallback(_base()):
        def _on_training_start(self) -> None:
            _align(self)

        def _on_step(self) -> bool:
            if self.n_calls % max(every_steps // self.model.n_envs, 1) == 0:
                path = run_dir / "checkpoints" / f"model_{self.num_timesteps}_steps.zip"
                venv = self.model.get_vec_normalize_env() if normalize else None
                save_model(self.model, path, venv, vecnormalize_path(path))
            return True

    return AtomicCheckpointCallback()


def make_eval_callback(
    algo: str,
    env_id: str,
    seed: int,
    env_kwargs: dict[str, Any],
    run_dir: Path,
    every_calls: int,
    normalize: bool,
):
    """Periodic evaluation on held-out seeds; keeps ``best_model.zip`` and ``evaluations.npz``.

    Every evaluation replays the *same* ``EVAL_CALLBACK_EPISODES`` seeds (one
    batched env each), so checkpoints are compared on the same traffic and
    failures. SB3's callbacks would run on whatever episodes come next, and
    with seed-to-seed spread of the return several times the differences
    between policies, the "best" model would mostly be the luckiest draw.

    On ``--resume`` it restores the history of ``evaluations.npz`` up to the
    resumed step and the best score so far, so a worse evaluation after the
    resume does not replace ``best_model.zip``. Each result is printed.
    """
    from stable_baselines3.common.vec_env import VecNormalize

    from .train_config import make_vec_env

    first = periodic_eval_seed(seed)
    eval_env = make_vec_env(env_id, EVAL_CALLBACK_EPISODES, first, env_kwargs, False)
    if normalize:  # same wrapper type as training (SB3 syncs stats); raw rewards reported
        eval_env = VecNormalize(eval_env, norm_obs=False, norm_reward=False, training=False)
    if algo == "maskable_ppo":
        from sb3_contrib.common.maskable.callbacks import MaskableEvalCallback as Base
    else:
        from stable_baselines3.common.callbacks import EvalCallback as Base
    npz = run_dir / "evaluations" / "evaluations.npz"
    best_path = run_dir / "best_model.zip"

    class SaveBest(_base()):
        def _on_step(self) -> bool:
            save_model(self.model, best_path)
            return True

    class SameSeedsEvalCallback(Base):
        def _on_training_start(self) -> None:
            _align(self)
            self._restore(self.model.num_timesteps)

        def _restore(self, start: int) -> None:
            if not npz.is_file():
                return
            data = np.load(npz)
            means = data["results"].mean(axis=1)
            if best_path.is_file() and len(means):  # the score best_model.zip was saved with
                self.best_mean_reward = float(means.max())
            keep = data["timesteps"] <= start  # evaluations past the resumed model are redone
            self.evaluations_timesteps = data["timesteps"][keep].tolist()
            self.evaluations_results = data["results"][keep].tolist()
            self.evaluations_length = data["ep_lengths"][keep].tolist()
            if keep.any():
                self.last_mean_reward = float(means[keep][-1])

        def _on_step(self) -> bool:
            due = self.eval_freq > 0 and self.n_calls % self.eval_freq == 0
            if not due:
                return super()._on_step()
            self.eval_env.seed(first)  # applied at the evaluation's reset
            best_before = self.best_mean_reward
            go_on = super()._on_step()
            atomic_write(npz, self._npz_bytes)
            new = " (new best)" if self.best_mean_reward > best_before else ""
            print(
                f"eval at {self.num_timesteps} steps: mean return {self.last_mean_reward:.2f} "
                f"over {EVAL_CALLBACK_EPISODES} episodes, best {self.best_mean_reward:.2f}{new}",
                flush=True,
            )
            return go_on

        def _npz_bytes(self, fh) -> None:
            buf = io.BytesIO()
            np.savez(
                buf,
                timesteps=self.evaluations_timesteps,
                results=self.evaluations_results,
                ep_lengths=self.evaluations_length,
            )
            fh.write(buf.getvalue())

    return SameSeedsEvalCallback(
        eval_env,
        callback_on_new_best=SaveBest(),
        best_model_save_path=None,  # SaveBest writes it atomically
        log_path=str(run_dir / "evaluations" / ".sb3"),  # SB3's own copy; ours is atomic
        eval_freq=every_calls,
        n_eval_episodes=EVAL_CALLBACK_EPISODES,
        deterministic=True,
        verbose=0,
    )


def make_progress_callback(total: int, interval_s: float, eval_callback=None, out=None):
    """A line every ``interval_s`` seconds: steps, steps/s, ETA and the latest evaluation
    (for logs and pipes, where a progress bar shows only when it is done)."""

    class ProgressLogCallback(_base()):
        def _on_training_start(self) -> None:
            self.t0 = self.last = time.monotonic()
            self.s0 = self.num_timesteps

        def _on_step(self) -> bool:
            now = time.monotonic()
            if now - self.last >= interval_s:
                self.last = now
                print(self.line(now), file=out or sys.stdout, flush=True)
            return True

        def line(self, now: float) -> str:
            done = self.num_timesteps
            rate = (done - self.s0) / max(now - self.t0, 1e-9)
            eta = (total - done) / rate if rate > 0 else float("inf")
            text = f"{done}/{total} steps ({100 * done / total:.0f}%), {rate:.0f} steps/s, "
            text += f"ETA {_duration(eta)}"
            ev = eval_callback
            if ev is not None and ev.evaluations_timesteps:
                text += f", last eval {ev.last_mean_reward:.2f} at {ev.evaluations_timesteps[-1]}"
            return text

    return ProgressLogCallback()


def _duration(seconds: float) -> str:
    if not np.isfinite(seconds):
        return "?"
    s = int(round(seconds))
    return f"{s // 3600}h{s % 3600 // 60:02d}m" if s >= 3600 else f"{s // 60}m{s % 60:02d}s"
