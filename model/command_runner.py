"""Run a command-line subcommand through the module that owns it.

Both programs, ``composer-copilot`` (copilot_app/cli.py) and
``python -m trainer`` (trainer/__main__.py), name each subcommand's handler as
``"module:function"``. The module is imported only when its command runs, so
``--help`` and the GUI start stay fast (torch is loaded only by the commands
that need it). A user mistake or a bad file becomes one line on stderr and a
non-zero exit code, never a traceback.
"""
from __future__ import annotations

import argparse
import importlib
import sys

# Exit codes: 0 ok, 1 a bad file or a failed operation, 130 interrupted.
EXIT_FAILURE = 1
EXIT_INTERRUPTED = 130


def error_line(prog: str, message: str) -> None:
    """Print one error line on stderr, prefixed with the program name."""
    print(f"{prog}: error: {message}", file=sys.stderr)


def run(prog: str, command: str, target: str, args: argparse.Namespace) -> int:
    """Import ``target`` ("module:function"), call it with ``args``; its exit code.

    Handlers raise OSError/ValueError with a message written for the user
    (bad files, missing ports, bad checkpoints); ``--debug`` shows the
    traceback instead.
    """
    module_name, func_name = target.split(":")
    try:
        handler = getattr(importlib.import_module(module_name), func_name)
    except ModuleNotFoundError as exc:
        # Our own modules are always there; a missing import is a dependency
        # the user's environment lacks (an optional extra, say).
        error_line(prog, f"'{command}' needs the Python package '{exc.name}', which is not installed")
        return EXIT_FAILURE
    try:
        return int(handler(args) or 0)
    except KeyboardInterrupt:
        error_line(prog, "interrupted")
        return EXIT_INTERRUPTED
    except (OSError, ValueError) as exc:
        if getattr(args, "debug", False):
            raise
        error_line(prog, str(exc) or exc.__class__.__name__)
        return EXIT_FAILURE
