"""The listwise judge against a chat-completions stub on 127.0.0.1 that answers listwise
prompts deterministically, its answer parser, the batching rule, the shared cache with the
pointwise judge, and the three false-negative actions of the denoising step (remove,
relabel as positives, drop the query) through to the writers."""

from __future__ import annotations

import json
import re
import threading
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import negsample as ns
from negsample.scoring import (
    DEFAULT_LISTWISE_PROMPT,
    DEFAULT_PROMPT,
    JudgeItem,
    JudgementCache,
    ListwiseJudge,
    ListwisePrompt,
    LLMJudge,
    mine_denoised,
    parse_labels,
)
from tests.beir_helpers import write_beir

_CAND = re.compile(r"^\[(\d+)\] (.*?)(?=\n\n\[\d+\] |\n\nReply with|\Z)", re.S | re.M)
_POINT = re.compile(r"Candidate paragraph:\n(.*?)\n\nReply with", re.S)

# how the stub answers one listwise request: candidate texts -> reply text
Answer = Callable[[list[str]], str]


def _marked(docs: list[str]) -> str:
    """Each document's label is the text after its ``=>``; HN without one."""
    return json.dumps(
        {str(i): (d.split("=>", 1)[1] if "=>" in d else "HN") for i, d in enumerate(docs, 1)}
    )


class Stub:
    """A chat-completions server: listwise prompts are answered by ``answer`` (by default
    the labels marked in the candidate texts), pointwise ones by the mark of their one
    candidate. Records each request's candidates."""

    def __init__(self, answer: Answer = _marked) -> None:
        self.answer = answer
        self.lock = threading.Lock()
        self.lists: list[list[str]] = []  # candidates of each listwise request
        self.points: list[str] = []  # the document of each pointwise request
        stub = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                text = body["messages"][-1]["content"]
                if "Candidate paragraphs:" in text:
                    block = text.split("Candidate paragraphs:\n", 1)[1]
                    docs = [m.group(2) for m in _CAND.finditer(block)]
                    with stub.lock:
                        stub.lists.append(docs)
                    reply = stub.answer(docs)
                else:
                    doc = _POINT.search(text).group(1)  # type: ignore[union-attr]
                    with stub.lock:
                        stub.points.append(doc)
                    reply = doc.split("=>", 1)[1] if "=>" in doc else "HN"
                payload = json.dumps(
                    {"choices": [{"message": {"role": "assistant", "content": reply}}]}
                ).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}/v1"

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def stub() -> Iterator[Stub]:
    s = Stub()
    yield s
    s.close()


def _items(docs: list[str], query: str = "what lowers LDL?") -> list[JudgeItem]:
    return [JudgeItem(query, "Oats lower LDL.", d) for d in docs]


def _lw(url: str, **kw: Any) -> ListwiseJudge:
    args: dict[str, Any] = dict(base_url=url, model="m", backoff_base=0.01, timeout=5.0)
    args.update(kw)
    return ListwiseJudge(**args)


# -- the parser -------------------------------------------------------------------------------


def test_parse_labels() -> None:
    k = 3
    cases: dict[str, list[Any]] = {
        '{"1": "HN", "2": "FN", "3": "TN"}': ["HN", "FN", "TN"],
        '{"labels": {"1": "hard negative", "2": "false negative", "3": "tn"}}': [
            "HN",
            "FN",
            "TN",
        ],
        '{"[1]": "HN", "candidate 2": "FN", "#3": "TN"}': ["HN", "FN", "TN"],
        '{"1": {"label": "FN", "why": "it answers"}, "3": "HN"}': ["FN", None, "HN"],
        '[{"id": 1, "label": "TN"}, {"candidate": "3", "label": "FN"}]': ["TN", None, "FN"],
        '["HN", "FN", "TN"]': ["HN", "FN", "TN"],
        '["HN", "FN"]': [None, None, None],  # a positional list of the wrong length
        'Sure! Here you go: {"1": "HN", "2": "FN", "3": "TN"} Hope it helps.': ["HN", "FN", "TN"],
        '```json\n{"1": "HN", "2": "maybe", "3": "FN/HN"}\n```': ["HN", None, None],
        '<think>2 looks like FN</think>{"1": "TN", "2": "FN", "3": "HN"}': ["TN", "FN", "HN"],
        "<think>2 looks like FN, let me check the dose": [None, None, None],
        '{"1": "HN", "1": "FN", "2": "TN", "3": "TN"}': [None, "TN", "TN"],  # two answers
        '{"1": "HN", "2": "HN", "3": "HN", "4": "FN", "0": "FN"}': ["HN", "HN", "HN"],
        "1: HN\n2. FN - it gives the dose\n- [3] true negative": ["HN", "FN", "TN"],
        "**1**: HN\n3) TN": ["HN", None, "TN"],
        "I cannot judge these.": [None, None, None],
        "": [None, None, None],
        "{broken json": [None, None, None],
    }
    for text, want in cases.items():
        assert parse_labels(text, k) == want, text
    assert parse_labels("{}", 0) == []
    with pytest.raises(ValueError, match="k must be"):
        parse_labels("{}", -1)


