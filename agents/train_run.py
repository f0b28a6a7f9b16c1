"""The run directory of ``train.py``: its name, atomic writes, and the model to resume from.

Every model, statistics and evaluation file is written to a hidden temporary
file and renamed over its target (``os.replace``), so an interrupted write
(a second Ctrl-C, a killed process, a full disk) leaves the previous file
intact, never a truncated one. ``--resume`` still checks what it loads: it
takes the newest model (``final_model.zip`` included, so a finished run can
be extended) and, if that one is unreadable or lacks its ``VecNormalize``
statistics, says so and falls back to the next newest.
"""

from __future__ import annotations

import json
import os
import pickle
import re
import shutil
import sys
import time
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from .train_args import PROG, UsageError

FINAL_MODEL = "final_model.zip"
FINAL_STATS = "vecnormalize.pkl"


def run_name(env_id: str, algo: str, seed: int) -> str:
    return f"{env_id}__{algo}__{seed}__{time.strftime('%Y%m%d-%H%M%S')}"


def new_run_dir(runs_dir: Path, env_id: str, algo: str, seed: int) -> Path:
    """A fresh directory ``<runs_dir>/<env>__<algo>__<seed>__<time>[.k]``, created."""
    run_dir = runs_dir / run_name(env_id, algo, seed)
    suffix = 1
    while True:
        try:
            run_dir.mkdir(parents=True)
            return run_dir
        except FileExistsError:  # two runs started within the same second
            run_dir = run_dir.with_name(f"{run_dir.name.split('.')[0]}.{suffix}")
            suffix += 1


def discard_if_empty(run_dir: Path) -> bool:
    """Remove a new run's directory that holds no model yet (a crash before the first
    checkpoint): a folder with only ``config.yml`` and logs helps nobody. True if removed."""
    if any(run_dir.rglob("*.zip")):
        return False
    shutil.rmtree(run_dir, ignore_errors=True)
    return True


def atomic_write(path: Path, write: Callable[[IO[bytes]], Any]) -> None:
    """``write(fh)`` to a temporary file next to ``path``, then rename it to ``path``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        with open(tmp, "wb") as fh:
            write(fh)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def save_model(model, path: Path, venv=None, stats_path: Path | None = None) -> None:
    """Save ``model`` (and the ``VecNormalize`` statistics of ``venv``, if given) atomically.
    The statistics go first: a model file on disk always has its statistics next to it."""
    if venv is not None and stats_path is not None:
        atomic_write(stats_path, lambda fh: pickle.dump(venv, fh))
    atomic_write(path, model.save)


def vecnormalize_path(checkpoint: Path) -> Path:
    """Where the ``VecNormalize`` statistics of a model file are kept."""
    if checkpoint.name == FINAL_MODEL:
        return checkpoint.with_name(FINAL_STATS)
    return checkpoint.with_name(
        checkpoint.name.replace("model_", "model_vecnormalize_").replace(".zip", ".pkl")
    )


class BadModel(Exception):
    """A model file that cannot be resumed from; the message names it and says why."""


def model_steps(path: Path) -> int:
    """``num_timesteps`` recorded in an SB3 model file; ``BadModel`` if the file is damaged."""
    try:
        with zipfile.ZipFile(path) as zf:
            broken = zf.testzip()
            if broken is not None:
                raise BadModel(f"{path} is corrupt (member {broken})")
            return int(json.loads(zf.read("data"))["num_timesteps"])
    except (zipfile.BadZipFile, KeyError, ValueError, TypeError, OSError, EOFError) as exc:
        raise BadModel(f"{path} is unreadable ({type(exc).__name__}: {exc})") from None


def model_files(run_dir: Path) -> list[Path]:
    """``final_model.zip`` and the checkpoints of a run (any order)."""
    files = [p for p in (run_dir / "checkpoints").glob("*.zip") if re.search(r"_\d+_steps", p.name)]
    final = run_dir / FINAL_MODEL
    return files + ([final] if final.is_file() else [])


def latest_checkpoint(run_dir: Path) -> Path | None:
    """The newest readable model file of a run (by recorded step count), or None."""
    found = []
    for p in model_files(run_dir):
        try:
            found.append((model_steps(p), p.name == FINAL_MODEL, p))
        except BadModel:
            continue
    return max(found)[2] if found else None


@dataclass
class Resumed:
    model: Any
    venv: Any
    path: Path


def load_newest(
    run_dir: Path, cls, make_venv: Callable[[], Any], normalize: bool, tensorboard_log: str
) -> Resumed:
    """Load the newest usable model of ``run_dir`` with a fresh env from ``make_venv``.

    A damaged file or one without its ``VecNormalize`` statistics (when the run
    normalises rewards) is named on stderr and the next newest is tried; none
    usable is a ``UsageError`` naming what was wrong with each.
    """
    from stable_baselines3.common.vec_env import VecNormalize

    problems: list[str] = []
    found = []
    for p in model_files(run_dir):
        try:
            found.append((model_steps(p), p.name == FINAL_MODEL, p))
        except BadModel as exc:
            problems.append(str(exc))
    for _, _, path in sorted(found, reverse=True):
        venv = make_venv()
        try:
            if normalize:
                stats = vecnormalize_path(path)
                if not stats.is_file():
                    raise BadModel(f"{path} has no VecNormalize statistics ({stats} is missing)")
                venv = VecNormalize.load(str(stats), venv)
            model = cls.load(str(path), env=venv, device="cpu", tensorboard_log=tensorboard_log)
        except Exception as exc:  # torch/pickle/zip errors of a damaged file: try the next
            venv.close()
            first_line = (str(exc).splitlines() or [""])[0]
            bad = isinstance(exc, BadModel)
            problems.append(first_line if bad else f"{path}: {type(exc).__name__}: {first_line}")
            continue
        for problem in problems:
            print(f"{PROG}: warning: skipped {problem}", file=sys.stderr)
        if problems:
            print(f"{PROG}: falling back to {path}", file=sys.stderr)
        return Resumed(model, venv, path)
    if not problems:
        raise UsageError(
            f"--resume: no model in {run_dir} (final_model.zip or checkpoints/model_<N>_steps.zip)"
        )
    raise UsageError(f"--resume: no usable model in {run_dir}: " + "; ".join(problems))
