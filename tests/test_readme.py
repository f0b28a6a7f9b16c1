"""README.md works as written, on a fresh install.

* Every ```python block runs as it stands, in a fresh interpreter started in an empty
  folder (so a block that forgets ``import roadedge.envs`` or the ``roadedge.envs:``
  prefix fails here, as it would for a user, instead of passing on the registrations
  of earlier tests).
* Every inline ``gym.make(...)`` / ``gym.make_vec(...)`` makes its env after
  ``import gymnasium as gym`` (nothing else), in a fresh interpreter.
* Every shell command (in ```bash blocks and in inline code) is checked without the
  work it would do: a ``make`` target exists; ``roadedge-eval`` / ``roadedge-show`` /
  ``train.py`` arguments go through the command's own parser (abbreviations off, so a
  renamed option fails) and the names and ``KEY=VALUE`` pairs they give through its own
  checks; other programs list every option the README gives in their ``--help``.
  ``python -m rl_zoo3.train`` is run for real in ``test_other_rl_code.py``.
"""

from __future__ import annotations

import importlib
import importlib.util
import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
README = REPO / "README.md"
TEXT = README.read_text()
ENV = {**os.environ, "OMP_NUM_THREADS": "1"}


def fenced(lang: str) -> list[tuple[str, str]]:
    """(heading above it, code) of every fenced block in ``lang``."""
    found = []
    for m in re.finditer(rf"^```{lang}\n(.*?)^```", TEXT, re.S | re.M):
        headings = re.findall(r"^#+ (.+)$", TEXT[: m.start()], re.M)
        found.append((headings[-1] if headings else "top", m.group(1)))
    return found


def inline_code() -> list[str]:
    """Inline code spans outside fenced blocks, whitespace (line breaks) collapsed."""
    prose = re.sub(r"^```.*?^```", "", TEXT, flags=re.S | re.M)
    return [" ".join(span.split()) for span in re.findall(r"`([^`]+)`", prose)]


def shell_commands() -> list[str]:
    """Every command of the bash blocks (continuations joined, comments dropped) and every
    inline span that is a command."""
    commands = []
    for _, block in fenced("bash"):
        for line in block.replace("\\\n", " ").splitlines():
            line = line.split("  #")[0].strip()
            if line and not line.startswith("#"):
                commands.append(" ".join(line.split()))
    starts = ("make ", "roadedge-", "python ", "pip ", "tensorboard ")
    commands += [span for span in inline_code() if span.startswith(starts)]
    return list(dict.fromkeys(commands))


def scripts() -> dict[str, str]:
    """The console scripts of pyproject.toml: name -> module."""
    text = (REPO / "pyproject.toml").read_text()
    return dict(re.findall(r'^(roadedge-[\w-]+) = "([\w.]+):main"$', text, re.M))


def run_python(code: str, cwd: Path, timeout: float = 300) -> subprocess.CompletedProcess:
    script = cwd / "snippet.py"
    script.write_text(code)
    return subprocess.run(
        [sys.executable, str(script)], cwd=cwd, env=ENV, capture_output=True, text=True,
        timeout=timeout,
    )  # fmt: skip


PYTHON_BLOCKS = fenced("python")


def test_the_readme_has_what_these_tests_read():
    headings = [heading for heading, _ in PYTHON_BLOCKS]
    assert "Use it from your own code" in headings
    assert "The native batched env" in headings
    assert len(PYTHON_BLOCKS) >= 4
    assert any(c.startswith("roadedge-eval ") for c in shell_commands())


@pytest.mark.parametrize(
    "index", range(len(PYTHON_BLOCKS)), ids=[f"{i}:{h}" for i, (h, _) in enumerate(PYTHON_BLOCKS)]
)
def test_python_block_runs_as_written(index, tmp_path):
    heading, code = PYTHON_BLOCKS[index]
    done = run_python(code, tmp_path)
    assert done.returncode == 0, f"README block under {heading!r} failed:\n{done.stderr[-3000:]}"
    assert done.stdout.strip(), "every block prints what it shows"


