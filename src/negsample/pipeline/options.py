"""The settings of a command, as frozen configs checked when they are made.

:class:`DataOptions` (the BEIR folder, the embeddings or the model that encodes it, the
index), :class:`DenoiseOptions` (a teacher's margins, an LLM judge) and
:class:`RayOptions` (a cluster) are shared by ``negsample mine`` and ``negsample report``;
their field names are the command line's options (``--judge-url`` is ``judge_url``), and
their messages name those options. Making one raises :class:`~negsample.errors.InputError`
for values that do not go together, so every option is checked before any work starts.

:class:`TeacherSpec` and :class:`JudgeSpec` describe the scorer and the judge without
loading a model or opening a connection or a cache: :meth:`TeacherSpec.build` and
:meth:`JudgeSpec.build` do that when the work needs them.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from ..errors import InputError

__all__ = [
    "RAY_STAGES",
    "RESCORE_KINDS",
    "DataOptions",
    "DenoiseOptions",
    "JudgeSpec",
    "RayOptions",
    "TeacherSpec",
    "check_model_path",
    "check_url",
    "open_scoring",
]

#: The teacher kinds of ``--rescore KIND:PATH``.
RESCORE_KINDS = ("cross-encoder", "bi-encoder")
JUDGE_MODES = ("pointwise", "listwise")
#: What ``--ray-stages`` may name: the work that runs as Ray Data stages beside the search.
RAY_STAGES = ("encode", "rescore", "judge")


def check_url(option: str, url: str) -> None:
    """Refuse a URL that is not ``http(s)://HOST[:PORT][/path]``.

    Raises
    ------
    InputError
        naming ``option`` and the URL.
    """
    try:
        parts = urlsplit(url)
        port = parts.port  # a port that is not a number raises here
    except ValueError as exc:
        raise InputError(f"{option} {url!r}: not a valid URL ({exc})") from None
    if parts.scheme not in ("http", "https"):
        raise InputError(f"{option} {url!r}: must start with http:// or https://")
    if not parts.hostname:
        raise InputError(f"{option} {url!r}: no host (expected e.g. http://localhost:8000/v1)")
    if port == 0:
        raise InputError(f"{option} {url!r}: port 0 is not a port")


def _looks_local(path: str) -> bool:
    """A path that can only be a local folder: absolute, ``~``, ``./``, ``../``, or with
    more than one ``/`` (a hub name is ``org/name``)."""
    return (
        os.path.isabs(path)
        or path.startswith(("~", "./", "../", ".\\", "..\\"))
        or path in (".", "..")
        or path.count("/") > 1
        or (os.sep != "/" and os.sep in path)
    )


def check_model_path(option: str, path: str) -> None:
    """Refuse a model given as a local path that does not exist (a hub name, such as
    ``cross-encoder/ms-marco-MiniLM-L-6-v2``, is left to the loader).

    Raises
    ------
    InputError
        naming ``option`` and the path.
    """
    if _looks_local(path) and not os.path.exists(os.path.expanduser(path)):
        raise InputError(f"{option} {path}: no such model folder")


@dataclass(frozen=True, kw_only=True)
class DataOptions:
    """The dataset a command reads and how its vectors are made (``negsample mine`` and
    ``report``'s data options; see docs/cli.md).

    Parameters
    ----------
    data : str
        BEIR folder (``corpus.jsonl``, ``queries.jsonl``, ``qrels/``).
    split : str
        qrels split.
    min_relevance : int
        smallest judgement score that makes a positive.
    model : str or None
        sentence-transformers model folder or name (``None``: the bundled default).
    embeddings : str or None
        folder of precomputed embeddings instead of a model.
    cache_dir : str or None
        embedding cache (``None``: :func:`~negsample.io.encoding.default_cache_dir`).
    no_cache : bool
        do not cache embeddings.
    batch_size, max_seq_length : int, int or None
        encoding batch size and truncation.
    query_prompt, document_prompt, query_prompt_name, document_prompt_name : str or None
        prompts for encoding.
    precision, device : str or None
        encoding (and teacher) dtype and torch device (docs/devices.md).
    batch_tokens : int or None
        padded tokens per encoding batch (``None``: ``batch_size`` x the model's length).
    index, metric : str
        index spec and score.
    spot_check : int
        with both ``embeddings`` and ``model``: rows of each side re-encoded with the model
        and compared with the stored vectors (:func:`negsample.io.verify_embeddings`;
        0: none). Without ``model`` nothing is re-encoded.
    min_cosine : float
        the smallest cosine accepted between a stored vector and its re-encoding.
    """

    data: str
    split: str = "train"
    min_relevance: int = 1
    model: str | None = None
    embeddings: str | None = None
    cache_dir: str | None = None
    no_cache: bool = False
    batch_size: int = 64
    max_seq_length: int | None = None
    query_prompt: str | None = None
    document_prompt: str | None = None
    query_prompt_name: str | None = None
    document_prompt_name: str | None = None
    precision: str | None = None
    batch_tokens: int | None = None
    device: str | None = None
    index: str = "exact"
    metric: str = "ip"
    spot_check: int = 8
    min_cosine: float = 0.99

    def __post_init__(self) -> None:
        if self.model:
            check_model_path("--model", self.model)
        from ..index.registry import parse_index_spec

        try:  # an unknown kind is refused before any data is read
            parse_index_spec(self.index)
        except (ValueError, TypeError) as exc:
            raise InputError(f"--index {self.index!r}: {exc}") from None

    @property
    def uses_embeddings(self) -> bool:
        """Whether the run reads or encodes embeddings: always for a vector ``index`` or
        ``hybrid``; for ``bm25`` only when ``embeddings`` or ``model`` is given (then the
        sampler sees their scores of BM25's candidates)."""
        from ..index.registry import parse_index_spec

        spec = parse_index_spec(self.index)
        return spec.needs_embeddings or bool(self.embeddings or self.model)

    def embedding_cache(self) -> Path | None:
        """The embedding cache folder an encoding uses (``None`` with ``no_cache``)."""
        if self.no_cache:
            return None
        if self.cache_dir:
            return Path(self.cache_dir)
        from ..io.encoding import default_cache_dir

        return default_cache_dir()

    def load_embeddings(self, ds: Any) -> Any:
        """The precomputed ``embeddings`` of ``ds``, spot-checked against ``model`` when
        one is given (the same prompts, truncation, precision and device as an encoding)."""
        from ..io.embeddings import load_embeddings

        assert self.embeddings is not None
        return load_embeddings(
            self.embeddings,
            ds,
            model=self.model,
            spot_check=self.spot_check if self.model else 0,
            min_cosine=self.min_cosine,
            query_prompt=self.query_prompt,
            document_prompt=self.document_prompt,
            query_prompt_name=self.query_prompt_name,
            document_prompt_name=self.document_prompt_name,
            max_seq_length=self.max_seq_length,
            precision=self.precision,
            device=self.device,
            batch_size=self.batch_size,
            batch_tokens=self.batch_tokens,
        )


@dataclass(frozen=True, kw_only=True)
class TeacherSpec:
    """A teacher scorer, described; :meth:`build` loads it.

    Parameters
    ----------
    kind : str
        ``"cross-encoder"`` or ``"bi-encoder"``.
    path : str
        model folder or hub name.
    batch_size : int
        pairs per batch.
    device : str or None
        torch device.
    activation : str
        cross-encoder scores: ``"logits"`` or ``"model"``.
    max_length : int or None
        cross-encoder truncation.
    query_prompt : str or None
        bi-encoder query prompt.
    precision : str or None
        the teacher's dtype (``None``: float16 on a GPU, float32 on the CPU).
    progress : bool
        progress bars.
    """

    kind: str
    path: str
    batch_size: int = 64
    device: str | None = None
    activation: str = "logits"
    max_length: int | None = None
    query_prompt: str | None = None
    precision: str | None = None
    progress: bool = False

    def build(self) -> Any:
        """The :class:`~negsample.scoring.CrossEncoderScorer` or
        :class:`~negsample.scoring.EmbeddingScorer` (loads the model)."""
        from ..scoring import CrossEncoderScorer, EmbeddingScorer

        if self.kind == "cross-encoder":
            return CrossEncoderScorer(
                self.path,
                batch_size=self.batch_size,
                device=self.device,
                activation=self.activation,
                max_length=self.max_length,
                precision=self.precision,
                show_progress=self.progress,
            )
        return EmbeddingScorer(
            self.path,
            batch_size=self.batch_size,
            device=self.device,
            query_prompt=self.query_prompt,
            precision=self.precision,
            show_progress=self.progress,
        )


@dataclass(frozen=True, kw_only=True)
class JudgeSpec:
    """An LLM judge (and the stronger judge of a cascade), described; :meth:`build` opens
    its cache.

    Parameters
    ----------
    url, model : str
        the OpenAI-compatible API root and the model.
    key_env : str or None
        environment variable holding the API key.
    cache : pathlib.Path
        the sqlite judgement cache.
    concurrency : int
        requests in flight.
    timeout : float
        seconds per request.
    cascade_model, cascade_url : str or None
        RLHN's cascade: a stronger judge (and its API root, default ``url``).
    mode : str
        ``"pointwise"`` or ``"listwise"``.
    """

    url: str
    model: str
    key_env: str | None
    cache: Path
    concurrency: int = 8
    timeout: float = 60.0
    cascade_model: str | None = None
    cascade_url: str | None = None
    mode: str = "pointwise"

    def build(self, cache: Any = None) -> Any:
        """The :class:`~negsample.scoring.LLMJudge` (a
        :class:`~negsample.scoring.ListwiseJudge` in ``"listwise"`` mode; or a
        :class:`~negsample.scoring.CascadeJudge` of two); opens the cache (``cache``: a
        :class:`~negsample.scoring.JudgementCache` to use instead of the file, as a Ray
        stage's actors do)."""
        from ..scoring import CascadeJudge, ListwiseJudge, LLMJudge

        kind: Any = ListwiseJudge if self.mode == "listwise" else LLMJudge

        def make(model: str, url: str) -> Any:
            return kind(
                base_url=url,
                model=model,
                api_key_env=self.key_env,
                cache=str(self.cache) if cache is None else cache,
                max_concurrency=self.concurrency,
                timeout=self.timeout,
            )

        judge: Any = make(self.model, self.url)
        if self.cascade_model:
            judge = CascadeJudge(judge, make(self.cascade_model, self.cascade_url or self.url))
        return judge


@contextmanager
def open_scoring(
    teacher: TeacherSpec | None,
    judge: JudgeSpec | None,
    margins: Any,
    *,
    log: Callable[[str], None],
    ray: RayOptions | None = None,
) -> Iterator[tuple[Any, Any]]:
    """``with open_scoring(teacher, judge, margins, log=...) as (scorer, judge):`` the
    teacher loaded and the judge's cache opened (either ``None`` when not asked for), each
    named in the log; the scorer's worker pool is stopped at the end. With ``ray`` whose
    ``stages`` name ``"rescore"`` / ``"judge"``, the scorer / judge is the Ray Data stage
    (:class:`~negsample.distributed.RayScorer`, :class:`~negsample.distributed.RayJudge`):
    nothing is loaded here."""
    stages = ray.stages if ray is not None and ray.enabled else ()
    scorer: Any
    made: Any
    if teacher is not None and "rescore" in stages:
        from ..distributed.stages import RayScorer

        assert ray is not None
        scorer = RayScorer(teacher, **ray.pool())
    else:
        scorer = None if teacher is None else teacher.build()
    try:
        if scorer is not None:
            log(f"rescoring with {scorer!r}; {margins!r}")
        if judge is not None and "judge" in stages:
            from ..distributed.stages import RayJudge

            assert ray is not None
            made = RayJudge(judge, **ray.pool())
        else:
            made = None if judge is None else judge.build()
        if judge is not None:
            from ..scoring import redact

            log(
                f"judging with {made!r} (texts are sent to {redact(judge.url)}); "
                f"cache {judge.cache}"
            )
        yield scorer, made
    finally:
        if scorer is not None:
            scorer.close()


@dataclass(frozen=True, kw_only=True)
class DenoiseOptions:
    """A teacher's margins and/or an LLM judge over the draws (``--rescore*``,
    ``--judge-*``, ``--oversample``, ``--teacher-scores``; see docs/denoising.md).
    Inconsistent options, a malformed ``--rescore``, a judge URL that is not
    ``http(s)://HOST...``, margins out of range are refused when made.

    Parameters
    ----------
    rescore : str or None
        ``cross-encoder:PATH`` or ``bi-encoder:PATH``.
    rescore_activation, rescore_batch_size : str, int
        the teacher's activation and batch size.
    rescore_absolute_margin, rescore_relative_margin, rescore_max_score, rescore_min_score : float or None
        margins on the teacher's scores.
    teacher_scores : bool
        write the teacher's scores.
    judge_url, judge_model, judge_key_env, judge_cache : str or None
        the judge, its key's environment variable and its cache file.
    judge_concurrency, judge_timeout : int, float
        requests in flight and seconds per request.
    judge_keep, judge_on_failure : str
        labels kept (``"HN,TN"`` or ``"HN"``) and what an unlabelled candidate becomes.
    judge_cascade_model, judge_cascade_url : str or None
        a stronger judge for what the first calls FN.
    judge_mode : str
        ``"pointwise"`` (one request per candidate) or ``"listwise"`` (one request judges
        a query's candidates together: :class:`~negsample.scoring.ListwiseJudge`).
    judge_fn_action : str
        what a false negative becomes: ``"remove"``, ``"relabel"`` (a positive of its
        query in the output) or ``"drop-query"`` (removed, and a query with more than
        ``judge_drop_above`` false negatives is left out).
    judge_drop_above : int
        the false negatives a query may have under ``"drop-query"`` (RLHN: 8).
    oversample : float
        draws mined per negative wanted.
    """

    rescore: str | None = None
    rescore_activation: str = "logits"
    rescore_batch_size: int = 64
    rescore_absolute_margin: float | None = None
    rescore_relative_margin: float | None = None
    rescore_max_score: float | None = None
    rescore_min_score: float | None = None
    teacher_scores: bool = False
    judge_url: str | None = None
    judge_model: str | None = None
    judge_key_env: str | None = "OPENAI_API_KEY"
    judge_cache: str | None = None
    judge_concurrency: int = 8
    judge_timeout: float = 60.0
    judge_keep: str = "HN,TN"
    judge_on_failure: str = "skip"
    judge_cascade_model: str | None = None
    judge_cascade_url: str | None = None
    judge_mode: str = "pointwise"
    judge_fn_action: str = "remove"
    judge_drop_above: int = 8
    oversample: float = 2.0

    def __post_init__(self) -> None:
        if self.rescore is not None:
            kind, _, path = self.rescore.partition(":")
            if kind not in RESCORE_KINDS or not path:
                raise InputError(
                    f"--rescore must be cross-encoder:PATH or bi-encoder:PATH, got {self.rescore!r}"
                )
        margins = [
            name
            for name in ("absolute_margin", "relative_margin", "max_score", "min_score")
            if getattr(self, f"rescore_{name}") is not None
        ]
        if margins and self.rescore is None:
            raise InputError(f"--rescore-{margins[0].replace('_', '-')} needs --rescore")
        if self.teacher_scores and self.rescore is None:
            raise InputError("--teacher-scores needs --rescore (the teacher that gives the scores)")
        if bool(self.judge_url) != bool(self.judge_model):
            raise InputError("--judge-url and --judge-model go together")
        if self.judge_cascade_model and not self.judge_url:
            raise InputError("--judge-cascade-model needs --judge-url and --judge-model")
        if self.judge_mode not in JUDGE_MODES:
            raise InputError(f"--judge-mode must be one of {JUDGE_MODES}, got {self.judge_mode!r}")
        from ..scoring.denoise import FN_ACTIONS

        if self.judge_fn_action not in FN_ACTIONS:
            raise InputError(
                f"--judge-fn-action must be one of {FN_ACTIONS}, got {self.judge_fn_action!r}"
            )
        given = [
            flag
            for flag, changed in (
                ("--judge-mode", self.judge_mode != "pointwise"),
                ("--judge-fn-action", self.judge_fn_action != "remove"),
                ("--judge-drop-above", self.judge_drop_above != 8),
            )
            if changed
        ]
        if given and not self.judge_url:
            raise InputError(f"{given[0]} needs --judge-url and --judge-model")
        if self.judge_drop_above != 8 and self.judge_fn_action != "drop-query":
            raise InputError("--judge-drop-above applies to --judge-fn-action drop-query")
        if self.rescore and not margins and not self.teacher_scores:
            raise InputError(
                "--rescore does nothing without a --rescore-* margin or --teacher-scores"
            )
        if self.rescore is not None:
            check_model_path("--rescore", self.rescore.partition(":")[2])
        if self.judge_url:
            check_url("--judge-url", self.judge_url)
        if self.judge_cascade_url:
            check_url("--judge-cascade-url", self.judge_cascade_url)
        self.margins()  # out-of-range margins are refused now, not after the mining

    @property
    def enabled(self) -> bool:
        """A teacher or a judge is asked for."""
        return bool(self.rescore or self.judge_url)

    def margins(self) -> Any:
        """The :class:`~negsample.scoring.Margins` on the teacher's scores (``None``
        without ``rescore``)."""
        if self.rescore is None:
            return None
        from ..scoring import Margins

        try:
            return Margins(
                absolute_margin=self.rescore_absolute_margin,
                relative_margin=self.rescore_relative_margin,
                max_score=self.rescore_max_score,
                min_score=self.rescore_min_score,
            )
        except ValueError as exc:
            msg = str(exc)
            for name in ("absolute_margin", "relative_margin", "max_score", "min_score"):
                if msg.startswith(name):  # the option, not the parameter
                    msg = f"--rescore-{name.replace('_', '-')}{msg[len(name) :]}"
            raise InputError(msg) from None

    def judge_cache_path(self) -> Path | None:
        """The judge's cache file (``None`` without a judge)."""
        if not self.judge_url:
            return None
        if self.judge_cache is not None:
            return Path(self.judge_cache)
        from ..io.encoding import default_cache_dir

        return default_cache_dir() / "judgements.sqlite"

    def teacher(self, data: DataOptions, *, progress: bool = False) -> TeacherSpec | None:
        """The teacher (``None`` without ``rescore``); uses ``data``'s device, truncation
        and query prompt."""
        if self.rescore is None:
            return None
        kind, _, path = self.rescore.partition(":")
        return TeacherSpec(
            kind=kind,
            path=path,
            batch_size=self.rescore_batch_size,
            device=data.device,
            activation=self.rescore_activation,
            max_length=data.max_seq_length,
            query_prompt=data.query_prompt,
            precision=data.precision,
            progress=progress,
        )

    def judge(self) -> JudgeSpec | None:
        """The judge (``None`` without ``judge_url``)."""
        cache = self.judge_cache_path()
        if not self.judge_url or not self.judge_model or cache is None:
            return None
        return JudgeSpec(
            url=self.judge_url,
            model=self.judge_model,
            key_env=self.judge_key_env,
            cache=cache,
            concurrency=self.judge_concurrency,
            timeout=self.judge_timeout,
            cascade_model=self.judge_cascade_model,
            cascade_url=self.judge_cascade_url,
            mode=self.judge_mode,
        )


@dataclass(frozen=True, kw_only=True)
class RayOptions:
    """Mine on a Ray cluster (``--ray`` and the worker options; docs/distributed.md).

    Parameters
    ----------
    address : str or None
        ``"auto"``, ``"local"`` or ``HOST:PORT``; ``None``: no cluster (then the other
        fields must be ``None`` too).
    workers, corpus_shards : int or None
        query sharding or corpus sharding.
    worker_cpus, worker_gpus : float or None
        per worker (default 1 CPU, 0 GPUs).
    stages : tuple of str
        the stages run as Ray Data stages beside the search (``--ray-stages``):
        ``"encode"``, ``"rescore"``, ``"judge"``; their actors take ``worker_cpus`` /
        ``worker_gpus`` each, at most ``workers`` of them (docs/distributed.md).
    """

    address: str | None = None
    workers: int | None = None
    corpus_shards: int | None = None
    worker_cpus: float | None = None
    worker_gpus: float | None = None
    stages: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        flags = ("workers", "corpus_shards", "worker_cpus", "worker_gpus")
        given = [f"--{k.replace('_', '-')}" for k in flags if getattr(self, k) is not None]
        if self.stages:
            given.append("--ray-stages")
        if self.address is None and given:
            raise InputError(f"{', '.join(given)} need --ray (auto, local or HOST:PORT)")
        if self.workers is not None and self.corpus_shards is not None:
            raise InputError("give --workers (query sharding) or --corpus-shards, not both")
        bad = [s for s in self.stages if s not in RAY_STAGES]
        if bad:
            raise InputError(
                f"--ray-stages: unknown stage {bad[0]!r} (the stages: {', '.join(RAY_STAGES)})"
            )

    def pool(self) -> dict[str, Any]:
        """The actor pool of the Ray Data stages: ``workers``, ``cpus_per_worker``,
        ``gpus_per_worker`` (keywords of :func:`negsample.distributed.encode_ray` and the
        other stages)."""
        return {
            "workers": self.workers,
            "cpus_per_worker": 1.0 if self.worker_cpus is None else self.worker_cpus,
            "gpus_per_worker": 0.0 if self.worker_gpus is None else self.worker_gpus,
        }

    @property
    def enabled(self) -> bool:
        """A cluster is asked for."""
        return self.address is not None
