"""Integrations with training frameworks, imported on demand (they need the extras):

- :mod:`negsample.integrations.sentence_transformers` (``pip install "negsample[st]"``).
"""
