"""Reading the dataset's text files: the error type, plain or gzipped files read in
blocks or lines with their true line numbers, encodings, and strict number fields.

Every problem found here is a :class:`DataError` naming the file and the line (1-based,
blank lines counted) and, where it helps, the column.
"""

from __future__ import annotations

import gzip
import io
import math
import os
import re
import zlib
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from ..errors import InputError

__all__ = [
    "DataError",
    "block_lines",
    "blocks",
    "decode_line",
    "lines",
    "open_binary",
    "parse_float",
    "parse_grade",
    "text_lines",
]


class DataError(InputError):
    """Bad input data. ``str(err)`` is ``"<file>:<line>: <problem>"`` (the line is left out
    when the problem is not on one line)."""

    def __init__(self, file: str | os.PathLike[str], line: int | None, problem: str) -> None:
        self.file = str(file)
        self.line = line
        self.problem = problem
        where = f"{self.file}:{line}" if line is not None else self.file
        super().__init__(f"{where}: {problem}")


UTF8_BOM = b"\xef\xbb\xbf"
_UTF16_BOMS = (b"\xff\xfe", b"\xfe\xff")


def open_binary(path: Path) -> io.BufferedReader | gzip.GzipFile:
    if path.suffix == ".gz":
        return gzip.open(path, "rb")
    return open(path, "rb")


def check_start(path: Path, head: bytes) -> int:
    """How many bytes to skip at the start of a file (a UTF-8 byte-order mark); a UTF-16
    file is refused."""
    if head.startswith(_UTF16_BOMS):
        raise DataError(path, 1, "the file is UTF-16 (byte-order mark); save it as UTF-8")
    return len(UTF8_BOM) if head.startswith(UTF8_BOM) else 0


def decode_line(path: Path, lineno: int, raw: bytes | bytearray, *, nul: bool = True) -> str:
    """``raw`` decoded as UTF-8, or a :class:`DataError` naming the line and column of the
    first bad byte; with ``nul``, a NUL byte is refused as such (a UTF-16 or binary file;
    in a JSON line it is a malformed line, said by the JSON parser)."""
    try:
        line = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise DataError(
            path,
            lineno,
            f"not valid UTF-8: byte 0x{raw[exc.start]:02x} at column {exc.start + 1}",
        ) from None
    at = line.find("\x00") if nul else -1
    if at >= 0:
        raise DataError(
            path,
            lineno,
            f"NUL byte at column {at + 1} (a UTF-16 file without a byte-order mark, or a "
            "binary file?)",
        )
    return line


def lines(path: Path) -> Iterator[tuple[int, str]]:
    """Non-blank lines with their 1-based numbers in the file, each decoded on its own, so
    that bad bytes are reported on their true line. A UTF-8 byte-order mark is skipped."""
    lineno = 0
    with open_binary(path) as f:
        try:
            for lineno, raw in enumerate(f, start=1):
                if lineno == 1:
                    raw = raw[check_start(path, raw) :]
                line = decode_line(path, lineno, raw)
                if line.strip():
                    yield lineno, line
        except (OSError, EOFError, zlib.error) as exc:
            raise DataError(path, lineno + 1, f"cannot read the file: {exc}") from exc


#: Bytes per block read by :func:`blocks` (pyarrow's JSON parser needs a few times the
#: block while it parses; 4 MiB keeps that small and its threads busy).
BLOCK_SIZE = 4 << 20


def _count_lines(block: bytes | bytearray) -> int:
    return int(np.count_nonzero(np.frombuffer(block, dtype=np.uint8) == 10))


