"""Normalised text, for finding documents that are near copies of a positive.

The same passage crawled twice, chunked twice or copied with other spacing, casing or
punctuation is a false negative of the worst kind when it is sampled against its own
positive. :func:`normalize_text` maps such copies to one string; :func:`normalized_keys`
hashes the normalised text of every row of a corpus in bounded memory (one 64-bit key per
row, no Python string kept); :func:`normalized_groups` finds the rows whose normalised
text equals that of given rows (keys select the candidates, their normalised texts
decide, so a hash collision never joins two different texts).

The rule, exactly (:func:`normalize_text`):

1. remove every *invisible* character: Unicode general category ``Cf`` (format: soft
   hyphen U+00AD, zero-width space U+200B, joiners, the byte-order mark U+FEFF...) and
   ``Cc`` (controls) that are not whitespace;
2. Unicode NFKC (compatibility composition: ligatures, full-width forms, non-breaking
   spaces, superscripts);
3. full Unicode case folding (``str.casefold``: ``"Straße"`` and ``"STRASSE"`` agree),
   then NFKC again (case folding can leave a string that is not NFKC);
4. every maximal run of *separators*, whitespace (``str.isspace``) or punctuation
   (general category ``P*``: ``Pc Pd Ps Pe Pi Pf Po``), becomes one space, and separators
   at either end are removed.

(Neither NFKC nor case folding makes an invisible character out of a visible one, so
step 1 need not be repeated after step 3.)

Symbols (category ``S*``: ``+ < = > ^ | ~ $ °``...), letters, digits and combining marks
are kept as they are. The categories are those of the Python running it
(``unicodedata.unidata_version``); a run's exclusions are part of its settings, so a
different Unicode version never mixes with an earlier run's chunks.
"""

from __future__ import annotations

import functools
import hashlib
import unicodedata
from collections.abc import Iterator, Sequence

import numpy as np
import numpy.typing as npt

from ..errors import InputError, InputTypeError
from .texts import Texts

__all__ = ["normalize_text", "normalized_groups", "normalized_keys"]

IntArray = npt.NDArray[np.int64]
UInt64Array = npt.NDArray[np.uint64]


def _kind(ch: str) -> int:
    """0: kept, 1: a separator (whitespace or punctuation), 2: invisible (removed)."""
    if ch.isspace() or unicodedata.category(ch)[0] == "P":
        return _SEP
    return _DROP if unicodedata.category(ch) in ("Cf", "Cc") else _KEEP


_KEEP, _SEP, _DROP = 0, 1, 2
_kind_of = functools.lru_cache(maxsize=1 << 16)(_kind)
# ASCII in bytes: separators become b" ", invisible controls are deleted, letters folded
_ASCII_MAP = bytearray(range(256))
_ASCII_DELETE = bytearray()
for _c in range(128):
    _k = _kind(chr(_c))
    if _k == _SEP:
        _ASCII_MAP[_c] = 0x20
    elif _k == _DROP:
        _ASCII_DELETE.append(_c)
    else:
        _ASCII_MAP[_c] = ord(chr(_c).casefold())
_ASCII_TABLE, _ASCII_DROP = bytes(_ASCII_MAP), bytes(_ASCII_DELETE)
del _c, _k


def _ascii_bytes(b: bytes) -> bytes:
    """Steps 1-4 on ASCII bytes (NFKC is the identity there, case folding is lower); on
    UTF-8, the ASCII characters only (bytes of 128 and above are left as they are)."""
    return b" ".join(b.translate(_ASCII_TABLE, _ASCII_DROP).split())


def _replace_special(t: str, kinds: tuple[int, ...], ascii: bool) -> str:
    """``t`` with each distinct character of a kind in ``kinds`` replaced, separators by a
    space and invisible characters by nothing (ASCII ones too only when ``ascii``: they
    are otherwise left to :func:`_ascii_bytes`). A text holds few distinct characters
    outside ASCII, so this is a few ``str.replace`` scans."""
    for ch in set(t):
        if not ascii and ch < "\x80":
            continue
        k = _kind_of(ch)
        if k in kinds:
            t = t.replace(ch, " " if k == _SEP else "")
    return t


def _normalized_bytes(text: str) -> bytes:
    """The UTF-8 bytes of :func:`normalize_text` of ``text``."""
    if text.isascii():
        return _ascii_bytes(text.encode("ascii"))
    t = _replace_special(text, (_DROP,), ascii=True)  # before NFKC: it may compose then
    t = unicodedata.normalize("NFKC", t)
    t = unicodedata.normalize("NFKC", t.casefold())
    t = _replace_special(t, (_SEP,), ascii=False)
    # what is left outside ASCII is kept: bytes of 128 and above pass the table unchanged
    return _ascii_bytes(t.encode("utf-8", "surrogatepass"))


