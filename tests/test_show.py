"""roadedge-show writes a readable episode GIF; bad arguments give clear errors."""

import numpy as np
import pytest
from PIL import Image

from roadedge.agents.show import main


def test_show_writes_a_readable_gif(tmp_path):
    out = tmp_path / "episode.gif"
    assert (
        main(
            [
                "--env-id",
                "RoadEdge-small-v1",
                "--policy",
                "threshold+failover",
                "--steps",
                "12",
                "--every",
                "3",
                "--scale",
                "0.5",
                "--out",
                str(out),
                "--no-progress",
            ]
        )
        == 0
    )
    with Image.open(out) as gif:
        assert gif.n_frames == 1 + 12 // 3  # the reset frame, then one in three ticks
        assert gif.size == (450, 300)  # 900 x 600 frames at half size
        gif.seek(gif.n_frames - 1)
        pixels = np.asarray(gif.convert("RGB")).reshape(-1, 3)
        assert len(np.unique(pixels, axis=0)) > 20  # not a blank frame


@pytest.fixture(scope="module")
def small_model(tmp_path_factory):
    """A PPO trained for 64 steps on the small env (any weights will do)."""
    import gymnasium as gym

    torch = pytest.importorskip("torch")
    from stable_baselines3 import PPO

    torch.set_num_threads(1)
    env = gym.make("RoadEdge-small-v1")
    model = PPO("MlpPolicy", env, n_steps=64, batch_size=64, n_epochs=1, seed=0, device="cpu")
    model.learn(total_timesteps=64)
    path = tmp_path_factory.mktemp("model") / "small.zip"
    model.save(path)
    env.close()
    return path


def usage_error(capsys, argv) -> str:
    """``roadedge-show argv`` exits with code 2 and one line on stderr, no traceback."""
    with pytest.raises(SystemExit) as exc:
        main(argv)
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("roadedge-show: error: ")
    return lines[0]


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--policy", "threshold+greedy"], "unknown policy"),
        (["--out", "episode.avi"], ".gif or .mp4"),
        (["--every", "0"], "--every"),
        (["--scale", "2"], "--scale"),
        (["--model", "missing.zip"], "model file not found: missing.zip"),
        (["--steps", "-5"], "--steps must be at least 1"),
        (["--steps", "0"], "--steps must be at least 1"),
        (["--fps", "0"], "--fps must be a positive number"),
        (["--fps", "-2"], "--fps must be a positive number"),
        (["--scenario", "nope"], "unknown scenario 'nope'"),
        (["--env-id", "RoadEdge-nope-v1"], "RoadEdge-nope"),
        (["--env-kwargs", "vehicles__max_vehicle=3"], "unknown config key vehicles.max_vehicle"),
        (["--env-kwargs", "horizon=[1"], "--env-kwargs horizon: cannot parse '[1'"),
        (["--env-kwargs", "horizon=abc"], "horizon must be an integer, got 'abc'"),
        (["--env-kwargs", "nokey"], "--env-kwargs expects KEY=VALUE, got 'nokey'"),
        (["--env-kwargs", "=5"], "--env-kwargs expects KEY=VALUE, got '=5'"),
        (["--env-kwargs", "horizon=!!float x"], "--env-kwargs horizon: cannot parse '!!float x'"),
    ],
)
def test_show_rejects_bad_arguments(argv, message, tmp_path, capsys):
    out = tmp_path / "e.gif"
    line = usage_error(capsys, ["--env-id", "RoadEdge-small-v1", "--out", str(out), *argv])
    assert message in line
    assert not out.exists()


def test_show_names_a_corrupt_model(tmp_path, capsys):
    bad = tmp_path / "bad.zip"
    bad.write_text("not a model")
    line = usage_error(capsys, ["--model", str(bad), "--out", str(tmp_path / "e.gif")])
    assert f"model {bad} is not an SB3 model zip" in line


def test_show_refuses_a_model_of_another_scenario(small_model, tmp_path, capsys):
    argv = ["--model", str(small_model), "--scenario", "city", "--out", str(tmp_path / "e.gif")]
    line = usage_error(capsys, argv)
    assert f"model {small_model} does not fit RoadEdge-v1 ('city')" in line


def test_show_records_a_model_episode(small_model, tmp_path):
    out = tmp_path / "agent.gif"
    argv = ["--env-id", "RoadEdge-small-v1", "--model", str(small_model), "--steps", "2"]
    assert main([*argv, "--out", str(out), "--no-progress"]) == 0
    with Image.open(out) as gif:
        assert gif.n_frames == 3


def test_show_unwritable_out_fails_before_recording(tmp_path, capsys):
    blocker = tmp_path / "taken"
    blocker.write_text("x")
    line = usage_error(capsys, ["--out", str(blocker / "e.gif")])
    assert f"--out {blocker / 'e.gif'} cannot be written" in line
    (tmp_path / "dir.gif").mkdir()
    assert "is a folder" in usage_error(capsys, ["--out", str(tmp_path / "dir.gif")])


def test_show_mp4_without_imageio_ffmpeg_is_one_line(tmp_path, capsys, monkeypatch):
    """Refused before recording, with the package to install."""
    import sys

    monkeypatch.setitem(sys.modules, "imageio_ffmpeg", None)  # import fails
    out = tmp_path / "e.mp4"
    line = usage_error(capsys, ["--env-id", "RoadEdge-small-v1", "--out", str(out)])
    assert "needs imageio-ffmpeg" in line
    assert not out.exists()


def test_show_steps_one_records_the_first_tick(tmp_path):
    out = tmp_path / "one.gif"
    argv = ["--env-id", "RoadEdge-small-v1", "--steps", "1", "--out", str(out), "--no-progress"]
    assert main(argv) == 0
    with Image.open(out) as gif:
        assert gif.n_frames == 2  # the reset frame and the first tick


def test_show_list(capsys):
    from roadedge.baselines import policy_names

    assert main(["--list"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines == [*policy_names(), "oracle (privileged: reads the hidden future)"]


def test_every_option_has_help():
    from roadedge.agents.show import build_parser

    for action in build_parser()._actions:
        assert action.help, action.option_strings


def test_viz_extra_installs_the_mp4_writer():
    from pathlib import Path

    import tomllib

    pyproject = Path(__file__).resolve().parents[1] / "pyproject.toml"
    extras = tomllib.loads(pyproject.read_text())["project"]["optional-dependencies"]
    assert any(req.startswith("imageio-ffmpeg") for req in extras["viz"])
