"""Physical lines of a text file, decoded one at a time with their line number and byte offset.

Decoding line by line (not the whole file) keeps memory bounded and lets an
undecodable byte be reported exactly (``line 12, byte 4711``) and charged to
the one row it is in, instead of failing the whole file or silently turning
into a replacement character. ``auto`` decides between UTF-8 and
Windows-1252 at the first line that is not plain ASCII: UTF-8 if that line
is valid UTF-8, Windows-1252 otherwise, and then holds the whole file to it.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import BinaryIO

from joinedup.sources.mapping.spec import Encoding

UTF8_BOM = b"\xef\xbb\xbf"
_UTF16_BOMS = (b"\xff\xfe", b"\xfe\xff")


@dataclass(frozen=True, slots=True)
class LineIssue:
    line: int
    byte_offset: int
    message: str
    fatal: bool
    """True: the line could not be decoded (the row is rejected); False: a doubt (a warning)."""


class EncodingRefused(ValueError):
    """The file's first bytes show it cannot be read as declared (UTF-16, a BOM that contradicts)."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class DecodedLines:
    """Iterate decoded lines; ``issues`` collects what went wrong since the last ``take_issues``."""

    def __init__(self, handle: BinaryIO, encoding: Encoding) -> None:
        self._handle = handle
        self._declared = encoding
        self._codec: str | None = {
            Encoding.UTF8: "utf-8",
            Encoding.WINDOWS_1252: "cp1252",
            Encoding.AUTO: None,
        }[encoding]
        self.line = 0
        """Number of the last line read (1-based)."""
        self.offset = 0
        """Byte offset of the start of the next line."""
        self.line_start = 0
        """Byte offset of the last line read."""
        self.ended_with_newline = True
        self.issues: list[LineIssue] = []
        self.recorded: list[str] = []
        """The decoded lines since the last ``take_raw`` (the current record's raw text)."""
        self.notes: list[tuple[str, str]] = []
        """(location, message) about the file as a whole: a BOM removed, the encoding chosen."""

    @property
    def detected(self) -> str:
        return self._codec or "undecided (ASCII so far)"

    def __iter__(self) -> Iterator[str]:
        first = True
        for raw in self._handle:
            self.line += 1
            self.line_start = self.offset
            self.offset += len(raw)
            if first:
                first = False
                raw = self._strip_bom(raw)
            self.ended_with_newline = raw.endswith(b"\n")
            text = self._decode(raw)
            self.recorded.append(text)
            yield text

    def take_raw(self) -> str:
        raw = "".join(self.recorded)
        self.recorded.clear()
        return raw.removesuffix("\n").removesuffix("\r")

    def take_issues(self) -> list[LineIssue]:
        issues, self.issues = self.issues, []
        return issues

    def _strip_bom(self, raw: bytes) -> bytes:
        if raw.startswith(_UTF16_BOMS):
            raise EncodingRefused(
                "the file is UTF-16 (it starts with a UTF-16 byte order mark);"
                " export it as UTF-8 or Windows-1252"
            )
        if raw.startswith(UTF8_BOM):
            if self._declared is Encoding.WINDOWS_1252:
                raise EncodingRefused(
                    "the feed declares windows-1252 but the file starts with a UTF-8 byte order"
                    " mark (byte 0): set the feed's encoding to utf-8 or auto"
                )
            self._codec = "utf-8"
            self.notes.append(("byte 0", "the file starts with a UTF-8 byte order mark; it was removed"))
            return raw[len(UTF8_BOM):]
        return raw

    def _decode(self, raw: bytes) -> str:
        if raw.isascii():
            return raw.decode("ascii")
        codec = self._codec
        if codec is None:  # auto, first non-ASCII line: decide for the whole file
            try:
                text = raw.decode("utf-8")
            except UnicodeDecodeError:
                self._codec = "cp1252"
                self.notes.append(
                    (f"line {self.line}", "read as Windows-1252: this is the first line that is not ASCII, and it is not UTF-8")
                )
                return self._decode(raw)
            self._codec = "utf-8"
            self.notes.append((f"line {self.line}", "read as UTF-8: the first line that is not ASCII is UTF-8"))
            return text
        try:
            text = raw.decode(codec)
        except UnicodeDecodeError as exc:
            bad = raw[exc.start : exc.start + 1].hex().upper()
            name = "UTF-8" if codec == "utf-8" else "Windows-1252"
            hint = ""
            if codec == "utf-8" and _decodes(raw, "cp1252"):
                hint = " (the file may be Windows-1252: declare that encoding, or auto)"
            self.issues.append(
                LineIssue(
                    self.line,
                    self.line_start + exc.start,
                    f"byte 0x{bad} at byte offset {self.line_start + exc.start} is not valid {name}{hint}",
                    fatal=True,
                )
            )
            return raw.decode(codec, "backslashreplace")
        if codec == "cp1252" and _looks_like_utf8(raw):
            self.issues.append(
                LineIssue(
                    self.line,
                    self.line_start,
                    "this line reads as UTF-8 but the feed declares windows-1252: letters may be"
                    " garbled (like 'Ã©' for 'é'); check the feed's encoding",
                    fatal=False,
                )
            )
        return text


def _decodes(raw: bytes, codec: str) -> bool:
    try:
        raw.decode(codec)
    except UnicodeDecodeError:
        return False
    return True


def _looks_like_utf8(raw: bytes) -> bool:
    """Non-ASCII bytes that form valid multi-byte UTF-8: almost never true of real Windows-1252."""
    return _decodes(raw, "utf-8")
