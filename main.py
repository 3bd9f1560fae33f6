#!/usr/bin/env python3
"""Composer Copilot: `python main.py` starts the app; `--help` lists the commands."""
import sys

from copilot_app.cli import main

if __name__ == "__main__":
    try:
        sys.exit(main())
    except BrokenPipeError:  # e.g. `main.py tokenize x.mid | head`: the reader left
        sys.stderr.close()
        sys.exit(0)
