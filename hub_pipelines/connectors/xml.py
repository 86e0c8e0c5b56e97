"""Tolerant, streaming XML reading for the desktop systems' answers and export files (Tally, BUSY).

Real Tally and BUSY output is not always well-formed XML, and the stdlib parsers reject it:
- `&#4;` (Tally's "not applicable" marker) and other references to characters XML 1.0 forbids,
  and raw control bytes (U+0005 inside names): both are removed before parsing;
- tags with a prefix nobody declared (`UDF:PKT`: Tally declares `xmlns:UDF` on TALLYMESSAGE, and
  its collection answers may leave it out): read as they are, the prefix kept in the tag;
- UTF-16 with a BOM (Tally's default), UTF-8 re-encodings that still declare UTF-16.

`objects(source, tags)` yields the elements named in `tags` one at a time, as the bytes arrive:
memory holds one object, never the document. Everything else that is truly broken (an unclosed
tag, text outside the root) raises `XmlError` naming the line and column.
"""

from __future__ import annotations

import codecs
import re
import sys
from collections.abc import Collection, Iterable, Iterator
from functools import lru_cache
from typing import IO, Any

from lxml import etree

CHUNK = 1 << 16  # bytes read at a time from a file or a bytes source
HEAD = 1024  # bytes looked at before deciding the encoding (BOM, XML declaration)

Source = bytes | bytearray | memoryview | IO[bytes] | Iterable[bytes]

_BOMS = (
    (codecs.BOM_UTF8, "utf-8"),
    (codecs.BOM_UTF16_LE, "utf-16-le"),
    (codecs.BOM_UTF16_BE, "utf-16-be"),
)
_DECLARED = re.compile(rb"""^\s*<\?xml\b[^>]*?\bencoding\s*=\s*["']([A-Za-z0-9._:-]+)["']""")
_DECLARATION = re.compile(r"^\s*<\?xml\b[^>]*\?>")
_CHAR_REFERENCE = re.compile(r"&#(?:[xX]([0-9a-fA-F]+)|([0-9]+));")
_FORBIDDEN = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff\ud800-\udfff]")
_LONGEST_REFERENCE = 32  # a split `&#…;` is held back until its `;` arrives, up to this length
# Errors the reader tolerates: undeclared prefixes are a namespace error, not broken XML.
_TOLERATED_DOMAINS = {"NAMESPACE"}
# A tag `find` takes as a plain child name (ElementPath: no `/`, `.`-step, prefix, `*`, `[`, `@`).
_CHILD_TAG = re.compile(r"[A-Za-z_][\w.-]*")
# The first element's name: after the XML declaration (blanked), comments, a DOCTYPE and PIs.
_FIRST_TAG = re.compile(r"\s*(?:<!--.*?-->\s*|<\?.*?\?>\s*|<![^>\[]*>\s*)*<([^\s/>!?]+)", re.S)
# A part of `as_dicts` not met in the walk of its record.
_NOT_REACHED = object()


class XmlError(ValueError):
    """XML that cannot be read even tolerantly; the message names the line, column and problem."""


def objects(
    source: Source, tags: Collection[str], *, encoding: str | None = None
) -> Iterator[etree._Element]:
    """Each element whose tag (without namespace or prefix) is in `tags`, complete, in document
    order. An element is cleared, and the elements before it dropped, once the next is asked
    for: copy out what you need first. Nested matches are yielded too (inner first), and only the
    outermost is cleared. `source`: bytes, a binary file, or an iterable of byte chunks (an httpx
    `iter_bytes()`). The encoding comes from the BOM, else the XML declaration, else `encoding`
    (e.g. an HTTP charset), else UTF-8."""
    wanted = frozenset((tags,) if isinstance(tags, str) else tags)
    stream = _stream(source, encoding)
    # lxml reports only the wanted tags (and the root's start, to prune from): events for every
    # element cost as much as the parse. `{*}` matches any namespace, or a prefix undeclared.
    first = stream.first_tag()
    parse = _parse(stream, ("start", "end"), [f"{{*}}{tag}" for tag in {*wanted, first} if tag])
    errors = _Errors(parse)
    open_matches = 0  # matched elements started and not yet ended: their content must stay
    for event, element in _events(parse):
        if stream.root is None:
            stream.root = element.getroottree().getroot()
        if local_name(element.tag) not in wanted:
            continue  # the root's start
        open_matches += 1 if event == "start" else -1
        # Between reads, what lies before the parser's place is dropped, unless a match is open.
        stream.prune = open_matches == 0
        if event == "start":
            continue
        errors.check()
        yield element
        if open_matches == 0:
            _drop(element)
    errors.check(final=True)