def normalize_text(text: str) -> str:
    """``text`` normalised so that near copies of one passage agree: invisible characters
    removed, NFKC, case-folded, runs of whitespace and punctuation collapsed to one space
    and trimmed (the module docstring gives the rule exactly).

    Parameters
    ----------
    text : str
        Any string.

    Returns
    -------
    str
        The normalised text; ``normalize_text(normalize_text(t)) == normalize_text(t)``.

    Examples
    --------
    >>> normalize_text("  The CAT -- sat\u00a0on the\u200b mat!! ")
    'the cat sat on the mat'
    >>> normalize_text("Straße, ﬁne.") == normalize_text("STRASSE fine")
    True
    >>> normalize_text("a+b"), normalize_text("a b")
    ('a+b', 'a b')
    """
    if not isinstance(text, str):
        raise InputTypeError(f"normalize_text takes a str, got {type(text).__name__}")
    return _normalized_bytes(text).decode("utf-8", "surrogatepass")


def _rows(texts: Sequence[str]) -> Iterator[str]:
    """Every row of ``texts`` as a string (a :class:`Texts` decodes one row at a time)."""
    if isinstance(texts, Texts):
        for b in texts.iter_bytes():
            yield str(b, "utf-8")
    else:
        for i, t in enumerate(texts):
            if not isinstance(t, str):
                raise InputTypeError(f"text {i} is a {type(t).__name__}, not a string")
            yield t


def _key(text: str) -> int:
    """The 64-bit key of an already normalised text: BLAKE2b of its UTF-8 bytes."""
    digest = hashlib.blake2b(text.encode("utf-8", "surrogatepass"), digest_size=8).digest()
    return int.from_bytes(digest, "little")


def normalized_keys(texts: Sequence[str]) -> UInt64Array:
    """A 64-bit key of every row's normalised text (:func:`normalize_text`): BLAKE2b of
    its UTF-8 bytes. Rows with the same normalised text have the same key; different ones
    collide with probability about ``2**-64`` per pair (:func:`normalized_groups` checks
    the texts). One row is decoded at a time: memory is the keys, 8 bytes per row.

    Parameters
    ----------
    texts : sequence of str
        A :class:`~negsample.io.texts.Texts` column or any sequence of strings.

    Returns
    -------
    numpy.ndarray
        uint64 ``(len(texts),)``.
    """
    return np.fromiter(
        (_key(normalize_text(t)) for t in _rows(texts)), dtype=np.uint64, count=len(texts)
    )


def normalized_groups(
    texts: Sequence[str], rows: npt.ArrayLike, keys: UInt64Array | None = None
) -> tuple[IntArray, IntArray]:
    """Rows of ``texts`` whose normalised text equals that of one of ``rows``, and their
    groups: the normalised counterpart of :func:`~negsample.io.texts.document_groups`.

    Parameters
    ----------
    texts : sequence of str
        The corpus texts.
    rows : array-like of int
        The rows to match (a query's positives, flat).
    keys : numpy.ndarray or None
        :func:`normalized_keys` of ``texts`` when already computed.

    Returns
    -------
    members, group : numpy.ndarray
        int64: every row (sorted) whose normalised text is that of at least one row of
        ``rows`` and shared by two rows or more, and for each a group number (rows with
        the same normalised text, the same number). Keys select the candidates; their
        normalised texts decide.
    """
    rows = np.unique(np.asarray(rows, dtype=np.int64))
    empty = np.empty(0, np.int64)
    if rows.size == 0 or len(texts) < 2:
        return empty, empty
    if keys is None:
        keys = normalized_keys(texts)
    if keys.shape != (len(texts),):
        raise InputError(f"keys has shape {keys.shape}, want ({len(texts)},): one per text")
    cand = np.flatnonzero(np.isin(keys, np.unique(keys[rows])))
    if cand.size == rows.size:  # only the rows themselves: any sharing is among them
        counts = np.unique(keys[cand], return_counts=True)[1]
        if counts.max(initial=1) < 2:
            return empty, empty
    group_of: dict[str, int] = {}
    gid = np.fromiter(
        (group_of.setdefault(normalize_text(texts[int(r)]), len(group_of)) for r in cand.tolist()),
        np.int64,
        count=cand.size,
    )
    wanted = np.zeros(len(group_of), bool)
    wanted[gid[np.isin(cand, rows)]] = True
    shared = np.bincount(gid, minlength=len(group_of)) > 1
    keep = (wanted & shared)[gid]
    return cand[keep], gid[keep]
