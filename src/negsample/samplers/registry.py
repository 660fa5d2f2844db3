"""Sampler registry and the config language: ``get_sampler("topk", k=200)`` and
``sampler_from_string("TopKSampler(k=200)")`` (a sampler's ``repr`` parses back).

Installed plugins reach it through the ``negsample.samplers`` entry points (so they reach
``negsample mine --sampler`` too): the first lookup of a name that is not registered loads
them, once. An entry point names a class (registered under the entry point's name, unless
its module registers it itself with :func:`register`) or a module that registers its
samplers when imported.
"""

from __future__ import annotations

import ast
import dataclasses
from typing import Any, TypeVar

from .._plugins import SAMPLERS, load_plugins, plugin_failures
from ..errors import InputError, InputTypeError

__all__ = ["available_samplers", "get_sampler", "register", "sampler_from_string"]

_REGISTRY: dict[str, type] = {}
T = TypeVar("T", bound=type)


def register(name: str) -> Any:
    """Class decorator: make a sampler available by ``name`` and by its class name."""

    def deco(cls: T) -> T:
        if dataclasses.is_dataclass(cls):  # a config repr that parses back
            cls.__repr__ = _config_repr  # type: ignore[method-assign]
        for key in (name.lower(), cls.__name__.lower()):
            if key in _REGISTRY and _REGISTRY[key] is not cls:
                raise InputError(f"sampler name {key!r} is already registered")
            _REGISTRY[key] = cls
        return cls

    return deco


def _config_repr(self: Any) -> str:
    """``Name(param=value, ...)``: the sampler's own parameters first, the shared ones
    (``on_shortfall``...) last, so the repr reads as a config and parses back."""
    fields = [f for f in dataclasses.fields(self) if f.repr]
    own = [f for f in fields if f.name not in _SHARED]
    shared = sorted((f for f in fields if f.name in _SHARED), key=lambda f: _SHARED.index(f.name))
    args = ", ".join(f"{f.name}={getattr(self, f.name)!r}" for f in own + shared)
    return f"{type(self).__name__}({args})"


_SHARED = ("positive_anchor", "temperature", "on_shortfall")


def _load_plugins() -> None:
    import types

    def adopt(name: str, obj: Any) -> None:
        if isinstance(obj, type):
            if obj not in _REGISTRY.values():
                register(name)(obj)
        elif isinstance(obj, types.ModuleType):
            pass  # importing it registered its samplers (@register)
        elif callable(obj):
            obj()  # a register() hook
        else:
            raise InputTypeError(f"entry point {name!r} is neither a class, a module nor a hook")

    load_plugins(SAMPLERS, adopt)


def available_samplers() -> list[str]:
    """Short names of the registered samplers (installed plugins included), sorted."""
    _load_plugins()
    names: dict[type, str] = {}
    for key, cls in _REGISTRY.items():  # a class's first key is the name it was registered by
        names.setdefault(cls, str(getattr(cls, "name", None) or key))
    return sorted(set(names.values()))


def get_sampler(name: str, **params: Any) -> Any:
    """Build a registered sampler by name (case-insensitive), e.g. ``get_sampler("topk", k=200)``;
    installed plugins are loaded on the first unknown name."""
    key = name.lower()
    if key not in _REGISTRY:
        _load_plugins()
    if key not in _REGISTRY:
        failed = plugin_failures(SAMPLERS).get(key)
        if failed:
            raise KeyError(failed)
        raise KeyError(f"unknown sampler {name!r}; available: {', '.join(available_samplers())}")
    return _REGISTRY[key](**params)


def sampler_from_string(spec: str) -> Any:
    """Parse ``"TopKSampler(k=200, strategy='top')"``, ``"topk(k=200)"`` or ``"topk"``.

    Only keyword arguments with literal values are accepted; nothing is evaluated.
    """
    try:
        node = ast.parse(spec.strip(), mode="eval").body
    except SyntaxError as exc:
        raise InputError(f"cannot parse sampler spec {spec!r}: {exc.msg}") from exc
    if isinstance(node, ast.Name):
        return get_sampler(node.id)
    if not isinstance(node, ast.Call) or not isinstance(node.func, ast.Name):
        raise InputError(f"sampler spec must look like Name(key=value, ...), got {spec!r}")
    if node.args:
        raise InputError(f"sampler spec {spec!r}: parameters must be given as key=value")
    params: dict[str, Any] = {}
    for kw in node.keywords:
        if kw.arg is None:
            raise InputError(f"sampler spec {spec!r}: ** is not allowed")
        try:
            params[kw.arg] = ast.literal_eval(kw.value)
        except ValueError as exc:
            raise InputError(
                f"sampler spec {spec!r}: value of {kw.arg!r} must be a literal"
            ) from exc
    return get_sampler(node.func.id, **params)
