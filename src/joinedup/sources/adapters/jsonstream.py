"""Stream the entries of a FHIR JSON file without loading the file.

A FHIR Bundle is one JSON object whose ``entry`` array can be gigabytes. This
reader walks the top level itself and hands each entry (or each resource of
an NDJSON file) to the C JSON decoder (``json.JSONDecoder.raw_decode``) one
at a time, reading more of the file only when a value runs past the buffer.
Memory is bounded by the largest single entry (capped at ``max_unit``
characters), not the file. ``ijson`` would do the same; it is not a
dependency, and this is about a hundred lines.

Malformed JSON is reported with its line and column in the file. Inside the
entry array, the broken entry becomes a unit carrying the error (the
entries before it are unaffected); nothing after it can be found reliably,
so the stream ends there. Outside the entries, the file is refused.
"""

from __future__ import annotations

import codecs
import json
import re
from collections.abc import Generator, Iterator
from dataclasses import dataclass, field
from typing import Any, BinaryIO

_WS = re.compile(r"[ \t\n\r]*")
_DECODER = json.JSONDecoder()


class JsonFileError(ValueError):
    """The file is not readable as FHIR JSON at all (refuse it); ``where`` is ``line L, column C``."""

    def __init__(self, message: str, where: str) -> None:
        super().__init__(f"{where}: {message}")
        self.message = message
        self.where = where


@dataclass(slots=True)
class JsonUnit:
    index: int
    """1-based: the entry's position in the Bundle, or the resource's in an NDJSON file."""
    line: int
    column: int
    raw: str
    value: Any = None
    error: str = ""
    """Set when the unit is malformed JSON; the stream ends after it."""


@dataclass(slots=True)
class TopLevel:
    members: dict[str, Any] = field(default_factory=dict)
    """Members of the top-level object other than ``entry`` (resourceType, type, id...)."""
    has_entries: bool = False
    objects: int = 0
    """Top-level JSON objects seen (more than one: an NDJSON file)."""