def test_prompt_fields_and_criteria() -> None:
    with pytest.raises(ValueError, match="fields"):
        ListwisePrompt(user="{query} {candidates}")
    msgs = DEFAULT_LISTWISE_PROMPT.messages("q?", "pos.", ["a", "b"])
    assert "[1] a\n\n[2] b" in msgs[-1]["content"] and msgs[0]["role"] == "system"
    # the default listwise and pointwise prompts share their criteria (and cached labels)
    assert DEFAULT_LISTWISE_PROMPT.criteria_id == DEFAULT_PROMPT.criteria_id
    other = ListwisePrompt(user=DEFAULT_LISTWISE_PROMPT.user.replace("below", "here"))
    assert other.criteria_id != DEFAULT_PROMPT.criteria_id
    assert ListwisePrompt(user=other.user, criteria="mine").criteria_id == "mine"


# -- the judge ---------------------------------------------------------------------------------


def test_one_request_per_query(stub: Stub) -> None:
    docs = ["a=>FN", "b=>HN", "c=>TN", "d", "e=>FN"]
    items = _items(docs) + _items(["x=>TN", "y=>FN"], query="other query")
    judge = _lw(stub.url)
    labels = judge.judge(items)
    assert labels == ["FN", "HN", "TN", "HN", "FN", "TN", "FN"]
    assert sorted(stub.lists) == sorted([docs, ["x=>TN", "y=>FN"]])  # one request per query

    st = judge.stats
    assert st.requests == 2 and st.pairs == 7 and st.malformed == 0 and st.failures == 0


def test_batching_rule(stub: Stub) -> None:
    docs = [f"d{i}=>HN" for i in range(7)]
    assert _lw(stub.url, max_candidates=3).judge(_items(docs)) == ["HN"] * 7
    assert sorted(len(x) for x in stub.lists) == [1, 3, 3]
    # the order of the candidates is kept inside and across requests
    assert sorted(stub.lists, key=lambda x: x[0]) == [docs[0:3], docs[3:6], docs[6:7]]
    stub.lists.clear()
    # a character budget: 10-character texts, 25 characters per request -> 2 per request;
    # a text longer than the budget goes alone
    long = ["x" * 30 + "=>TN"]
    docs = [f"e{i}-----=>HN" for i in range(5)] + long
    _lw(stub.url, max_chars=25).judge(_items(docs))
    assert sorted(len(x) for x in stub.lists) == [1, 1, 2, 2]


def test_missing_and_malformed_items_are_counted_never_tn(tmp_path: Path) -> None:
    def answer(docs: list[str]) -> str:
        full = json.loads(_marked(docs))
        for i, d in enumerate(docs, 1):
            if d.startswith("gone"):
                del full[str(i)]
            elif d.startswith("odd"):
                full[str(i)] = "probably relevant"
        return json.dumps(full)

    stub = Stub(answer)
    try:
        cache = tmp_path / "c.sqlite"
        judge = _lw(stub.url, cache=cache)
        docs = ["a=>FN", "gone=>TN", "b=>TN", "odd=>TN"]
        assert judge.judge(_items(docs)) == ["FN", None, "TN", None]
        st = judge.stats
        assert st.malformed == 2 and st.failures == 2 and st.requests == 1
        assert len(JudgementCache(cache)) == 2  # only valid labels are cached
        # the rerun asks only for the two left without a label, in one request
        again = _lw(stub.url, cache=cache)
        assert again.judge(_items(docs)) == ["FN", None, "TN", None]
        assert stub.lists[-1] == ["gone=>TN", "odd=>TN"] and again.stats.cache_hits == 2
        # an answer that is not JSON nor lines at all: every item None
        stub.answer = lambda docs: "I would rather not."
        bad = _lw(stub.url)
        assert bad.judge(_items(["p=>FN", "q=>HN"])) == [None, None]
        assert bad.stats.malformed == 2
    finally:
        stub.close()


def test_listwise_answers_fill_the_pointwise_cache_and_back(stub: Stub, tmp_path: Path) -> None:
    cache = tmp_path / "shared.sqlite"
    docs = ["a=>FN", "b=>HN", "c=>TN"]
    listwise = _lw(stub.url, cache=cache)
    assert listwise.judge(_items(docs)) == ["FN", "HN", "TN"]
    pointwise = LLMJudge(base_url=stub.url, model="m", cache=cache)
    assert pointwise.version == listwise.version
    assert pointwise.judge(_items(docs)) == ["FN", "HN", "TN"]
    assert stub.points == [] and pointwise.stats.cache_hits == 3 and pointwise.stats.requests == 0
    # and the other way: pointwise first, a listwise run asks only for the new ones
    more = ["d=>FN", "e=>HN"]
    assert pointwise.judge(_items(more)) == ["FN", "HN"]
    n_lists = len(stub.lists)
    again = _lw(stub.url, cache=cache)
    assert again.judge(_items(docs + more + ["f=>TN"])) == ["FN", "HN", "TN", "FN", "HN", "TN"]
    assert stub.lists[n_lists:] == [["f=>TN"]]
    # another model, or a prompt with other criteria, is another key
    _lw(stub.url, cache=cache, model="other").judge(_items(docs))
    assert len(stub.lists) == n_lists + 2


