"""The index registry and the one parser of index spec strings.

An index spec names a kind and its arguments, ``KIND[:ARG[:ARG...]]``: ``"exact"``,
``"torch:cuda:1:bfloat16"``, ``"faiss:IVF1024,Flat"``; a faiss factory string may also
be given bare (``"Flat"``, ``"HNSW32"``, ``"IVF1024,Flat"``: it starts with an upper-case
faiss component). :func:`parse_index_spec` turns it into an :class:`IndexSpec`;
:func:`build_index` and :func:`~negsample.load_index` build and open indexes through the
kind registered with :func:`register_index`. Kinds from installed plugins (the
``negsample.indexes`` entry points) are loaded the first time a spec names a kind that is
not registered.

Everything that needs to know about a kind asks here: whether its search is exact (and
its build deterministic: a resumed or distributed run can rebuild it instead of saving
it), which search options apply (``nprobe`` for faiss IVF, ``ef_search`` for faiss HNSW),
how many corpus rows it scores together (corpus shards are cut on multiples of it).
"""

from __future__ import annotations

import ast
import numbers
import os
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from .._plugins import INDEXES, load_plugins, plugin_failures
from ..errors import InputError, InputTypeError
from .base import Index, read_meta

__all__ = [
    "IndexKind",
    "IndexSpec",
    "available_indexes",
    "build_index",
    "corpus_block_of",
    "get_index_kind",
    "load_index",
    "parse_index_spec",
    "register_index",
]

#: How a bare faiss factory string starts: an upper-case faiss component.
_FAISS_HEAD = re.compile(r"^[A-Z][A-Za-z0-9_]*(\(|,|$)")
_FAISS_WORDS = ("flat", "hnsw", "ivf", "pq", "sq", "opq", "lsh", "nsg", "pca", "idmap", "imi")


@dataclass(frozen=True)
class IndexSpec:
    """A parsed index spec: the registered ``kind``, its positional ``args`` and the
    ``options`` they mean (passed to the kind's build). ``text`` is the spec as given.

    >>> parse_index_spec("torch:cuda:1:bfloat16")
    IndexSpec(kind='torch', args=('cuda:1', 'bfloat16'), options={'device': 'cuda:1', 'dtype': 'bfloat16'}, text='torch:cuda:1:bfloat16')
    """

    kind: str
    args: tuple[str, ...] = ()
    options: Mapping[str, Any] = field(default_factory=dict)
    text: str = ""

    def __str__(self) -> str:
        return self.text or ":".join((self.kind, *self.args))

    @property
    def exact(self) -> bool:
        """Exhaustive search and a deterministic build (nothing trained or random): every
        process builds the same index, so a resumed or distributed run rebuilds it."""
        return bool(get_index_kind(self.kind).is_exact(self))

    @property
    def search_options(self) -> tuple[str, ...]:
        """The search settings that apply to this spec (``"nprobe"``, ``"ef_search"``)."""
        return tuple(get_index_kind(self.kind).options_for(self))

    @property
    def is_source(self) -> bool:
        """The spec names a candidate source over the dataset's texts (``bm25``,
        ``hybrid``), not an index over vectors: it needs a dataset, not just vectors."""
        return get_index_kind(self.kind).source is not None

    @property
    def needs_embeddings(self) -> bool:
        """Mining with this spec needs the dataset's embeddings (every vector index; a
        source only when its kind says so: ``hybrid`` yes, ``bm25`` no)."""
        kind = get_index_kind(self.kind)
        need = kind.needs_embeddings
        return bool(need(self) if callable(need) else need)

    @property
    def dense(self) -> IndexSpec | None:
        """The vector index spec built over the embeddings: the spec itself for a vector
        index; for a source, the one its kind names (``hybrid:HNSW32`` -> ``HNSW32``;
        ``bm25`` -> ``exact``, used only when embeddings are given), or ``None``."""
        kind = get_index_kind(self.kind)
        if kind.source is None:
            return self
        return None if kind.dense_spec is None else parse_index_spec(kind.dense_spec(self))


