#!/usr/bin/env python3
"""Composer Copilot: `python main.py` starts the app; `--help` lists the commands."""
import sys

from copilot_app.cli import main

if __name__ == "__main__":
    sys.exit(main())
