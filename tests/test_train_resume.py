"""``--resume`` on what a real run leaves behind: finished runs, damaged or half-written
files, missing statistics, and the periodic evaluation's best model and history.

Runs are the tiny ones of ``test_train.py`` (small scenario, 2 envs, 128 steps).
"""

from __future__ import annotations

import re
import zipfile

import numpy as np
import pytest
from test_train import STEPS, run_cli, tiny_argv

from roadedge.agents import train as tr
from roadedge.agents.evaluate import load_model
from roadedge.agents.train_run import atomic_write, model_steps

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def resume(run, total: int, capsys) -> tuple[int, str, str]:
    code = tr.main(["--resume", str(run), "--timesteps", str(total), "--no-progress"])
    out, err = capsys.readouterr()
    return code, out, err


def test_a_finished_run_extends_from_its_final_model(tmp_path, capsys):
    """No checkpoint (the default interval exceeds the run) or an older one only: the
    final model, the newest, is where the extension starts."""
    runs = tmp_path / "runs"
    run = run_cli(tiny_argv("ppo", runs, checkpoint_freq=100, baselines="none"), runs)
    assert {p.name for p in (run / "checkpoints").glob("*.zip")} == {"model_100_steps.zip"}
    capsys.readouterr()
    code, out, _ = resume(run, 2 * STEPS, capsys)
    assert code == 0
    assert f"resuming from {run / 'final_model.zip'} at {STEPS} steps" in out
    assert load_model(str(run / "final_model.zip")).num_timesteps == 2 * STEPS

    (run / "checkpoints" / "model_100_steps.zip").unlink()  # no checkpoint at all
    code, out, _ = resume(run, 3 * STEPS, capsys)
    assert code == 0 and f"at {2 * STEPS} steps" in out
    assert load_model(str(run / "final_model.zip")).num_timesteps == 3 * STEPS


