"""Integrations with training frameworks, imported on demand (they need the extras):

- :mod:`negsample.integrations.sentence_transformers` (``pip install "negsample[st]"``): a
  drop-in ``mine_hard_negatives`` for sentence-transformers' own, and a thin trainer.
"""