def root_tag(source: Source, *, encoding: str | None = None) -> str:
    """The local name of the root element, reading only as far as it."""
    parse = _parse(_stream(source, encoding), ("start",))
    for _event, element in _events(parse):
        return local_name(element.tag)
    _Errors(parse).check(final=True)
    raise XmlError("line 1, column 1: no element: the document is empty")


def local_name(tag: Any) -> str:
    """`{ns}row`, `z:row` and `row` are all `row` (undeclared prefixes stay in the tag)."""
    if not isinstance(tag, str):
        return ""  # a comment or processing instruction
    return tag.rsplit("}", 1)[-1].rsplit(":", 1)[-1]


def text(element: etree._Element, path: str) -> str | None:
    """The text of the first element at `path`, stripped; None when absent or blank."""
    # A child by its tag alone is found in C (`find` is ElementPath's Python, twice as slow).
    found = next(element.iterchildren(path), None) if _is_child_tag(path) else element.find(path)
    value = found.text.strip() if found is not None and found.text else ""
    return value or None


@lru_cache(maxsize=1024)
def _is_child_tag(path: str) -> bool:
    """Whether `path` names a child by its tag alone (`GUID`, `ADDRESS.LIST`): no step, no
    prefix (`find` resolves one against a namespace map, or refuses it), no wildcard."""
    return _CHILD_TAG.fullmatch(path) is not None


def texts(element: etree._Element, path: str) -> list[str]:
    """The stripped, non-blank texts of every element at `path` (the items of a `.LIST`)."""
    values = (found.text.strip() for found in element.iterfind(path) if found.text)
    return [value for value in values if value]


def as_dict(element: etree._Element) -> dict[str, Any]:
    """The element as JSON-able data, for a record's `raw`: attributes as `@NAME`, children by
    tag (a list when repeated), text as is (a leaf's text is its value, else `#text`). Empty
    elements (Tally writes dozens of `<X.LIST> </X.LIST>` per voucher) are left out."""
    return _as_dict(_value(element))


def as_dicts(
    element: etree._Element, parts: Iterable[etree._Element]
) -> tuple[dict[str, Any], dict[etree._Element, dict[str, Any]]]:
    """`as_dict` of `element`, and of each of `parts` (elements inside it), in one walk: a
    record's lines are parts of its raw payload (a Tally voucher's items hold most of its
    elements), and each part's data is the very object found within the record's."""
    found: dict[etree._Element, Any] = dict.fromkeys(parts, _NOT_REACHED)
    raw = _as_dict(_value(element, found))
    # A part that is not inside `element` was not reached: it is read on its own.
    return raw, {
        part: as_dict(part) if value is _NOT_REACHED else _as_dict(value)
        for part, value in found.items()
    }


