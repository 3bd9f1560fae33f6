"""Composer Copilot: the live engine (no Qt) and the PySide6 desktop app."""

__version__ = "0.1.0"
