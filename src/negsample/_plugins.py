"""Installed plugins: the ``negsample.samplers`` and ``negsample.indexes`` entry points.

A registry calls :func:`load_plugins` the first time it is asked for a name it does not
know (and when it lists its names); every entry point of the group is loaded once per
process. Loading imports the entry point's object, which registers itself (a module that
calls ``register_index`` / uses ``@register``), or is passed to ``adopt`` (a sampler class
registered under the entry point's name, an index hook called). A plugin that fails to
import is logged in one line, kept in :func:`plugin_failures`, and named again when its
name is asked for.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from importlib import metadata
from typing import Any

__all__ = ["load_plugins", "plugin_failures"]

SAMPLERS = "negsample.samplers"
INDEXES = "negsample.indexes"

_log = logging.getLogger("negsample.plugins")
_loaded: set[str] = set()
_failures: dict[str, dict[str, str]] = {}


def load_plugins(group: str, adopt: Callable[[str, Any], None]) -> None:
    """Load every entry point of ``group`` (once per process): ``adopt(name, obj)``
    receives each loaded object; a failure is logged and remembered, never raised."""
    if group in _loaded:
        return
    _loaded.add(group)
    failures = _failures.setdefault(group, {})
    for ep in metadata.entry_points(group=group):
        try:
            adopt(ep.name, ep.load())
        except Exception as exc:  # a broken plugin must not break the others
            msg = (
                f"negsample plugin {ep.name!r} ({group}: {ep.value}) failed to load: "
                f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"
            ).rstrip(": ")
            failures[ep.name.lower()] = msg
            _log.warning(msg)


def plugin_failures(group: str) -> dict[str, str]:
    """Entry point name (lower case) -> the one-line reason it failed to load."""
    return dict(_failures.get(group, {}))


def _forget(group: str | None = None) -> None:
    """Load the entry points again on the next lookup (for tests)."""
    for g in [group] if group else list(_loaded | set(_failures)):
        _loaded.discard(g)
        _failures.pop(g, None)
