"""What the command lines share: user mistakes become one line on stderr and exit code 2.

A mistake in the arguments (an unknown policy, scenario or env id, a misspelled
``--env-kwargs`` key, a missing or corrupt model file, an output path that cannot be
written) is raised as :class:`UsageError` where it is found, before any episode runs;
:func:`run` prints it as ``<prog>: error: <message>`` (argparse's own format) and exits
with 2, argparse's code for bad arguments. No traceback: the message says what to fix.

:class:`UsageError` is a :class:`SystemExit`, so a caller without :func:`run` (e.g.
``train.py`` calling :func:`~roadedge.agents.evaluate.resolve_policies`) still stops
with the message and no traceback; it is also a ``ValueError`` for library callers.
"""

from __future__ import annotations

import os
import re
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

USAGE_EXIT_CODE = 2


class UsageError(SystemExit, ValueError):
    """A mistake in the command line; ``str(exc)`` is the one-line message.

    Also a ``ValueError``, so library callers (``evaluate()``) can catch it as the bad
    argument it is."""

    def __init__(self, message: str):
        super().__init__(message)
        self.message = message

    def __str__(self) -> str:
        return self.message


def fail(prog: str, message: str) -> SystemExit:
    """Print ``<prog>: error: <message>`` on stderr; return the exit (code 2) to raise."""
    print(f"{prog}: error: {message}", file=sys.stderr)
    return SystemExit(USAGE_EXIT_CODE)


def run(prog: str, body: Callable[[], int]) -> int:
    """``body()``, with a :class:`UsageError` turned into one line on stderr and exit
    code 2."""
    try:
        return body()
    except UsageError as exc:
        raise fail(prog, exc.message) from None


def parse_pairs(items: Sequence[str], flag: str) -> dict[str, Any]:
    """``KEY=VALUE`` command-line pairs, each value read as YAML (numbers, bools, lists,
    dicts; ``1e-3`` is a float, as in YAML 1.2); ``flag`` (``--env-kwargs``, ``--hp``)
    names the option in the error.

    The one parser of this syntax for ``roadedge-eval``, ``roadedge-show`` and
    ``train.py``. A pair without a key or without ``=``, or a value YAML cannot read
    (``[1``, ``!!int abc``, ``!!timestamp x``: whatever ``yaml.safe_load`` raises), is a
    :class:`UsageError` naming the pair; whether a readable value is *valid* is for the
    env or the algorithm to say."""
    import yaml

    out: dict[str, Any] = {}
    loader = _pairs_loader()
    for item in items:
        key, sep, text = item.partition("=")
        key = key.strip()
        if not sep or not key:
            raise UsageError(f"{flag} expects KEY=VALUE, got {item!r}")
        try:
            out[key] = yaml.load(text, Loader=loader)  # noqa: S506  (a SafeLoader)
        except yaml.YAMLError as exc:
            raise UsageError(f"{flag} {key}: cannot parse {text!r} ({yaml_problem(exc)})") from None
        except Exception as exc:  # noqa: BLE001  (a tag's constructor: int('abc'), a bad date)
            problem = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise UsageError(f"{flag} {key}: cannot parse {text!r} ({problem})") from None
    return out


def _pairs_loader():
    """PyYAML's ``SafeLoader`` that also reads ``1e-3`` and ``3E5`` as floats (YAML 1.2;
    PyYAML's YAML 1.1 wants a dot, ``1.0e-3``, and would give the string ``'1e-3'``)."""
    import yaml

    class PairsLoader(yaml.SafeLoader):
        pass

    exponent = re.compile(r"^[-+]?(?:[0-9]+\.?[0-9]*|\.[0-9]+)[eE][-+]?[0-9]+$")
    PairsLoader.add_implicit_resolver("tag:yaml.org,2002:float", exponent, list("-+0123456789."))
    return PairsLoader


def check_writable_dir(path: Path, flag: str) -> None:
    """Raise :class:`UsageError` unless the folder ``path`` exists and is writable or
    could be created (checked before any work, so a long run is not lost at the end)."""
    _check_dir(Path(path), flag, Path(path))


def check_writable_file(path: Path, flag: str) -> None:
    """Raise :class:`UsageError` unless the file ``path`` can be written (its folder
    exists and is writable, or can be created; ``path`` is not a folder)."""
    path = Path(path)
    if path.is_dir():
        raise UsageError(f"{flag} {path} is a folder, not a file")
    if path.exists() and not os.access(path, os.W_OK):
        raise UsageError(f"{flag} {path} is not writable")
    _check_dir(path.parent, flag, path)


def _check_dir(folder: Path, flag: str, shown: Path) -> None:
    probe = folder
    while not probe.exists() and probe.parent != probe:
        probe = probe.parent
    if probe.exists() and not probe.is_dir():
        what = "is not a folder" if probe == shown else f"cannot be written: {probe} is a file"
        raise UsageError(f"{flag} {shown} {what}")
    if not os.access(probe, os.W_OK | os.X_OK):
        raise UsageError(f"{flag} {shown} cannot be written: {probe} is not writable")


def yaml_problem(exc: Exception) -> str:
    """A YAML parse error in one line: the problem and, if known, file and line."""
    problem = getattr(exc, "problem", None) or str(exc).strip().splitlines()[0]
    mark = getattr(exc, "problem_mark", None)
    if mark is None:
        return problem
    name = "" if mark.name in ("<unicode string>", "<file>") else f"{mark.name}, "
    return f"{problem} ({name}line {mark.line + 1})"
