"""Run a subcommand through the module that owns it, imported lazily.

Lazy imports keep `--help` and the GUI start fast (torch is only loaded by the
commands that need it), and a command whose module does not exist yet answers
with one clear line and exit code 2 instead of a traceback or fake output.
"""
from __future__ import annotations

import argparse
import importlib
import sys
from typing import Callable

PROG = "composer-copilot"

# Exit codes: 0 ok, 1 a bad file or a failed operation, 2 usage / not available.
EXIT_FAILURE = 1
EXIT_UNAVAILABLE = 2


def error_line(message: str) -> None:
    """Print one error line on stderr, prefixed with the program name."""
    print(f"{PROG}: error: {message}", file=sys.stderr)


def _missing_is_target(exc: ModuleNotFoundError, module_name: str) -> bool:
    # Only the target module (or a package on its path) counts as "not built
    # yet"; a missing third-party dependency deeper down is a different error.
    if not exc.name:
        return False
    return module_name == exc.name or module_name.startswith(exc.name + ".")


def resolve(command: str, target: str) -> Callable[[argparse.Namespace], int] | int:
    """Import ``module:function`` for ``command``, or return an exit code."""
    module_name, func_name = target.split(":")
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        if _missing_is_target(exc, module_name):
            error_line(f"'{command}' is not available yet ({module_name} is not built)")
            return EXIT_UNAVAILABLE
        error_line(f"'{command}' needs the Python package '{exc.name}', which is not installed")
        return EXIT_FAILURE
    func = getattr(module, func_name, None)
    if func is None:
        error_line(f"'{command}' is not available yet ({target} is not built)")
        return EXIT_UNAVAILABLE
    return func


def run(command: str, target: str, args: argparse.Namespace) -> int:
    """Resolve and call a command handler; user errors become one line."""
    handler = resolve(command, target)
    if isinstance(handler, int):
        return handler
    try:
        return int(handler(args) or 0)
    except KeyboardInterrupt:
        error_line("interrupted")
        return 130
    except (OSError, ValueError) as exc:
        # Bad files, missing ports, bad checkpoints: the handlers raise these
        # with a message written for the user. --debug shows the traceback.
        if getattr(args, "debug", False):
            raise
        error_line(str(exc) or exc.__class__.__name__)
        return EXIT_FAILURE