@dataclass(frozen=True)
class IndexKind:
    """One registered kind of index (see :func:`register_index` for the fields)."""

    name: str
    build: Callable[..., Index]
    load: Callable[..., Index] | None = None
    saved_type: str | None = None
    cls: type | None = None
    exact: bool | Callable[[IndexSpec], bool] = False
    parse: Callable[[tuple[str, ...]], tuple[tuple[str, ...], dict[str, Any]]] | None = None
    search_options: tuple[str, ...] | Callable[[IndexSpec], tuple[str, ...]] = ()
    corpus_block: Callable[[Any], int] | None = None
    expected_block: Callable[[IndexSpec, Mapping[str, Any], int], int | None] | None = None
    trusts_checked: bool = False
    load_takes_vectors: bool = False
    aliases: tuple[str, ...] = ()
    syntax: str = ""
    source: Callable[..., Any] | None = None
    dense_spec: Callable[[IndexSpec], str | IndexSpec] | None = None
    needs_embeddings: bool | Callable[[IndexSpec], bool] = True

    def is_exact(self, spec: IndexSpec) -> bool:
        return bool(self.exact(spec) if callable(self.exact) else self.exact)

    def options_for(self, spec: IndexSpec) -> tuple[str, ...]:
        opts = self.search_options
        return tuple(opts(spec) if callable(opts) else opts)


_KINDS: dict[str, IndexKind] = {}  # name and aliases (lower case) -> kind
_BY_TYPE: dict[str, IndexKind] = {}  # meta.json "type" -> kind