def test_damaged_models_are_named_and_skipped(tmp_path, capsys):
    runs = tmp_path / "runs"
    run = run_cli(tiny_argv("ppo", runs, baselines="none"), runs)  # checkpoints 64, 128 + final
    data = (run / "final_model.zip").read_bytes()
    (run / "final_model.zip").write_bytes(data[: len(data) // 2])  # a killed write's leftover
    ckpt = run / "checkpoints" / "model_128_steps.zip"
    with zipfile.ZipFile(ckpt) as zf:  # a sound zip whose weights torch cannot read
        members = {name: zf.read(name) for name in zf.namelist()}
    with zipfile.ZipFile(ckpt, "w") as zf:
        for name, data in members.items():
            zf.writestr(name, b"not a torch file" if name == "policy.pth" else data)
    capsys.readouterr()
    code, out, err = resume(run, 2 * STEPS, capsys)
    assert code == 0, err
    assert "final_model.zip" in err and "model_128_steps.zip" in err
    assert "falling back to" in err and "Traceback" not in err
    assert f"resuming from {run / 'checkpoints' / 'model_64_steps.zip'} at 64 steps" in out
    assert load_model(str(run / "final_model.zip")).num_timesteps == 2 * STEPS


def test_missing_vecnormalize_statistics_are_named_not_restarted(tmp_path, capsys):
    runs = tmp_path / "runs"
    run = run_cli(tiny_argv("ppo", runs, baselines="none"), runs)
    (run / "vecnormalize.pkl").unlink()
    capsys.readouterr()
    code, out, err = resume(run, 2 * STEPS, capsys)
    assert code == 0
    assert re.search(r"final_model.zip has no VecNormalize statistics .*vecnormalize.pkl", err)
    assert "model_128_steps.zip at 128 steps" in out  # the checkpoint with its statistics
    for p in (run / "checkpoints").glob("*.pkl"):
        p.unlink()
    (run / "vecnormalize.pkl").unlink()
    code, _, err = resume(run, 3 * STEPS, capsys)
    assert code == 2 and "no usable model" in err and "vecnormalize" in err
    assert err.count("\n") == 1 and "Traceback" not in err


def test_an_interrupted_write_leaves_the_previous_file(tmp_path):
    """A second Ctrl-C during a save used to leave a truncated zip."""
    target = tmp_path / "model.zip"
    target.write_bytes(b"old")

    def half_then_ctrl_c(fh):
        fh.write(b"new, but only ha")
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        atomic_write(target, half_then_ctrl_c)
    assert target.read_bytes() == b"old"
    assert [p.name for p in tmp_path.iterdir()] == ["model.zip"]  # no temporary left


def test_ctrl_c_while_saving_the_interrupt_checkpoint(tmp_path, capsys):
    runs = tmp_path / "runs"
    run = run_cli(tiny_argv("ppo", runs, baselines="none", checkpoint_freq=0), runs)
    model = load_model(str(run / "final_model.zip"))

    def interrupted_save(fh):
        fh.write(b"PK\x03\x04 partial")
        raise KeyboardInterrupt

    model.save = interrupted_save
    capsys.readouterr()
    tr._save_interrupted(model, None, run)
    assert "interrupted again" in capsys.readouterr().err
    assert not list(run.rglob("model_*_steps.zip"))  # nothing half-written
    assert model_steps(run / "final_model.zip") == STEPS  # untouched


def test_resume_keeps_the_best_model_and_the_evaluation_history(tmp_path, capsys):
    """The first evaluation after a resume used to replace best_model.zip (best score reset
    to -inf) and evaluations.npz (history reset)."""
    runs = tmp_path / "runs"
    run = run_cli(tiny_argv("ppo", runs, eval_freq=64, baselines="none"), runs)
    npz = run / "evaluations" / "evaluations.npz"
    data = dict(np.load(npz))
    np.testing.assert_array_equal(data["timesteps"], [64, 128])
    data["results"] = data["results"] + 1e6  # a best score no later evaluation reaches
    np.savez(npz, **data)
    best = (run / "best_model.zip").read_bytes()
    capsys.readouterr()

    code, out, _ = resume(run, 2 * STEPS, capsys)
    assert code == 0
    assert (run / "best_model.zip").read_bytes() == best
    after = np.load(npz)
    np.testing.assert_array_equal(after["timesteps"], [64, 128, 192, 256])
    np.testing.assert_array_equal(after["results"][:2], data["results"])
    line = re.search(r"eval at 192 steps: mean return -?[\d.]+ over 8 episodes, best ([\d.]+)", out)
    assert line and float(line.group(1)) > 9e5, out


def test_evaluations_past_the_resumed_model_are_redone(tmp_path, capsys):
    runs = tmp_path / "runs"
    run = run_cli(tiny_argv("ppo", runs, eval_freq=64, baselines="none"), runs)
    (run / "final_model.zip").unlink()
    (run / "checkpoints" / "model_128_steps.zip").unlink()  # resume from 64 steps
    capsys.readouterr()
    assert resume(run, STEPS, capsys)[0] == 0
    after = np.load(run / "evaluations" / "evaluations.npz")
    np.testing.assert_array_equal(after["timesteps"], [64, 128])


def test_evaluations_stay_on_the_run_grid_after_a_resume_off_the_grid(tmp_path, capsys):
    """Resumed at 100 steps with evaluations every 64: the next ones are at 128, 192, 256
    as in an uninterrupted run (not 100 + 64 = 164, 228)."""
    runs = tmp_path / "runs"
    run = run_cli(tiny_argv("ppo", runs, eval_freq=64, checkpoint_freq=100, baselines="none"), runs)
    (run / "final_model.zip").unlink()
    capsys.readouterr()
    code, out, _ = resume(run, 2 * STEPS, capsys)
    assert code == 0 and "model_100_steps.zip at 100 steps" in out
    after = np.load(run / "evaluations" / "evaluations.npz")
    np.testing.assert_array_equal(after["timesteps"], [64, 128, 192, 256])
