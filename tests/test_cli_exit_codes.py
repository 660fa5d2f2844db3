"""Exit 2 is the user's bad input or settings only: a bug (a ValueError or TypeError from
inside numpy, or from an operation that failed) is exit 1, "unexpected ...", and keeps the
finished chunks of a run."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import negsample as ns
from negsample.cli import main
from negsample.errors import InputError, InputTypeError, is_input_error
from negsample.pipeline.store import RunStore
from tests.beir_helpers import write_beir
from tests.test_cli_errors import _one_error


def _mine(root: Path, out: Path, *extra: str) -> list[str]:
    return [
        "mine", "--data", str(root), "--embeddings", str(root / "embeddings"),
        "--sampler", "topk(k=20)", "--n", "4", "--chunk-size", "5", "--out", str(out),
        "--quiet", *extra,
    ]  # fmt: skip


def _numpy_value_error() -> None:
    np.reshape(np.arange(3), (2, 2))  # raised inside numpy: "cannot reshape array ..."


def _numpy_type_error() -> None:
    np.add(np.arange(2), "x")  # numpy's UFuncTypeError, a TypeError


@pytest.mark.parametrize(
    ("bug", "name", "text"),
    [
        (_numpy_value_error, "ValueError", "cannot reshape array of size 3"),
        (_numpy_type_error, "TypeError", "ufunc 'add' did not contain a loop"),
    ],
)
def test_a_bug_in_the_mine_flow_is_exit_1(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    bug: Any,
    name: str,
    text: str,
) -> None:
    root = write_beir(tmp_path / "beir")
    ref = tmp_path / "ref.jsonl"
    assert main(_mine(root, ref)) == 0
    real = RunStore.save_chunk
    calls = {"n": 0}

    def buggy(self: RunStore, h: str, a: int, b: int, part: ns.Negatives) -> None:
        calls["n"] += 1
        if calls["n"] == 3:
            bug()
        real(self, h, a, b, part)

    monkeypatch.setattr(RunStore, "save_chunk", buggy)
    out = tmp_path / "out.jsonl"
    capsys.readouterr()
    assert main(_mine(root, out)) == 1
    line = _one_error(capsys.readouterr().err)
    assert re.match(rf"negsample: error: unexpected \w*{name}: ", line)  # numpy's subclass
    assert text in line and line.endswith("(NEGSAMPLE_DEBUG=1 shows the traceback)")
    # a bug is not the user's input: the finished chunks are kept, the lock released
    work = tmp_path / ".out.jsonl.negsample-work"
    assert len(list(work.glob("chunk_*.npz"))) == 2
    assert not out.exists() and not Path(f"{work}.lock").exists()
    # NEGSAMPLE_DEBUG=1: the traceback (the exception itself)
    calls["n"] = 0
    monkeypatch.setenv("NEGSAMPLE_DEBUG", "1")
    with pytest.raises(TypeError if name == "TypeError" else ValueError, match=text[:20]):
        main(_mine(root, out))
    monkeypatch.delenv("NEGSAMPLE_DEBUG")
    monkeypatch.setattr(RunStore, "save_chunk", real)
    assert main(_mine(root, out)) == 0
    assert out.read_bytes() == ref.read_bytes()


def test_usage_errors_are_exit_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    root = write_beir(tmp_path / "beir")
    out = tmp_path / "out.jsonl"
    cases = [
        # an unknown sampler (the registry's KeyError, made an InputError at the call site)
        (["--sampler", "nosuch"], "unknown sampler 'nosuch'; available: random, resa2"),
        # a parameter the sampler does not take (the constructor's TypeError)
        (["--sampler", "topk(kk=3)"], "--sampler 'topk(kk=3)': TopKSampler.__init__() got"),
        (["--sampler", "topk(k=0)"], "k must be a positive integer, got 0"),
        # an n the sampler can never fill: refused before the data is read
        (["--sampler", "topk(k=3)", "--n", "7"], "rank window [0, 3) holds 3 candidates"),
        # a library check deep in the run (an explicit raise ValueError in negsample)
        (["--index", "torch:nonsense"], "device 'nonsense' is not a torch device name"),
    ]
    for extra, text in cases:
        argv = [*_mine(root, out), *extra]
        assert main(argv) == 2, extra
        err = capsys.readouterr().err
        assert text in _one_error(err), (extra, err)
        if "rank window" in text:
            assert "documents" not in err  # nothing was loaded
    assert sorted(p.name for p in tmp_path.iterdir()) == ["beir"]


def test_is_input_error() -> None:
    def caught(f: Any) -> BaseException:
        try:
            f()
        except Exception as exc:
            return exc
        raise AssertionError("no exception")

    assert is_input_error(InputError("x")) and is_input_error(InputTypeError("x"))
    assert isinstance(InputTypeError("x"), TypeError)
    assert is_input_error(caught(lambda: ns.TopKSampler(k=0)))  # negsample's own raise
    assert not is_input_error(caught(_numpy_value_error))
    assert not is_input_error(caught(_numpy_type_error))

    def here() -> None:
        raise ValueError("raised outside negsample")

    assert not is_input_error(caught(here))
    assert not is_input_error(ValueError("never raised: no traceback"))
    assert issubclass(ns.DataError, InputError)
    from negsample.io.writers import EmptyOutput
    from negsample.pipeline.resume import SettingsMismatch

    assert issubclass(EmptyOutput, InputError) and issubclass(SettingsMismatch, InputError)


def test_reader_messages_are_printed_intact(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A reader's message (file and line, or row) reaches stderr as it is, on one line,
    exit 2; a message on several lines is joined, nothing else changed."""
    from negsample.io import data

    root = write_beir(tmp_path / "beir")
    corpus = str(root / "corpus.jsonl")
    npy = root / "embeddings" / "corpus.npy"
    for exc, want in (
        (
            ns.DataError(corpus, 3000, "not valid UTF-8: byte 0xff at column 41"),
            f"{corpus}:3000: not valid UTF-8: byte 0xff at column 41",
        ),
        (
            InputError(f"{corpus}:7: a title\nthat spans\n  three lines"),
            f"{corpus}:7: a title that spans three lines",
        ),
        (ns.DataError(npy, None, "row 17 (id 'd17'): NaN"), f"{npy}: row 17 (id 'd17'): NaN"),
    ):

        def load(*a: Any, exc: Exception = exc, **k: Any) -> None:
            raise exc

        monkeypatch.setattr(data, "load_beir", load)
        assert main(_mine(root, tmp_path / "o.jsonl")) == 2
        assert _one_error(capsys.readouterr().err) == f"negsample: error: {want}"


def test_an_unknown_index_is_refused_before_the_data_is_read(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    root = write_beir(tmp_path / "beir", n_docs=60, n_queries=4)
    (root / "corpus.jsonl").write_text("not json\n")  # reading it would fail first
    assert main(_mine(root, tmp_path / "o.jsonl", "--index", "usearch")) == 2
    err = _one_error(capsys.readouterr().err)
    assert "--index 'usearch'" in err and "known kinds" in err
    assert not (tmp_path / "o.jsonl").exists()
