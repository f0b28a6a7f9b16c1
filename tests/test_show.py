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


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--policy", "threshold+greedy"], "unknown policy"),
        (["--out", "episode.avi"], ".gif or .mp4"),
        (["--every", "0"], "--every"),
        (["--scale", "2"], "--scale"),
        (["--model", "missing.zip"], "not found"),
    ],
)
def test_show_rejects_bad_arguments(argv, message):
    with pytest.raises(SystemExit, match=message):
        main(argv)