def blocks(
    path: Path, size: int | None = None, newlines: list[int] | None = None
) -> Iterator[tuple[int, bytearray]]:
    """The file in blocks of whole lines (each ends with ``\\n``, but perhaps the last),
    with the 1-based number of each block's first line. A leading UTF-8 byte-order mark is
    left out (the first line keeps its number); a UTF-16 file is refused. A consumer that
    counted a block's ``\\n`` may append the count to ``newlines`` (saves a pass)."""
    size = BLOCK_SIZE if size is None else size
    lineno = 1
    seekable = path.suffix != ".gz"  # a gzip file seeks back by decompressing again

    def read(f: io.BufferedReader | gzip.GzipFile, into: bytearray, at: int) -> int:
        try:
            return f.readinto(memoryview(into)[at:])
        except (OSError, EOFError, zlib.error) as exc:
            raise DataError(path, lineno, f"cannot read the file: {exc}") from exc

    with open_binary(path) as f:
        rest = bytearray()
        first = True
        while True:
            buf = bytearray(max(size, 2 * len(rest)))
            buf[: len(rest)] = rest
            n = len(rest) + read(f, buf, len(rest))
            del buf[n:]
            if first:
                while 0 < len(buf) < len(UTF8_BOM):  # a byte-order mark is seen whole
                    more = bytearray(size)
                    got = read(f, more, 0)
                    if not got:
                        break
                    buf += more[:got]
                del buf[: check_start(path, bytes(buf[:3]))]
                first = False
            if n == len(rest):  # end of file
                if rest:
                    yield lineno, rest
                return
            cut = buf.rfind(b"\n")
            if cut < 0:  # a line longer than the block: read on
                rest = buf
                continue
            tail = len(buf) - cut - 1
            if seekable and tail:  # read the partial last line again with the next block
                f.seek(-tail, os.SEEK_CUR)
                rest = bytearray()
            else:
                rest = buf[cut + 1 :]
            del buf[cut + 1 :]
            yield lineno, buf
            lineno += newlines.pop() if newlines else _count_lines(buf)


def block_lines(path: Path, lineno: int, block: bytes | bytearray) -> Iterator[tuple[int, str]]:
    """The non-blank lines of a block (its first line is ``lineno``), as :func:`lines`
    gives them (the same errors): the block decoded at once, or, with a bad byte or a NUL,
    line by line, so that the error comes on its line, after the lines before it."""
    try:
        text: str | None = block.decode("utf-8")
    except UnicodeDecodeError:
        text = None
    if text is None or "\x00" in text:
        raws: list[bytes | bytearray] = list(block.split(b"\n"))
        for n, raw in enumerate(raws, start=lineno):
            line = decode_line(path, n, raw)
            if line.strip():
                yield n, line
        return
    for n, line in enumerate(text.split("\n"), start=lineno):
        if line.strip():
            yield n, line


def text_lines(path: Path) -> Iterator[tuple[int, str]]:
    """Non-blank lines with their 1-based numbers, as :func:`lines` gives them (the same
    errors), a block at a time."""
    for lineno, block in blocks(path):
        yield from block_lines(path, lineno, block)


# -- number fields -------------------------------------------------------------------------
# ASCII only: Python's int() and float() also take other scripts' digits and "1_000"
_INT = re.compile(r"[+-]?[0-9]+", re.ASCII)
_FLOAT = re.compile(
    r"[+-]?(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][+-]?[0-9]+)?|[+-]?(?:inf|infinity|nan)",
    re.ASCII | re.IGNORECASE,
)
_INT64_MIN, _INT64_MAX = -(2**63), 2**63 - 1
#: The smallest magnitude that rounds to infinity in float32 (round half to even).
F32_OVERFLOW = 2.0**128 - 2.0**103


def parse_grade(path: Path, lineno: int, text: str) -> int:
    """A relevance grade: an integer (``2``, ``-1``, or a float form of one, ``2.0``) in
    the int64 range."""
    if _INT.fullmatch(text):
        digits = text.lstrip("+-").lstrip("0")
        if len(digits) > 19:
            raise DataError(path, lineno, f"score {_short(text)} is beyond the int64 range")
        value = int(text)
    elif _FLOAT.fullmatch(text):
        f = float(text)
        if math.isnan(f) or (math.isfinite(f) and not f.is_integer()):
            raise DataError(path, lineno, f"score {_short(text)} is not an integer grade")
        if math.isinf(f):
            raise DataError(path, lineno, f"score {_short(text)} is beyond the int64 range")
        value = int(f)
    else:
        raise DataError(path, lineno, f"score {_short(text)} is not a number")
    if not _INT64_MIN <= value <= _INT64_MAX:
        raise DataError(path, lineno, f"score {_short(text)} is beyond the int64 range")
    return value


def parse_float(path: Path, lineno: int, what: str, text: str, *, float32: bool) -> float:
    """A finite decimal number; with ``float32``, one that stays finite in float32."""
    if not _FLOAT.fullmatch(text):
        raise DataError(path, lineno, f"{what} {_short(text)} is not a number")
    value = float(text)
    if not math.isfinite(value):
        raise DataError(path, lineno, f"{what} {_short(text)} is not finite")
    if float32 and abs(value) >= F32_OVERFLOW:
        raise DataError(
            path, lineno, f"{what} {_short(text)} is beyond float32's range (it would be inf)"
        )
    return value


def _short(text: str) -> str:
    return repr(text if len(text) <= 40 else text[:37] + "...")
