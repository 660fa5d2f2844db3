"""Every ```python block in the docs runs as written (```py blocks are shown, not run)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

DOCS = Path(__file__).parents[1] / "docs"
BLOCK = re.compile(r"^```python\n(.*?)^```", re.S | re.M)


def _blocks() -> list[tuple[str, str]]:
    out = []
    for md in sorted(DOCS.rglob("*.md")):
        for i, code in enumerate(BLOCK.findall(md.read_text())):
            out.append((f"{md.relative_to(DOCS)}#{i}", code))
    return out


@pytest.mark.parametrize("where, code", _blocks(), ids=[w for w, _ in _blocks()])
def test_doc_example_runs(where: str, code: str, tmp_path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    import sys
    import types

    from negsample.index import registry as index_registry
    from negsample.samplers import registry

    monkeypatch.chdir(tmp_path)
    # examples may register samplers and index kinds: keep the registries as they were
    monkeypatch.setattr(registry, "_REGISTRY", dict(registry._REGISTRY))
    monkeypatch.setattr(index_registry, "_KINDS", dict(index_registry._KINDS))
    monkeypatch.setattr(index_registry, "_BY_TYPE", dict(index_registry._BY_TYPE))
    if "faiss" in code.lower() or "FaissIndex" in code:
        pytest.importorskip("faiss")
    module = types.ModuleType("__docs__")
    monkeypatch.setitem(sys.modules, "__docs__", module)
    exec(compile(code, where, "exec"), module.__dict__)
