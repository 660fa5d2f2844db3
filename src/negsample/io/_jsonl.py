"""Reading BEIR ``corpus.jsonl`` / ``queries.jsonl`` into compact columns, fast.

Two readers give the same columns:

- the **fast path** (pyarrow, ``pip install "negsample[io]"``): each block of lines is
  parsed by ``pyarrow.json`` into Arrow string buffers, which become the compact columns
  without a Python string per row. It checks what it can prove in bulk (one JSON object per
  non-blank line, string fields, ids present and not blank, texts not empty, ids unique)
  and declines a block it cannot prove fine;
- the **line-by-line path** (Python's ``json``, sped up by ``orjson`` when installed) is the
  reference: every rule and every error message (``file:line: problem``) is its own. A
  block the fast path declines is read by it; when it finds a problem, the whole file is
  read by it again from the start, so that the error reported is the first one in the
  file, whatever path found it.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from ..errors import InputError
from ._reading import DataError, blocks, decode_line
from .texts import _SPACE_LEAD, WHITESPACE, Texts, TextsBuilder, _arrow_chunk, first_duplicate

__all__ = ["Records", "read_records"]

_BLANK_RE = "^[" + "".join(f"\\x{{{ord(c):x}}}" for c in WHITESPACE) + "]*$"
_JSON_SPACE = b" \t\r"
#: Lines the fast path checks one by one (not ``{...}``); more than this, it declines.
_ODD_LINES = 1000
#: A line with more ``[`` and ``{`` than this may be nested deeper than Python's json
#: parser goes (about 950 levels, its recursion limit): the line-by-line reader decides.
_MAX_OPENERS = 900


@dataclass(frozen=True)
class Records:
    """The rows of a jsonl file: ids, texts (``title + " " + text`` for a corpus) and,
    for a corpus, the UTF-8 length of each row's title (one int32 array per chunk)."""

    ids: Texts
    texts: Texts
    cuts: list[npt.NDArray[np.int32]] | None


class _Decline(Exception):
    """The fast path cannot prove a block fine: the line-by-line path reads it."""


class _Restart(Exception):
    """A problem was found: read the file line by line from the start, for its error."""


def _loader() -> Callable[[bytes | bytearray], Any]:
    try:
        import orjson
    except ImportError:
        return json.loads
    return orjson.loads


def _str_field(rec: dict[str, Any], key: str, path: Path, lineno: int, required: bool) -> str:
    if key not in rec:
        if required:
            raise DataError(path, lineno, f"missing field {key!r}")
        return ""
    v = rec[key]
    if v is None and not required:
        return ""
    if isinstance(v, bool) or not isinstance(v, str | int):
        raise DataError(path, lineno, f"field {key!r} must be a string, got {type(v).__name__}")
    return str(v)


def _utf8(value: str, key: str, path: Path, lineno: int) -> bytes:
    try:
        return value.encode("utf-8")
    except UnicodeEncodeError as exc:
        bad = ord(value[exc.start])
        raise DataError(
            path,
            lineno,
            f"field {key!r} holds a lone surrogate \\u{bad:04x} (an escape that is half of a "
            "pair): not valid Unicode",
        ) from None


