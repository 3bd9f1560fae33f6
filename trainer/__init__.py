"""Corpus building, datasets, the training loop, evaluation and baselines.

Run as ``python -m trainer``; the app starts it as a separate process.
"""
