"""The run store, the settings builder and the executor seam of resumable runs."""

from __future__ import annotations

import concurrent.futures as cf
from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np
import pytest

import negsample as ns
from negsample.pipeline import (
    ChunkExecutor,
    ChunkJob,
    LocalExecutor,
    RunStore,
    SettingsMismatch,
    run_chunks,
    run_settings,
)

DATA = ns.make_synthetic(2000, 60, 16, seed=2, max_positives=3)


def _run(chunk_size: int = 8, seed: int = 3, **kw: object) -> ns.pipeline.RunSettings:
    return run_settings(
        DATA.queries,
        ns.NumpyIndex(DATA.corpus),
        DATA.positives,
        ns.TriSampler(),
        n=5,
        seed=seed,
        chunk_size=chunk_size,
        **kw,  # type: ignore[arg-type]
    )


def _same(a: ns.Negatives, b: ns.Negatives) -> None:
    np.testing.assert_array_equal(a.ids, b.ids)
    np.testing.assert_array_equal(a.scores, b.scores)
    np.testing.assert_array_equal(a.query_index, b.query_index)
    np.testing.assert_array_equal(a.anchor_ids, b.anchor_ids)


REF = ns.mine(
    DATA.queries, ns.NumpyIndex(DATA.corpus), DATA.positives, ns.TriSampler(), n=5, seed=3
)


class ThreadExecutor:
    """An out-of-tree backend: chunks on a thread pool, yielded as they finish (any order)."""

    def __init__(self, workers: int = 3) -> None:
        self.workers = workers
        self.cancelled = 0

    def run(
        self, job: ChunkJob, chunks: Sequence[tuple[int, int]]
    ) -> Iterator[tuple[int, ns.Negatives]]:
        with cf.ThreadPoolExecutor(self.workers) as pool:
            futures = {pool.submit(job.compute, a, b): i for i, (a, b) in enumerate(chunks)}
            try:
                for f in cf.as_completed(futures):
                    yield futures[f], f.result()
            except GeneratorExit:
                self.cancelled = sum(f.cancel() for f in futures)
                raise


def test_another_executor_gives_the_same_bytes_and_resumes(tmp_path: Path) -> None:
    ex = ThreadExecutor()
    assert isinstance(ex, ChunkExecutor) and isinstance(LocalExecutor(), ChunkExecutor)
    got = run_chunks(RunStore(tmp_path / "a"), _run(), ex)
    _same(got, REF)

    # stopped after 3 chunks (Ctrl-C in on_chunk): the rest is cancelled, 3 saved; a
    # local run continues the thread pool's, and the other way round
    def stop(done: int, total: int) -> None:
        if done == 3:
            raise KeyboardInterrupt

    store = RunStore(tmp_path / "b")
    logs: list[str] = []
    with pytest.raises(KeyboardInterrupt):
        run_chunks(store, _run(), ThreadExecutor(workers=1), on_chunk=stop, log=logs.append)
    assert store.count_chunks() == 3
    assert any("stopped: 3 of 8 chunks are saved" in m for m in logs), logs
    with pytest.raises(ns.RunIncomplete, match="stopped after 5 of 8"):
        run_chunks(store, _run(), LocalExecutor(), max_chunks=2)
    logs.clear()
    _same(run_chunks(store, _run(), ThreadExecutor(), log=logs.append), REF)
    assert "resumed 5 of 8 chunks" in " ".join(logs)


def test_mine_resumable_is_the_local_executor(tmp_path: Path) -> None:
    """The public entry point and the seam write the same work folder: either continues."""
    wd = tmp_path / "w"
    with pytest.raises(ns.RunIncomplete):
        ns.mine_resumable(
            DATA.queries,
            ns.NumpyIndex(DATA.corpus),
            DATA.positives,
            ns.TriSampler(),
            n=5,
            seed=3,
            chunk_size=8,
            work_dir=wd,
            max_chunks=4,
        )
    logs: list[str] = []
    _same(run_chunks(RunStore(wd), _run(), ThreadExecutor(), log=logs.append), REF)
    assert "resumed 4 of 8 chunks" in " ".join(logs)


