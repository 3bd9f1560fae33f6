"""Bundled data: the default model and its card, example phrases, icons.

A package so that `importlib.resources` finds these files in an installed app.
"""
from pathlib import Path

RESOURCES_DIR = Path(__file__).resolve().parent
