"""README.md's "Use it from other RL code" works as written.

The RL Zoo command of that section runs here on the shipped
``agents/hyperparams/ppo.yml`` (with a tiny budget appended); its Python snippets
(the ``make_vec`` loop, the native batched env) run as they are in
``test_readme.py``, with every other Python block of the README. The hyperparameter
files stay RL Zoo files: their keys are the algorithm's keywords or RL Zoo's own.
"""

from __future__ import annotations

import inspect
import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]
README = REPO / "README.md"
SECTION = "## Use it from other RL code"
RL_ZOO_KEYS = {"n_timesteps", "n_envs", "policy", "env_kwargs", "normalize"}

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def section() -> str:
    """The README's section "Use it from other RL code", up to the next ``## `` heading."""
    text = README.read_text()
    start = text.index(f"\n{SECTION}\n")
    end = text.find("\n## ", start + len(SECTION) + 1)
    return text[start : end if end >= 0 else None]


def blocks(lang: str) -> list[str]:
    return re.findall(rf"^```{lang}\n(.*?)^```", section(), re.S | re.M)


@pytest.mark.parametrize("algo", ["ppo", "a2c"])
def test_hyperparameter_files_hold_only_rl_zoo_keys(algo):
    """RL Zoo passes every other key to the algorithm: a project key (``obs_mode``) broke it."""
    from roadedge.agents.train import algo_class

    accepted = set(inspect.signature(algo_class(algo).__init__).parameters) | RL_ZOO_KEYS
    table = yaml.safe_load((REPO / "agents" / "hyperparams" / f"{algo}.yml").read_text())
    for env_id, entry in table.items():
        assert set(entry) <= accepted, (env_id, set(entry) - accepted)
        assert set(entry["normalize"]) == {"norm_obs", "norm_reward"}


def test_rl_zoo_command_trains_on_the_shipped_ppo_file(tmp_path):
    pytest.importorskip("rl_zoo3")
    (command,) = blocks("bash")
    argv = shlex.split(command.replace("\\\n", " "))
    assert argv[:3] == ["python", "-m", "rl_zoo3.train"]
    tiny = "-n 256 --eval-freq -1 --seed 0 -params n_envs:2 n_steps:32 batch_size:32 n_epochs:1"
    argv = [sys.executable, *argv[1:], *tiny.split(), "-f", str(tmp_path)]
    argv += ["--env-kwargs", "horizon:20", "obs_mode:'flat'"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    done = subprocess.run(argv, cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    (model,) = tmp_path.glob("ppo/RoadEdge-small-v1_*/RoadEdge-small-v1.zip")
    from stable_baselines3 import PPO

    assert PPO.load(model, device="cpu").num_timesteps >= 256


def test_the_section_shows_a_make_vec_loop_and_the_native_batched_env():
    """Both snippets are in the section (``test_readme.py`` runs them)."""
    loop, native = blocks("python")
    assert "gym.make_vec(" in loop and 'vectorization_mode="sync"' in loop
    assert 'vectorization_mode="vector_entry_point"' in native and "make_sb3_vec_env" in native