def test_inline_gym_make_calls_make_their_env(tmp_path):
    calls = [span for span in inline_code() if re.match(r"gym(nasium)?\.make(_vec)?\(.*\)$", span)]
    assert len(calls) >= 3
    lines = ["import gymnasium\nimport gymnasium as gym"]
    lines += [f"env = {call}\nenv.close()\nprint({call!r})" for call in calls]
    done = run_python("\n".join(lines), tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.count(".make") == len(calls)


COMMANDS = shell_commands()


def _parse_strict(parser, argv):
    parser.allow_abbrev = False  # a renamed option must not pass as a prefix of another
    return parser.parse_args(argv)


def _concrete(value: str | None) -> bool:
    """Not a placeholder such as ``<preset>`` or ``runs/<run>/best_model.zip``."""
    return value is not None and "<" not in value


def _check_scenario(scenario: str | None) -> None:
    from roadedge.envs import preset_names

    if _concrete(scenario):
        assert scenario in preset_names(), scenario


def _check_eval(argv: list[str]) -> None:
    from roadedge.agents import evaluate as ev

    args = _parse_strict(ev.build_parser(), argv)
    ev.resolve_policies(args.policies)  # the names; the model paths are placeholders
    ev.parse_pairs(args.env_kwargs, "--env-kwargs")
    _check_scenario(args.scenario)
    for model in args.model:
        assert not _concrete(model) or Path(REPO, model).is_file(), model


def _check_show(argv: list[str]) -> None:
    from roadedge.agents import evaluate as ev
    from roadedge.agents import show

    args = _parse_strict(show.build_parser(), argv)
    ev._check_policy_name(args.policy)
    show.parse_pairs(args.env_kwargs, "--env-kwargs")
    _check_scenario(args.scenario)
    assert not _concrete(args.model) or Path(REPO, args.model).is_file(), args.model
    assert Path(args.out).suffix in (".gif", ".mp4")


def _check_train(argv: list[str]) -> None:
    from roadedge.agents import train_args

    parser = train_args.build_parser()
    _parse_strict(parser, argv)  # the strict parse; parse_args adds the range checks
    args = train_args.parse_args(argv)
    if args.resume is None:
        train_args.resolve_config(args)  # env id, hyperparameter keys, KEY=VALUE pairs


def _check_help_lists_options(argv: list[str], command: str) -> None:
    """``argv --help`` succeeds and names every ``--option`` of ``command``."""
    done = subprocess.run(
        [*argv, "--help"], cwd=REPO, env=ENV, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr[-2000:]
    for option in re.findall(r"(?<!\S)(--[\w-]+)", command):
        assert option in done.stdout, f"{option} of `{command}` is not in its --help"


@pytest.mark.parametrize("command", COMMANDS)
def test_shell_command_exists_with_these_options(command, tmp_path):
    argv = shlex.split(command)
    program, rest = argv[0], argv[1:]
    if program == "make":
        (target,) = [a for a in rest if "=" not in a]
        makefile = (REPO / "Makefile").read_text()
        assert re.search(rf"^{re.escape(target)}:", makefile, re.M), f"no make target {target}"
        for setting in (a for a in rest if "=" in a):  # a variable the Makefile reads
            name, value = setting.split("=", 1)
            assert re.search(rf"^{name} \?=", makefile, re.M), f"the Makefile has no {name}"
            if name == "EXTRAS":
                pyproject = (REPO / "pyproject.toml").read_text()
                for extra in value.split(","):
                    assert re.search(rf"^{extra} = \[", pyproject, re.M), f"no extra {extra}"
    elif program == "roadedge-trace":
        from roadedge.envs.trace_cli import build_parser

        assert scripts()[program] == "roadedge.envs.trace_cli"
        if rest:
            build_parser().parse_args(rest)
    elif program in ("roadedge-eval", "roadedge-show", "roadedge-bench"):
        module = scripts()[program]  # a console script of the package
        if program == "roadedge-eval":
            _check_eval(rest)
        elif program == "roadedge-show":
            _check_show(rest)
        else:
            _check_help_lists_options([sys.executable, "-m", module], command)
    elif argv[:2] == ["python", "train.py"]:
        _check_train(argv[2:])
    elif argv[:2] == ["python", "-m"]:
        module = argv[2]
        if module.startswith("rl_zoo3"):
            pytest.skip("run for real in test_other_rl_code.py")
        assert importlib.util.find_spec(module) is not None, module
        assert callable(importlib.import_module(module).main)
        if rest[2:]:
            _check_help_lists_options([sys.executable, "-m", module], command)
    elif argv[:2] == ["python", "-c"]:
        done = subprocess.run(
            [sys.executable, "-c", argv[2]], cwd=tmp_path, env=ENV, capture_output=True,
            text=True, timeout=120,
        )  # fmt: skip
        assert done.returncode == 0, done.stderr[-2000:]
        assert done.stdout.strip()
    elif program == "python":  # a script of the repository, e.g. tests/mutants.py
        assert (REPO / argv[1]).is_file(), argv[1]
        _check_help_lists_options([sys.executable, argv[1]], command)
    elif argv[:3] == ["pip", "install", "-e"]:
        assert re.fullmatch(r"\.(\[[\w,]+\])?", argv[3]), argv[3]
        extras = re.findall(r"\w+", argv[3])
        pyproject = (REPO / "pyproject.toml").read_text()
        for extra in extras:
            assert re.search(rf"^{extra} = \[", pyproject, re.M), f"no extra {extra}"
    elif program == "tensorboard":
        pytest.importorskip("tensorboard")  # installed by the `train` extra
    else:
        pytest.fail(f"no check for the README command `{command}`: add one here")
