"""The public API is what the docs say it is."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

import negsample as ns

DOCS = Path(__file__).parents[1] / "docs"


def test_all_is_sorted_and_importable() -> None:
    assert list(ns.__all__) == sorted(ns.__all__)
    for name in ns.__all__:
        assert hasattr(ns, name), name


def test_documented_api_exists() -> None:
    text = (DOCS / "api.md").read_text()
    documented = set(re.findall(r"^- `(\w+)`", text, flags=re.M))
    assert documented == set(ns.__all__), documented ^ set(ns.__all__)


def test_registry() -> None:
    assert {"random", "topk"} <= set(ns.available_samplers())
    assert ns.get_sampler("TopK", k=30) == ns.TopKSampler(k=30)
    assert ns.get_sampler("topksampler") == ns.TopKSampler()
    assert ns.sampler_from_string("topk") == ns.TopKSampler()
    assert ns.sampler_from_string("topk(k=30, strategy='top')") == ns.TopKSampler(
        k=30, strategy="top"
    )
    with pytest.raises(KeyError, match="unknown sampler 'nope'"):
        ns.get_sampler("nope")
    for bad in [
        "TopKSampler(30)",
        "TopKSampler(k=__import__('os'))",
        "a.b(k=1)",
        "TopK(**x)",
        "((",
    ]:
        with pytest.raises(ValueError):
            ns.sampler_from_string(bad)
    with pytest.raises(TypeError):
        ns.sampler_from_string("topk(kk=3)")


def test_samplers_are_frozen_keyword_only() -> None:
    s = ns.TopKSampler(k=10)
    with pytest.raises(AttributeError):
        s.k = 5  # type: ignore[misc]
    with pytest.raises(TypeError):
        ns.TopKSampler(10)  # type: ignore[misc]


def test_missing_extra_names_the_install(monkeypatch: pytest.MonkeyPatch) -> None:
    import builtins

    from negsample._optional import require

    real = builtins.__import__

    def fake(name: str, *a: object, **k: object) -> object:
        if name.startswith("faiss"):
            raise ImportError("no faiss")
        return real(name, *a, **k)  # type: ignore[arg-type]

    monkeypatch.setattr(builtins, "__import__", fake)
    monkeypatch.delitem(__import__("sys").modules, "faiss", raising=False)
    with pytest.raises(ImportError, match=r'pip install "negsample\[faiss\]"'):
        require("faiss")


def test_core_import_needs_numpy_only() -> None:
    import subprocess
    import sys

    code = (
        "import sys, negsample\n"
        "heavy = {'faiss', 'torch', 'sentence_transformers', 'datasets', 'pyarrow', 'matplotlib'}\n"
        "print(sorted(heavy & set(sys.modules)))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