class _Slow:
    """The line-by-line reader: every rule and message of the BEIR files."""

    def __init__(self, path: Path, what: str, title: bool, check_duplicates: bool) -> None:
        self.path, self.what, self.title = path, what, title
        self.fields = ("title", "text") if title else ("text",)
        self.required = () if title else ("text",)
        self.keys = ("_id", *self.fields)
        self.seen: dict[str, int] | None = {} if check_duplicates else None
        self.loads = _loader()

    def _record(self, lineno: int, raw: bytes | bytearray, end: str) -> dict[str, Any] | None:
        """The JSON object on a line (``end``: its ``"\\n"``, given to the parser as a line
        of the file is, for the same error columns), ``None`` for a blank line."""
        path = self.path
        try:
            rec = self.loads(raw)
            if self.loads is not json.loads and isinstance(rec, dict):
                # orjson reads an integer beyond 64 bits as a float: json reads it exact
                if any(type(rec.get(k)) is float for k in self.keys):
                    raise InputError("a float field: read it again with json")
        except (ValueError, RecursionError):  # orjson is stricter: json has the last word
            line = decode_line(path, lineno, raw, nul=False)
            if not line.strip():
                return None
            try:
                rec = json.loads(line + end)
            except json.JSONDecodeError as exc:
                raise DataError(
                    path, lineno, f"malformed JSON ({exc.msg} at column {exc.colno})"
                ) from exc
            except RecursionError:
                raise DataError(path, lineno, "malformed JSON (nested too deeply)") from None
        if not isinstance(rec, dict):
            raise DataError(path, lineno, f"expected a JSON object, got {type(rec).__name__}")
        return rec

    def block(self, lineno: int, block: bytes | bytearray) -> _Part:
        """Ids, texts and title lengths of a block's records."""
        path, what = self.path, self.what
        ids: list[bytes] = []
        texts: list[bytes] = []
        cuts: list[int] = []
        raws: list[bytes | bytearray] = list(block.split(b"\n"))
        last = len(raws) - 1  # the last line ends with a newline only if the block does
        if raws and raws[-1] == b"":
            raws.pop()
        for i, raw in enumerate(raws):
            n = lineno + i
            rec = self._record(n, raw, "\n" if i < last else "")
            if rec is None:
                continue
            _id = _str_field(rec, "_id", path, n, required=True)
            if not _id.strip():
                raise DataError(path, n, "empty _id")
            if self.seen is not None:
                first = self.seen.setdefault(_id, n)
                if first != n:
                    raise DataError(path, n, f"duplicate {what} id {_id!r} (first on line {first})")
            values = [_str_field(rec, f, path, n, required=f in self.required) for f in self.fields]
            if not any(v.strip() for v in values):
                also = " and no title" if self.title else ""
                raise DataError(path, n, f"{what} {_id!r} has an empty text{also}")
            ids.append(_utf8(_id, "_id", path, n))
            if self.title:
                t = _utf8(values[0], "title", path, n)
                x = _utf8(values[1], "text", path, n)
                texts.append(t + b" " + x if t and x else t or x)
                cuts.append(len(t))
            else:
                texts.append(_utf8(values[0], "text", path, n))
        if cuts and max(cuts) >= 2**31:
            raise DataError(path, lineno, "a title longer than 2 GiB")
        return _Part(ids, texts, np.asarray(cuts, np.int32), arrow=False)


@dataclass(frozen=True)
class _Part:
    """One block's rows: ids and texts (lists of bytes, or pyarrow arrays), title lengths."""

    ids: Any
    texts: Any
    cuts: npt.NDArray[np.int32]
    arrow: bool


class _Fast:
    """The pyarrow reader of one block; :class:`_Decline` when it cannot prove it fine."""

    def __init__(self, title: bool) -> None:
        import pyarrow as pa
        import pyarrow.compute as pc
        import pyarrow.json as pj

        self.pa, self.pc, self.pj = pa, pc, pj
        self.title = title
        names = ("_id", "title", "text") if title else ("_id", "text")
        self.parse = pj.ParseOptions(
            explicit_schema=pa.schema([(f, pa.string()) for f in names]),
            unexpected_field_behavior="ignore",
            newlines_in_values=False,
        )
        self.read = pj.ReadOptions(use_threads=True)

    @staticmethod
    def _content_lines(block: bytes | bytearray, newlines: list[int]) -> int:
        """The number of non-blank lines, each proven to hold one ``{...}`` (an object
        cannot then span lines: the next line's ``{`` cannot follow a closing ``}``), none
        nested deeper than Python's parser reads."""
        a = np.frombuffer(block, dtype=np.uint8)
        nl = np.flatnonzero(a == 10)
        newlines.append(int(nl.size))
        # a line with more [ and { than Python's parser nests must be longer than that
        ends_at = np.append(nl, a.size)
        begins = np.concatenate([[0], nl + 1])
        for i in np.flatnonzero(ends_at - begins > _MAX_OPENERS).tolist():
            lo, hi = int(begins[i]), int(ends_at[i])
            if block.count(b"[", lo, hi) + block.count(b"{", lo, hi) > _MAX_OPENERS:
                raise _Decline
        if (
            a.size
            and a[0] == 0x7B
            and a[-1] == 10
            and (a[nl - 1] == 0x7D).all()
            and (a[nl[:-1] + 1] == 0x7B).all()
        ):
            return int(nl.size)  # every line is {...}: no blank line, no \r
        starts = np.concatenate([[0], nl + 1])
        ends = np.concatenate([nl, [a.size]])
        if starts[-1] == a.size:  # after the final newline: no line
            starts, ends = starts[:-1], ends[:-1]
        cr = ends > starts
        cr[cr] = a[ends[cr] - 1] == 13
        ends = ends - cr
        filled = ends > starts
        s, e = starts[filled], ends[filled]
        good = (a[s] == 0x7B) & (a[e - 1] == 0x7D)
        odd = np.flatnonzero(~good)
        if odd.size > _ODD_LINES:
            raise _Decline
        blank = 0
        for i in odd.tolist():
            text = block[int(s[i]) : int(e[i])].strip(_JSON_SPACE)
            if not text:
                blank += 1
            elif not (text.startswith(b"{") and text.endswith(b"}")):
                raise _Decline
        return int(s.size - blank)

    def _blank(self, column: Any) -> bool:
        """Whether a row is empty or whitespace only (``str.strip()``'s whitespace): the
        rows that start with a whitespace byte are looked at, the others cannot be."""
        candidates = 0
        for chunk in column.chunks:
            data, offsets = _arrow_chunk(chunk)
            s, e = offsets[:-1], offsets[1:]
            maybe = e == s
            filled = ~maybe
            maybe[filled] = _SPACE_LEAD[data[s[filled]]] if data.size else False
            candidates += int(maybe.sum())
        if candidates == 0:
            return False
        return bool(self.pc.any(self.pc.match_substring_regex(column, _BLANK_RE)).as_py())

    def _valid_utf8(self, block: bytes | bytearray) -> bool:
        """Whether the whole block is UTF-8 (pyarrow's JSON parser does not check the bytes
        inside strings; its validator agrees with Python's decoder)."""
        pa = self.pa
        size = np.array([0, len(block)], dtype=np.int64)
        arr = pa.Array.from_buffers(
            pa.large_string(), 1, [None, pa.py_buffer(size), pa.py_buffer(block)]
        )
        try:
            arr.validate(full=True)
        except pa.ArrowInvalid:
            return False
        return True

    def block(self, block: bytes | bytearray, newlines: list[int]) -> _Part:
        """The block's rows; its count of ``\\n`` appended to ``newlines`` once known."""
        pa, pc = self.pa, self.pc
        if not self._valid_utf8(block):
            raise _Decline
        try:
            table = self.pj.read_json(
                pa.BufferReader(block), read_options=self.read, parse_options=self.parse
            )
        except (pa.ArrowException, UnicodeError):
            raise _Decline from None
        if table.num_rows != self._content_lines(block, newlines):
            raise _Decline
        ids = table.column("_id")
        if ids.null_count or self._blank(ids):
            raise _Decline
        text = table.column("text")
        if not self.title:
            if text.null_count or self._blank(text):
                raise _Decline
            return _Part(ids, text, np.zeros(len(text), np.int32), arrow=True)
        title = table.column("title")
        title = title.fill_null("") if title.null_count else title
        text = text.fill_null("") if text.null_count else text
        tl = pc.binary_length(title)
        if pc.max(tl).as_py() == 0:
            docs = text
        elif pc.max(pc.binary_length(text)).as_py() == 0:
            docs = title
        else:
            xl = pc.binary_length(text)
            both = pc.and_(pc.greater(tl, 0), pc.greater(xl, 0))
            joined = pc.binary_join_element_wise(title, text, " ")
            docs = pc.if_else(both, joined, pc.if_else(pc.greater(tl, 0), title, text))
        if self._blank(docs):
            raise _Decline
        return _Part(ids, docs, np.asarray(tl.to_numpy(), dtype=np.int32), arrow=True)