def register_index(
    kind: str,
    *,
    build: Callable[..., Index] | None = None,
    load: Callable[..., Index] | None = None,
    saved_type: str | None = None,
    cls: type | None = None,
    exact: bool | Callable[[IndexSpec], bool] = False,
    parse: Callable[[tuple[str, ...]], tuple[tuple[str, ...], dict[str, Any]]] | None = None,
    search_options: tuple[str, ...] | Callable[[IndexSpec], tuple[str, ...]] = (),
    corpus_block: Callable[[Any], int] | None = None,
    expected_block: Callable[[IndexSpec, Mapping[str, Any], int], int | None] | None = None,
    trusts_checked: bool = False,
    load_takes_vectors: bool = False,
    aliases: tuple[str, ...] = (),
    syntax: str = "",
    source: Callable[..., Any] | None = None,
    dense_spec: Callable[[IndexSpec], str | IndexSpec] | None = None,
    needs_embeddings: bool | Callable[[IndexSpec], bool] | None = None,
    replace: bool = False,
) -> IndexKind:
    """Make an index kind available to spec strings (:func:`build_index`, ``mine_dataset``,
    ``negsample mine --index``, the Ray runners) and to :func:`~negsample.load_index`.

    Parameters
    ----------
    kind : the name a spec starts with (case-insensitive), e.g. ``"usearch"`` for
        ``"usearch"`` or ``"usearch:connectivity=16"``.
    build : ``build(vectors, spec, *, metric, **options) -> Index``: ``vectors`` a 2-D
        float array (numpy, memory-mapped), ``spec`` the :class:`IndexSpec` (its
        ``options`` merged into ``options``; keyword arguments of :func:`build_index`
        win), ``metric`` ``"ip"`` or ``"cosine"``.
    load : ``load(path, **options) -> Index``: open a folder written by the index's
        ``save``, whose ``meta.json`` ``"type"`` is ``saved_type``.
    saved_type : the ``"type"`` its ``save`` writes to ``meta.json`` (default: ``cls``'s
        name).
    cls : the index class (so that :func:`corpus_block_of` knows built indexes).
    exact : True (or a function of the spec) when the search is exhaustive and the build
        deterministic (nothing trained or random).
    parse : ``parse(args) -> (args, options)``: what the spec's arguments mean. Default:
        ``KEY=VALUE`` arguments become options (values read as Python literals, else
        strings), others stay positional in ``spec.args``.
    search_options : the :func:`~negsample.mine_dataset` search settings that apply
        (``"nprobe"``, ``"ef_search"``), or a function of the spec giving them.
    corpus_block : ``corpus_block(index) -> int``: corpus rows the index scores together
        in one matrix product (corpus shards are cut on multiples of it so their scores
        match one index over the whole corpus); default: ``index.block_rows`` or
        ``index.chunk_size`` when present, else 1.
    expected_block : ``expected_block(spec, options, dim) -> int | None``: that block
        size known before building (``None``: build a probe where the shards run).
    trusts_checked : ``build`` accepts ``check=False`` when the caller has already checked
        the vectors (finite, within float32) itself.
    load_takes_vectors : ``load`` accepts ``vectors=`` (the original corpus) because the
        saved index does not hold the exact vectors (faiss codes).
    aliases : more names for the kind.
    syntax : the spec syntax shown in messages (default ``kind``), e.g.
        ``"torch[:DEVICE[:DTYPE]]"``.
    source : for a kind that makes candidates from a dataset's texts instead of
        searching vectors (``bm25``, ``hybrid``; then ``build`` may be left out, and
        building it from vectors is refused): ``source(spec, *, documents, queries,
        dense, query_vectors, log) -> CandidateSource`` (see
        :mod:`negsample.pipeline.sources`), ``dense`` the index built over the
        embeddings by ``dense_spec`` (``None`` without embeddings).
    dense_spec : ``dense_spec(spec) -> spec``: the vector index a source builds over the
        embeddings, when there are embeddings.
    needs_embeddings : whether mining needs the embeddings (default True; a source whose
        texts suffice says False, or a function of the spec).
    replace : replace a kind registered under the same name (else ``ValueError``).

    Returns
    -------
    IndexKind
    """
    name = kind.lower()
    if not re.fullmatch(r"[a-z][a-z0-9_\-.]*", name):
        raise InputError(f"index kind {kind!r}: use letters, digits, '_', '-' or '.'")
    if build is None:
        if source is None:
            raise InputTypeError(f"index kind {kind!r}: give build= (or source= for a text source)")
        build = _source_only(name)
    entry = IndexKind(
        name=name,
        build=build,
        load=load,
        saved_type=saved_type or (cls.__name__ if cls is not None else None),
        cls=cls,
        exact=exact,
        parse=parse,
        search_options=search_options,
        corpus_block=corpus_block,
        expected_block=expected_block,
        trusts_checked=trusts_checked,
        load_takes_vectors=load_takes_vectors,
        aliases=tuple(a.lower() for a in aliases),
        syntax=syntax or name,
        source=source,
        dense_spec=dense_spec,
        needs_embeddings=(source is None) if needs_embeddings is None else needs_embeddings,
    )
    for key in (name, *entry.aliases):
        old = _KINDS.get(key)
        if old is not None and not replace and not _same_source(old, entry):
            raise InputError(
                f"index kind {key!r} is already registered ({old.name}, built by "
                f"{_qualname(old.build)}); pass replace=True to replace it"
            )
    for key in (name, *entry.aliases):
        _KINDS[key] = entry
    if entry.saved_type:
        _BY_TYPE[entry.saved_type] = entry
    return entry


def _source_only(name: str) -> Callable[..., Index]:
    """The ``build`` of a text source kind: refused, with what to do instead."""

    def build(vectors: Any, spec: IndexSpec, **options: Any) -> Index:
        raise InputError(
            f"index spec {str(spec)!r} names a candidate source over a dataset's texts, not "
            f"an index over vectors: use it with mine_dataset(index={str(spec)!r}) or "
            f"negsample mine --index {spec}"
        )

    build.__qualname__ = f"source_only[{name}]"
    return build


def _qualname(fn: Any) -> str:
    return f"{getattr(fn, '__module__', '?')}.{getattr(fn, '__qualname__', repr(fn))}"