class Faulty:
    def __init__(self, twice: bool) -> None:
        self.twice = twice

    def run(
        self, job: ChunkJob, chunks: Sequence[tuple[int, int]]
    ) -> Iterator[tuple[int, ns.Negatives]]:
        for i, (a, b) in enumerate(chunks[: 1 if self.twice else 2]):
            yield i, job.compute(a, b)
        if self.twice:
            yield 0, job.compute(*chunks[0])


def test_an_executor_that_misses_or_repeats_chunks_is_caught(tmp_path: Path) -> None:
    with pytest.raises(RuntimeError, match="no result for 6 chunks"):
        run_chunks(RunStore(tmp_path / "a"), _run(), Faulty(twice=False))
    with pytest.raises(RuntimeError, match="twice or unasked"):
        run_chunks(RunStore(tmp_path / "b"), _run(), Faulty(twice=True))


def test_store_files_and_rejections(tmp_path: Path) -> None:
    run = _run()
    store = RunStore(tmp_path / "w")
    assert store.lock_file == tmp_path / "w.lock"
    with store.lock():
        store.prepare(run.hash, run.settings, None)
        a, b = run.chunks[0]
        part = run.job.compute(a, b)
        store.save_chunk(run.hash, a, b, part)
        got = store.load_chunk(run.hash, a, b)
        assert isinstance(got, ns.Negatives)
        _same(got, part)
        assert store.load_chunk(run.hash, *run.chunks[1]) is None
        store.chunk_file(run.hash, *run.chunks[1]).write_bytes(b"not a chunk")
        other = "f" * 64
        store.save_chunk(other, *run.chunks[2], run.job.compute(*run.chunks[2]))
        store.chunk_file(other, *run.chunks[2]).rename(store.chunk_file(run.hash, *run.chunks[2]))
        assert store.load_chunk(run.hash, *run.chunks[1]) == "damaged"
        assert store.load_chunk(run.hash, *run.chunks[2]) == "foreign"
        found = store.finished(run.hash, run.chunks)
        assert list(found.parts) == [0] and (found.damaged, found.foreign) == (1, 1)
        assert store.count_chunks() == 1  # the two untrusted files are gone
    assert not store.lock_file.exists()
    store.remove()
    assert not store.path.exists()


def test_a_mismatch_names_what_differs(tmp_path: Path) -> None:
    store = RunStore(tmp_path / "w")
    with pytest.raises(ns.RunIncomplete):
        run_chunks(store, _run(settings={"split": "train"}), max_chunks=1)
    for kw, what in (
        ({"settings": {"split": "dev"}}, "user.split"),
        ({"chunk_size": 9, "settings": {"split": "train"}}, "chunk_size"),
    ):
        with pytest.raises(SettingsMismatch, match=f"differ in {what}"):
            run_chunks(store, _run(**kw))  # type: ignore[arg-type]


def test_the_same_inputs_give_one_hash_whichever_path() -> None:
    """mine_resumable, the Ray runner (workers hold the index: ``index=None`` and its
    identity given) and mine_dataset build their settings here: the same inputs, the same
    hash."""
    from negsample.pipeline.settings import index_fingerprint

    a = _run()
    b = run_settings(
        DATA.queries,
        None,
        DATA.positives,
        ns.TriSampler(),
        n=5,
        seed=3,
        chunk_size=8,
        n_corpus=DATA.corpus.shape[0],
        index_identity=index_fingerprint(ns.NumpyIndex(DATA.corpus)),
    )
    assert a.hash == b.hash and a.chunks == b.chunks
    assert _run(seed=4).hash != a.hash
    assert a.settings["index"]["type"] == "negsample.index.numpy_index.NumpyIndex"