class JsonStream:
    def __init__(self, handle: BinaryIO, chunk: int = 1 << 20, max_unit: int = 64 << 20) -> None:
        self._handle = handle
        self._chunk = chunk
        self._max_unit = max_unit
        self._decoder = codecs.getincrementaldecoder("utf-8-sig")()
        self._buf = ""
        self._pos = 0
        self._base_line = 1
        """Line number of the buffer's first character."""
        self._base_col_break = -1
        self._eof = False
        self._bytes = 0
        self.top = TopLevel()

    # -- buffer --------------------------------------------------------------------

    def _fill(self, want: int) -> bool:
        """Read at least ``want`` more characters if the file has them; False at end of file."""
        if self._eof:
            return False
        got = 0
        while got < want:
            data = self._handle.read(max(self._chunk, want))
            final = not data
            try:
                text = self._decoder.decode(data, final=final)
            except UnicodeDecodeError as exc:
                raise JsonFileError(
                    f"the file is not UTF-8 (byte 0x{data[exc.start:exc.start + 1].hex().upper()})",
                    f"byte offset {self._bytes + exc.start}",
                ) from None
            self._bytes += len(data)
            self._buf += text
            got += len(text)
            if final:
                self._eof = True
                return got > 0
        return True

    def _compact(self) -> None:
        """Drop what has been consumed, keeping line numbers right."""
        if self._pos > self._chunk:
            dropped = self._buf[: self._pos]
            breaks = dropped.count("\n")
            if breaks:
                self._base_line += breaks
                self._base_col_break = dropped.rfind("\n") - self._pos
            else:
                self._base_col_break -= self._pos
            self._buf = self._buf[self._pos :]
            self._pos = 0

    def where(self, pos: int) -> tuple[int, int]:
        """(line, column), 1-based, of buffer position ``pos`` in the file."""
        breaks = self._buf.count("\n", 0, pos)
        if breaks:
            return self._base_line + breaks, pos - self._buf.rfind("\n", 0, pos)
        return self._base_line, pos - self._base_col_break

    def _skip_ws(self) -> str:
        """The next non-space character (reading more as needed), or "" at end of file."""
        while True:
            match = _WS.match(self._buf, self._pos)
            assert match is not None
            self._pos = match.end()
            if self._pos < len(self._buf):
                return self._buf[self._pos]
            if not self._fill(self._chunk):
                return ""

    def _expect(self, chars: str, what: str) -> str:
        char = self._skip_ws()
        if char == "" or char not in chars:
            line, col = self.where(self._pos)
            found = "the end of the file" if char == "" else repr(char)
            raise JsonFileError(f"expected {what}, found {found}", f"line {line}, column {col}")
        self._pos += 1
        return char

    def _value(self) -> tuple[Any, int, str]:
        """Decode one JSON value at the cursor: (value, start, error as ``line L, column C: msg``)."""
        self._skip_ws()
        start = self._pos
        extra = self._chunk
        while True:
            try:
                value, end = _DECODER.raw_decode(self._buf, start)
            except json.JSONDecodeError as exc:
                near_end = exc.pos >= len(self._buf) - 32 or exc.msg.startswith("Unterminated")
                if near_end and len(self._buf) - start < self._max_unit and self._fill(extra):
                    extra *= 2
                    continue
                line, col = self.where(exc.pos)
                if len(self._buf) - start >= self._max_unit:
                    return None, start, f"line {line}: one value is larger than {self._max_unit} characters"
                return None, start, f"line {line}, column {col}: {exc.msg}"
            if end == len(self._buf) and self._fill(extra):
                # A number at the very end of the buffer may go on ("1" of "10"): read on.
                extra *= 2
                continue
            self._pos = end
            return value, start, ""

    def _refuse(self, error: str) -> JsonFileError:
        where, _, message = error.partition(": ")
        return JsonFileError(message, where)

    # -- the document ----------------------------------------------------------------

    def units(self) -> Iterator[JsonUnit]:
        """Each Bundle entry, or each top-level resource (one, or many in NDJSON), as a unit."""
        if self._skip_ws() == "":
            raise JsonFileError("the file is empty", "line 1, column 1")
        index = 0
        while True:
            char = self._skip_ws()
            if char == "":
                return
            if char != "{":
                line, col = self.where(self._pos)
                raise JsonFileError(f"expected a JSON object, found {char!r}", f"line {line}, column {col}")
            self.top.objects += 1
            index += 1
            if self.top.objects == 1:
                start = self._pos
                line, col = self.where(start)
                ended = yield from self._first_object()
                if ended:
                    return
                if self.top.has_entries:
                    if self._skip_ws() != "":
                        line, col = self.where(self._pos)
                        raise JsonFileError("unexpected text after the Bundle", f"line {line}, column {col}")
                    return
                yield JsonUnit(1, line, col, self._buf[start : self._pos], self.top.members)
                self._compact()
                continue
            value, start, error = self._value()
            yield self._unit(index, start, value, error)
            if error:
                return
            self._compact()

    def _first_object(self) -> Generator[JsonUnit, None, bool]:
        """Read the first object member by member, streaming ``entry`` if it has one.
        Returns True when a malformed entry ended the stream."""
        self._expect("{", "'{'")
        if self._skip_ws() == "}":
            self._pos += 1
            return False
        while True:
            key, start, error = self._value()
            if error:
                raise self._refuse(error)
            if not isinstance(key, str):
                line, col = self.where(start)
                raise JsonFileError("expected a member name", f"line {line}, column {col}")
            self._expect(":", "':'")
            if key == "entry" and self._skip_ws() == "[":
                self.top.has_entries = True
                self._pos += 1
                ended = yield from self._entries()
                if ended:
                    return True
            else:
                value, start, error = self._value()
                if error:
                    raise self._refuse(error)
                self.top.members[key] = value
            if self._expect(",}", "',' or '}'") == "}":
                return False

    def _entries(self) -> Generator[JsonUnit, None, bool]:
        """Yield entries; returns True when a malformed entry ended the stream."""
        index = 0
        if self._skip_ws() == "]":
            self._pos += 1
            return False
        while True:
            index += 1
            value, start, error = self._value()
            yield self._unit(index, start, value, error)
            if error:
                return True
            self._compact()
            if self._expect(",]", "',' or ']' after an entry") == "]":
                return False

    def _unit(self, index: int, start: int, value: Any, error: str) -> JsonUnit:
        line, col = self.where(start)
        raw = self._buf[start : start + 4096] if error else self._buf[start : self._pos]
        return JsonUnit(index, line, col, raw, value, error)