def _same_source(a: IndexKind, b: IndexKind) -> bool:
    """The same registration run again (a module imported twice)."""
    return a.name == b.name and _qualname(a.build) == _qualname(b.build)


def available_indexes() -> list[str]:
    """The registered index kinds (installed plugins included), sorted."""
    _load_plugins()
    return sorted({k.name for k in _KINDS.values()})


def _load_plugins() -> None:
    def adopt(name: str, obj: Any) -> None:
        if isinstance(obj, IndexKind):
            fields = {k: v for k, v in obj.__dict__.items() if k != "name"}
            register_index(obj.name, **fields)
        elif name.lower() not in _KINDS and callable(obj):
            obj()  # a register() hook
        if name.lower() not in _KINDS:
            raise LookupError(f"loading it registered no index kind named {name!r}")

    load_plugins(INDEXES, adopt)


def describe_kinds() -> str:
    """The registered kinds and their spec syntax, in one line (for messages): the vector
    indexes, then the candidate sources over texts, each group by name."""
    parts = []
    kinds = {k.name: k for k in _KINDS.values()}.values()
    for k in sorted(kinds, key=lambda k: (k.source is not None, k.name)):
        alias = f" (also {', '.join(k.aliases)})" if k.aliases else ""
        parts.append(f"{k.syntax}{alias}")
    return "; ".join(parts)


def get_index_kind(name: str) -> IndexKind:
    """The registered kind ``name`` (plugins loaded on a miss); ``ValueError`` listing the
    known kinds otherwise."""
    key = name.lower()
    if key not in _KINDS:
        _load_plugins()
    if key not in _KINDS:
        failed = plugin_failures(INDEXES).get(key)
        if failed:
            raise InputError(failed)
        raise InputError(f"unknown index kind {name!r}; known kinds: {describe_kinds()}")
    return _KINDS[key]


def _literal(text: str) -> Any:
    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError):
        return text


def _default_parse(args: tuple[str, ...]) -> tuple[tuple[str, ...], dict[str, Any]]:
    rest: list[str] = []
    options: dict[str, Any] = {}
    for a in args:
        key, eq, value = a.partition("=")
        if eq and key.isidentifier():
            options[key] = _literal(value)
        else:
            rest.append(a)
    return tuple(rest), options


def parse_index_spec(spec: str | IndexSpec) -> IndexSpec:
    """Parse an index spec string (see the module docstring); an :class:`IndexSpec` is
    returned as it is.

    Raises
    ------
    ValueError
        for an unknown kind (listing the known ones, and any installed plugin that
        failed to load under that name) or arguments the kind refuses.
    TypeError
        when ``spec`` is not a string.

    Examples
    --------
    >>> parse_index_spec("exact").kind, parse_index_spec("HNSW32").options
    ('exact', {'factory': 'HNSW32'})
    """
    if isinstance(spec, IndexSpec):
        return spec
    if not isinstance(spec, str):
        raise InputTypeError(
            f"an index spec is a string such as 'exact', 'torch:cuda' or 'HNSW32', "
            f"got {type(spec).__name__}"
        )
    text = spec.strip()
    if not text:
        raise InputError(f"empty index spec; known kinds: {describe_kinds()}")
    head, _, rest = text.partition(":")
    key = head.lower()
    if key not in _KINDS:
        _load_plugins()  # a plugin's kind first, then a bare faiss factory string
    if key not in _KINDS and "faiss" in _KINDS and _FAISS_HEAD.match(text) and ":" not in text:
        key, rest = "faiss", text
    if key not in _KINDS:
        failed = plugin_failures(INDEXES).get(key)
        if failed:
            raise InputError(f"index spec {spec!r}: {failed}")
        hint = ""
        if any(head.lower().startswith(w) for w in _FAISS_WORDS):
            hint = " (faiss factory strings are case-sensitive: Flat, HNSW32, IVF1024,Flat)"
        raise InputError(f"unknown index spec {spec!r}{hint}; known kinds: {describe_kinds()}")
    kind = _KINDS[key]
    args = tuple(rest.split(":")) if rest else ()
    if kind.parse is not None:
        try:
            args, options = kind.parse(args)
        except ValueError as exc:
            raise InputError(f"index spec {spec!r} ({kind.syntax}): {exc}") from None
    else:
        args, options = _default_parse(args)
    return IndexSpec(kind.name, tuple(args), dict(options), text)