def _fast_reader(title: bool) -> _Fast | None:
    try:
        return _Fast(title)
    except ImportError:
        return None


def read_records(path: Path, *, what: str, title: bool, fast: bool = True) -> Records:
    """The records of a BEIR jsonl file (``title``: a corpus, with ``title`` and
    ``text``; otherwise queries, ``text`` required), checked as
    :func:`negsample.load_beir` documents. ``fast=False`` reads line by line only."""
    reader = _fast_reader(title) if fast else None
    if reader is not None:
        try:
            return _read(path, what, title, reader)
        except _Restart:
            pass
    return _read(path, what, title, None)


def _read(path: Path, what: str, title: bool, fast: _Fast | None) -> Records:
    slow = _Slow(path, what, title, check_duplicates=fast is None)
    ids, texts = TextsBuilder(), TextsBuilder()
    cuts: list[npt.NDArray[np.int32]] = []
    declined = 0
    newlines: list[int] = []
    for lineno, block in blocks(path, newlines=newlines):
        part = None
        if fast is not None and declined < 2:
            try:
                part = fast.block(block, newlines)
                declined = 0
            except _Decline:
                declined += 1
                newlines.clear()  # counted again by blocks()
        if part is None:
            try:
                part = slow.block(lineno, block)
            except DataError:
                if fast is not None:
                    raise _Restart from None
                raise
        if part.arrow:
            ids.add_arrow(part.ids)
            texts.add_arrow(part.texts)
        else:
            ids.add_bytes(part.ids)
            texts.add_bytes(part.texts)
        cuts.append(part.cuts)
        del part
    all_ids = ids.finish()
    if len(all_ids) == 0:
        raise DataError(path, None, f"no {what} records")
    if fast is not None and first_duplicate(all_ids) is not None:
        raise _Restart
    docs = texts.finish()
    if not title:
        return Records(all_ids, docs, None)
    # one title length per row of each chunk of the documents (a block may hold several)
    flat = np.concatenate(cuts)
    return Records(all_ids, docs, np.split(flat, docs._row0[1:-1]))
