"""HL7 v2 ER7 ("pipe and hat") messages read from a stream, one message at a time.

Small on purpose: the adapter needs segments, fields, repetitions,
components and the escape sequences, with the line each segment came from
so that problems are located (``message 3 (line 17), PID-7``). Segment
separators may be ``\\r`` (the standard), ``\\n`` or ``\\r\\n``; MLLP framing
bytes and batch/file header segments (FHS, BHS, BTS, FTS) are ignored.
``python-hl7`` parses a message well but neither streams a file nor keeps
line numbers, so messages are split here and parsed with the separators
each MSH declares.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import BinaryIO

_SEGMENT_BREAK = re.compile(rb"\r\n|\r|\n")
_SEGMENT_NAME = re.compile(r"^[A-Z][A-Z0-9]{2}$")
_BATCH_SEGMENTS = frozenset({"FHS", "BHS", "BTS", "FTS"})


@dataclass(slots=True)
class RawMessage:
    """The segments of one message as read: (line number, text)."""

    index: int
    lines: list[tuple[int, str]] = field(default_factory=list)
    decode_errors: list[tuple[int, str]] = field(default_factory=list)

    @property
    def first_line(self) -> int:
        return self.lines[0][0] if self.lines else 0

    @property
    def text(self) -> str:
        return "\r".join(t for _, t in self.lines)


def split_messages(handle: BinaryIO, encoding: str, chunk: int = 1 << 16) -> Iterator[RawMessage]:
    """Messages in file order; segments before the first MSH form a message of their own
    (which the adapter rejects as having no MSH)."""
    current: RawMessage | None = None
    index = 0
    for line_no, raw in _segments(handle, chunk):
        raw = raw.strip(b"\x0b\x1c")
        if not raw.strip():
            continue
        try:
            text = raw.decode(encoding)
            error = ""
        except UnicodeDecodeError as exc:
            text = raw.decode(encoding, "backslashreplace")
            error = f"byte 0x{raw[exc.start:exc.start + 1].hex().upper()} is not valid {encoding}"
        name = text[:3]
        if name in _BATCH_SEGMENTS:
            continue
        if name == "MSH" or current is None:
            if current is not None:
                yield current
            index += 1
            current = RawMessage(index)
        current.lines.append((line_no, text))
        if error:
            current.decode_errors.append((line_no, error))
    if current is not None:
        yield current


def _segments(handle: BinaryIO, chunk: int) -> Iterator[tuple[int, bytes]]:
    """(line number, bytes) of each segment, reading the file in chunks."""
    tail = b""
    line = 0
    while True:
        data = handle.read(chunk)
        if not data:
            break
        data = tail + data
        parts = _SEGMENT_BREAK.split(data)
        tail = parts.pop()
        if data.endswith(b"\r"):  # a \r\n pair may straddle the chunk boundary
            tail = parts.pop() + b"\r" if parts else tail
        for part in parts:
            line += 1
            yield line, part
    if tail:
        for part in _SEGMENT_BREAK.split(tail):
            line += 1
            yield line, part


@dataclass(frozen=True, slots=True)
class Separators:
    field: str = "|"
    component: str = "^"
    repetition: str = "~"
    escape: str = "\\"
    subcomponent: str = "&"


@dataclass(frozen=True, slots=True)
class Segment:
    name: str
    fields: tuple[str, ...]
    """HL7 numbering: ``fields[n]`` is SEG-n (for MSH, MSH-1 is the field separator)."""
    line: int

    def get(self, n: int) -> str:
        return self.fields[n] if n < len(self.fields) else ""


class SegmentError(ValueError):
    def __init__(self, line: int, message: str) -> None:
        super().__init__(message)
        self.line = line
        self.message = message


def parse_segments(message: RawMessage) -> tuple[Separators, list[Segment], list[SegmentError]]:
    """Parse every segment, collecting broken ones rather than stopping at the first."""
    errors: list[SegmentError] = []
    first_line, first = message.lines[0]
    if not first.startswith("MSH"):
        errors.append(SegmentError(first_line, "the message does not start with an MSH segment"))
        return Separators(), [], errors
    if len(first) < 8:
        errors.append(SegmentError(first_line, "MSH is too short to declare its separators (MSH-1, MSH-2)"))
        return Separators(), [], errors
    fs = first[3]
    encoding_chars = first[4:].split(fs, 1)[0]
    if len(encoding_chars) < 4 or len(set(encoding_chars[:4] + fs)) != 5 or fs.isalnum():
        errors.append(SegmentError(first_line, "MSH-2 must declare four distinct encoding characters (^~\\&)"))
        return Separators(), [], errors
    seps = Separators(fs, encoding_chars[0], encoding_chars[1], encoding_chars[2], encoding_chars[3])
    segments = []
    for line, text in message.lines:
        name = text[:3]
        if not _SEGMENT_NAME.match(name) or (len(text) > 3 and text[3] != fs):
            errors.append(
                SegmentError(line, f"broken segment: {_preview(text)!r} is not a segment name followed by {fs!r}")
            )
            continue
        # MSH-1 is the field separator itself, so MSH's fields are numbered one on.
        fields = ("MSH", fs, *text[4:].split(fs)) if name == "MSH" else tuple(text.split(fs))
        segments.append(Segment(name, fields, line))
    return seps, segments, errors


def _preview(text: str) -> str:
    return text[:12] + ("…" if len(text) > 12 else "")


_ESCAPE_NAMES = {"F": "field", "S": "component", "T": "subcomponent", "R": "repetition", "E": "escape"}


def unescape(text: str, seps: Separators) -> str:
    """Undo HL7 escape sequences (``\\F\\``, ``\\S\\``, ``\\.br\\``, ``\\Xhh\\``...)."""
    esc = seps.escape
    if esc not in text:
        return text
    out, i = [], 0
    while i < len(text):
        char = text[i]
        end = text.find(esc, i + 1) if char == esc else -1
        if end == -1:
            out.append(char)
            i += 1
            continue
        code = text[i + 1 : end]
        if code in _ESCAPE_NAMES:
            out.append(getattr(seps, _ESCAPE_NAMES[code]))
        elif code == ".br":
            out.append("\n")
        elif code.startswith("X") and len(code) % 2 == 1:
            try:
                out.append(bytes.fromhex(code[1:]).decode("latin-1"))
            except ValueError:
                out.append(text[i : end + 1])
        else:  # formatting (\H\, \N\...) and unknown sequences carry no text
            pass
        i = end + 1
    return "".join(out)


def components(value: str, seps: Separators, first_subcomponent: bool = False) -> list[str]:
    """The components of a field, unescaped; with ``first_subcomponent``, only the first
    subcomponent of each (split before unescaping, so an escaped ``\\T\\`` stays text)."""
    parts = value.split(seps.component)
    if first_subcomponent:
        parts = [p.split(seps.subcomponent)[0] for p in parts]
    return [unescape(c, seps) for c in parts]


def repetitions(value: str, seps: Separators) -> list[str]:
    return value.split(seps.repetition) if value else []