def build_index(
    vectors: Any, spec: str | IndexSpec = "exact", *, metric: str = "ip", **kwargs: Any
) -> Index:
    """Build an index over ``vectors`` from a spec: ``"exact"`` (or ``"numpy"``):
    :class:`~negsample.NumpyIndex`; ``"torch"``, ``"torch:DEVICE"`` or
    ``"torch:DEVICE:DTYPE"`` (``"torch:cuda"``, ``"torch:cuda:1:bfloat16"``,
    ``"torch:float16"``): :class:`~negsample.TorchIndex`; a faiss factory string
    (``"Flat"``, ``"HNSW32"``, ``"IVF1024,Flat"``, or ``"faiss:..."``):
    :class:`~negsample.FaissIndex`; any kind registered with :func:`register_index` or
    installed as a plugin. ``kwargs`` go to the index (``search_block=``, ``nprobe=``...).
    """
    parsed = parse_index_spec(spec)
    kind = get_index_kind(parsed.kind)
    return kind.build(vectors, parsed, metric=metric, **{**parsed.options, **kwargs})


def load_index(path: str | os.PathLike[str], **kwargs: Any) -> Index:
    """Load an index written by ``Index.save``, whatever its type (the ``"type"`` in its
    ``meta.json`` names the registered kind; plugins are loaded for an unknown one)."""
    meta = read_meta(path)
    kind = meta.get("type")
    entry = _BY_TYPE.get(str(kind))
    if entry is None:
        _load_plugins()
        entry = _BY_TYPE.get(str(kind))
    if entry is None or entry.load is None:
        known = ", ".join(sorted(t for t, e in _BY_TYPE.items() if e.load is not None))
        raise InputError(
            f"{path}/meta.json names an index type {kind!r} that no registered index kind "
            f"loads (known types: {known}; an index from a plugin needs the plugin installed)"
        )
    if "vectors" in kwargs and not entry.load_takes_vectors:
        raise InputError(
            f"{path} is a saved {kind} (it holds its vectors): leave out vectors= / corpus="
        )
    return entry.load(path, **kwargs)


def saved_kind(path: str | os.PathLike[str]) -> IndexKind | None:
    """The registered kind of a saved index folder (``None`` when no kind loads it)."""
    meta = read_meta(path)
    entry = _BY_TYPE.get(str(meta.get("type")))
    if entry is None:
        _load_plugins()
        entry = _BY_TYPE.get(str(meta.get("type")))
    return entry


def corpus_block_of(index: Any) -> int:
    """Corpus rows ``index`` scores together in one matrix product (1 when it has no such
    blocks): its kind's ``corpus_block``, else ``block_rows`` / ``chunk_size`` when the
    index has one."""
    for entry in {id(k): k for k in _KINDS.values()}.values():
        if entry.cls is not None and entry.corpus_block is not None:
            if isinstance(index, entry.cls):
                return int(entry.corpus_block(index))
    for attr in ("block_rows", "chunk_size"):
        value = getattr(index, attr, None)
        if isinstance(value, numbers.Integral) and not isinstance(value, bool) and int(value) > 0:
            return int(value)
    return 1


def expected_block_of(spec: str | IndexSpec, options: Mapping[str, Any], dim: int) -> int | None:
    """The corpus block of the index ``spec`` (with ``options``) will build, known before
    building, or ``None`` when only a built index can tell (build a probe)."""
    parsed = parse_index_spec(spec)
    entry = get_index_kind(parsed.kind)
    if entry.expected_block is None:
        return None
    return entry.expected_block(parsed, options, dim)
