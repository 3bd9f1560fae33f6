"""The RWKV-7 music model: config, layers, WKV operators, sampling, checkpoints
and the REMI tokenizer that belongs to every checkpoint.

Nothing here imports Qt (tests/test_layering.py enforces it).
"""
