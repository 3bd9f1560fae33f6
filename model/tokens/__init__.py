"""REMI tokens for the music model: the one tokenizer config (``config``),
MIDI files in/out (``midi_io``), performance -> grid notes (``performance``),
the streaming encoder/decoder for live use (``streaming``), the grammar mask
for sampling (``grammar``) and the ``tokenize`` command (``cli``).
"""