def _as_dict(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {"#text": value} if value else {}


# --- the pipeline: bytes -> text in its encoding -> cleaned text -> UTF-8 bytes -> lxml ---------


def _stream(source: Source, encoding: str | None) -> _Utf8Stream:
    return _Utf8Stream(_cleaned(_decoded(_chunks(source), encoding)))


def _parse(
    stream: _Utf8Stream, events: tuple[str, ...], tags: list[str] | None = None
) -> etree.iterparse:
    return etree.iterparse(
        stream,
        events=events,
        tag=tags,
        encoding="utf-8",  # `_decoded` removed the declaration and re-encodes
        recover=True,  # for undeclared prefixes only: `_Errors` raises on every other error
        huge_tree=True,
        resolve_entities=False,
        no_network=True,
        remove_comments=True,
        remove_pis=True,
    )


def _events(parse: etree.iterparse) -> Iterator[tuple[str, etree._Element]]:
    try:
        yield from parse
    except etree.XMLSyntaxError as exc:
        column = exc.position[1] if exc.position else 0
        raise XmlError(_described(exc.lineno, column, exc.msg)) from None
    except (LookupError, UnicodeError) as exc:
        raise XmlError(f"line 1, column 1: {exc}") from None


class _Errors:
    """Raises the first error of a recovering parse that is not tolerated."""

    def __init__(self, parse: etree.iterparse) -> None:
        self._parse, self._seen = parse, 0

    def check(self, *, final: bool = False) -> None:
        log = self._parse.error_log
        if len(log) == self._seen and not final:
            return
        for error in list(log)[self._seen :]:
            serious = error.level_name in ("ERROR", "FATAL")
            if serious and error.domain_name not in _TOLERATED_DOMAINS:
                raise XmlError(_described(error.line, error.column, error.message))
        self._seen = len(log)


def _described(line: int | None, column: int | None, message: str) -> str:
    return f"line {line or 1}, column {column or 1}: {message.strip()}"


def _chunks(source: Source) -> Iterator[bytes]:
    if isinstance(source, bytes | bytearray | memoryview):
        data = memoryview(source)
        for start in range(0, len(data), CHUNK):
            yield bytes(data[start : start + CHUNK])
    elif hasattr(source, "read"):
        while chunk := source.read(CHUNK):
            yield chunk
    else:
        yield from (bytes(chunk) for chunk in source if chunk)


def _decoded(chunks: Iterator[bytes], explicit: str | None) -> Iterator[str]:
    head = b""
    for chunk in chunks:
        head += chunk
        if len(head) >= HEAD:
            break
    name, skip = _encoding(head, explicit)
    try:
        decoder = codecs.getincrementaldecoder(name)(errors="replace")
    except LookupError:
        raise XmlError(f"line 1, column 1: unknown encoding {name!r}") from None
    first = decoder.decode(head[skip:])
    # The text is handed on as UTF-8: the declaration (which may say UTF-16) would contradict it.
    yield _DECLARATION.sub(lambda found: " " * len(found.group()), first, count=1)
    for chunk in chunks:
        yield decoder.decode(chunk)
    yield decoder.decode(b"", final=True)


def _encoding(head: bytes, explicit: str | None) -> tuple[str, int]:
    """(codec, BOM length): BOM, else a UTF-16 `<` without one, else the declaration, else
    `explicit`, else UTF-8."""
    for bom, name in _BOMS:
        if head.startswith(bom):
            return name, len(bom)
    if head[:2] == b"<\x00":
        return "utf-16-le", 0
    if head[:2] == b"\x00<":
        return "utf-16-be", 0
    declared = _DECLARED.match(head)
    # A declaration readable as ASCII bytes cannot be right about UTF-16 or UTF-32: the file was
    # re-encoded (Tally's UTF-16 export saved as UTF-8) and kept its old declaration.
    if declared and not declared.group(1).lower().startswith((b"utf-16", b"utf-32", b"ucs")):
        return declared.group(1).decode("ascii"), 0
    return explicit or "utf-8", 0


def _cleaned(texts: Iterator[str]) -> Iterator[str]:
    """Text without references to forbidden characters nor raw control characters; a reference
    split across chunks is held back until it is whole."""
    carry = ""
    for piece in texts:
        piece = carry + piece
        cut = piece.rfind("&")
        if cut != -1 and ";" not in piece[cut:] and len(piece) - cut < _LONGEST_REFERENCE:
            piece, carry = piece[:cut], piece[cut:]
        else:
            carry = ""
        yield _FORBIDDEN.sub("", _CHAR_REFERENCE.sub(_allowed_reference, piece))
    if carry:
        yield _FORBIDDEN.sub("", carry)


def _allowed_reference(found: re.Match[str]) -> str:
    hexadecimal, decimal = found.groups()
    code = int(hexadecimal, 16) if hexadecimal else int(decimal)
    allowed = (
        code in (0x9, 0xA, 0xD)
        or 0x20 <= code <= 0xD7FF
        or 0xE000 <= code <= 0xFFFD
        or 0x10000 <= code <= 0x10FFFF
    )
    return found.group() if allowed else ""


class _Utf8Stream:
    """Cleaned text as a binary file for lxml, one piece at a time. lxml reads only once it has
    handed out every event so far; then, when `prune` allows, every finished element before the
    parser's place is dropped from the tree under `root`, so memory holds the open elements and
    one object, whatever lies between the objects wanted."""

    def __init__(self, pieces: Iterator[str]) -> None:
        self._pieces = pieces
        self._data = b""
        self._position = 0
        self.root: etree._Element | None = None
        self.prune = True

    def first_tag(self) -> str | None:
        """The local name of the document's first element, from the first piece of text."""
        first = next(self._pieces, "")
        self._data = first.encode("utf-8")
        found = _FIRST_TAG.match(first)
        return local_name(found.group(1)) if found else None

    def read(self, size: int = -1) -> bytes:
        if self.prune and self.root is not None:
            _prune(self.root)
        while self._position >= len(self._data):
            piece = next(self._pieces, None)
            if piece is None:
                return b""
            self._data, self._position = piece.encode("utf-8"), 0
        end = len(self._data) if size < 0 else self._position + size
        out = self._data[self._position : end]
        self._position += len(out)
        return out


def _prune(root: etree._Element) -> None:
    """Drop the finished elements: all but the last child, down the path of last children
    (where the parser is; what came before it is complete)."""
    node = root
    while len(node):
        last = node[-1]
        while node[0] is not last:
            del node[0]
        node = last


def _drop(element: etree._Element) -> None:
    """Free a finished element and everything before it at its level."""
    element.clear()
    parent = element.getparent()
    if parent is not None:
        while element.getprevious() is not None:
            del parent[0]


def _value(element: etree._Element, parts: dict[etree._Element, Any] | None = None) -> Any:
    """The element's data (see `as_dict`): None when empty, its text when a bare leaf. Each of
    `parts` met on the way gets its data recorded there."""
    own_text = element.text
    if own_text is not None:
        if not own_text.strip():
            own_text = None
        elif len(own_text) < 24:
            own_text = sys.intern(own_text)  # "No", "Yes", " 1": a page of records repeats them
    attributes = element.attrib
    # Only elements: the parser drops comments and processing instructions, not entities.
    children = list(element.iterchildren(etree.Element)) if len(element) else ()
    if not children and not attributes:
        return own_text
    result: dict[str, Any] = {f"@{local_name(k)}": v for k, v in attributes.items()}
    repeated: set[str] = set()
    for child in children:
        value = _value(child, parts)
        if parts is not None and child in parts:
            parts[child] = value
        if value is None:
            continue
        key = child.tag  # an undeclared prefix stays in the tag; a declared one is put back
        if key[0] == "{":
            key = f"{child.prefix}:{local_name(key)}" if child.prefix else local_name(key)
        key = sys.intern(key)
        if key not in result:
            result[key] = value
        elif key in repeated:
            result[key].append(value)
        else:
            result[key] = [result[key], value]
            repeated.add(key)
    if own_text is not None:
        result["#text"] = own_text
    return result or None