# -- the false-negative actions, end to end -------------------------------------------------

N_DOCS, N_Q = 400, 24


def _fn(j: int) -> bool:
    return j % 4 == 0


@pytest.fixture(scope="module")
def beir(tmp_path_factory: pytest.TempPathFactory) -> ns.BeirDataset:
    root = write_beir(tmp_path_factory.mktemp("beir"), n_docs=N_DOCS, n_queries=N_Q)
    return ns.load_beir(root, split="train")


def _texts(ds: ns.BeirDataset) -> list[str]:
    # what the stub labels: every fourth corpus row is a false negative
    return [f"{t}=>{'FN' if _fn(j) else 'HN'}" for j, t in enumerate(ds.document_texts)]


def _mine(ds: ns.BeirDataset, url: str, **kw: Any) -> Any:
    rng = np.random.default_rng(0)
    docs = rng.normal(size=(ds.n_corpus, 16)).astype(np.float32)
    queries = rng.normal(size=(ds.n_queries, 16)).astype(np.float32)
    args: dict[str, Any] = dict(
        query_texts=ds.query_texts, document_texts=_texts(ds), n=4, seed=0, oversample=2.0
    )
    args.update(kw)
    judge = args.pop("judge", None) or _lw(url)
    return mine_denoised(
        queries, ns.NumpyIndex(docs), ds.positives, ns.TopKSampler(k=40), judge=judge, **args
    )


def test_remove_is_the_default(stub: Stub, beir: ns.BeirDataset) -> None:
    res = _mine(beir, stub.url)
    ids = res.negatives.ids
    assert not any(_fn(int(d)) for d in ids[ids >= 0])
    assert res.stats.fn_action == "remove" and res.stats.removed["judge_fn"] > 0
    assert all(np.array_equal(a, b) for a, b in zip(res.positives, beir.positives, strict=True))
    assert res.dropped_queries.size == 0 and res.stats.relabelled == 0
    # the listwise judge asked about a row's draws in one request per pass, not one per draw
    assert res.stats.judge.requests < res.stats.pairs_judged / 2


def test_relabel_adds_the_false_negatives_as_positives(
    stub: Stub, beir: ns.BeirDataset, tmp_path: Path
) -> None:
    res = _mine(beir, stub.url, fn_action="relabel")
    assert res.stats.relabelled == res.stats.removed["judge_fn"] > 0
    for q in range(beir.n_queries):
        before, now = beir.positives[q], res.positives[q]
        assert np.array_equal(now[: before.size], before)
        added = now[before.size :].tolist()
        rows = np.flatnonzero(res.negatives.query_index == q)
        fns = [d for r in rows for d in res.extra_positives[r].tolist()]
        assert added == list(dict.fromkeys(fns)) and all(_fn(d) for d in added)
        assert not set(added) & set(res.negatives.ids[rows].ravel().tolist())
    # the writers see them as positives of their query
    ds2 = res.with_positives(beir)
    out = tmp_path / "pairs.jsonl"
    ns.write_negatives(res.negatives, ds2, out, "labeled-pair")
    rows = [json.loads(x) for x in out.read_text().splitlines()]
    n_pos = sum(r["label"] == 1 for r in rows)
    queries_with_rows = set(res.negatives.query_index.tolist())
    assert n_pos == sum(res.positives[q].size for q in queries_with_rows)
    assert n_pos > sum(beir.positives[q].size for q in queries_with_rows)
    # the dataset given is left as it was
    assert sum(p.size for p in beir.positives) < sum(p.size for p in ds2.positives)


def test_drop_query_above_a_count(stub: Stub, beir: ns.BeirDataset, tmp_path: Path) -> None:
    base = _mine(beir, stub.url)
    fn_per_q = {
        int(q): base.extra_positives[r].size for r, q in enumerate(base.negatives.query_index)
    }
    res = _mine(beir, stub.url, fn_action="drop-query", drop_above=1)
    want = sorted(q for q, k in fn_per_q.items() if k > 1)
    assert 0 < len(want) < N_Q
    assert res.dropped_queries.tolist() == want
    assert res.stats.dropped_queries == len(want) == res.stats.dropped_query_rows
    assert not set(res.negatives.query_index.tolist()) & set(want)
    # the queries kept are exactly what "remove" gave them
    keep = ~np.isin(base.negatives.query_index, want)
    assert np.array_equal(res.negatives.ids, base.negatives.ids[keep])
    # absent from the written file too
    out = tmp_path / "st.jsonl"
    ns.write_negatives(res.negatives, res.with_positives(beir), out, "st-ntuple")
    written = {json.loads(x)["anchor"] for x in out.read_text().splitlines()}
    assert not written & {beir.query_texts[q] for q in want}
    # the same output and counts whatever the chunking
    again = _mine(beir, stub.url, fn_action="drop-query", drop_above=1, chunk_rows=3)
    assert np.array_equal(again.negatives.ids, res.negatives.ids)
    assert again.stats.candidates_checked == res.stats.candidates_checked
