"""``load_index``: open a saved index of any type (kept apart from ``base`` so that the
protocol module never imports its implementations). The ``"type"`` in ``meta.json`` names
a kind of the registry (:mod:`negsample.index.registry`)."""

from __future__ import annotations

from .registry import load_index

__all__ = ["load_index"]
