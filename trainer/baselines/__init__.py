"""Comparison backbones behind RWKV7's interface: ``forward(tokens, target_index)``,
``init_state(batch)``, ``step(tokens, state)``, ``param_groups(wd)``, ``num_params()``.

The trainer and bench/backbones.py treat them exactly like the RWKV model.
"""
from trainer.baselines.lstm import LSTMConfig, LSTMLM
from trainer.baselines.transformer import TransformerConfig, TransformerLM

__all__ = ["LSTMConfig", "LSTMLM", "TransformerConfig", "TransformerLM"]
