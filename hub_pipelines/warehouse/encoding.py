"""Canonical records as the loader's COPY sends them, each with a fingerprint of its content.

A record's fingerprint is a blake2b of its raw payload (as JSON, written by orjson once for both
the COPY and the fingerprint) and of every mapped value, its lines' included. Its lines' raw
payloads are parts of its own (`canonical.InvoiceLine.raw`), so they are not hashed again; their
rows are encoded only for a record that is written.
The loader compares fingerprints with the warehouse's to skip unchanged records before they cost
a staging write, and screens only what it is about to write for values PostgreSQL would refuse.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from decimal import Decimal
from hashlib import blake2b
from operator import attrgetter

import orjson

from hub_pipelines.canonical import (
    CURRENCY_CODE,
    INTEGER_DIGITS,
    MONEY_INTEGER_DIGITS,
    Customer,
    Invoice,
    InvoiceLine,
    column_names,
)

# A NUL inside a text reaches orjson's JSON escaped; PostgreSQL refuses it in text and in jsonb.
ESCAPED_NUL = "\\u0000"
ESCAPED_NUL_BYTES = ESCAPED_NUL.encode()


@dataclass(slots=True)
class EncodedRecord:
    """One record as sent: its row (raw payload, then fingerprint, last), its lines' values, and
    their rows once `RecordEncoder.add_lines` encoded them (the run id is added when they are
    sent: it is no part of the content)."""

    record: Customer | Invoice
    row: tuple
    line_values: list[tuple]
    values_json: bytes  # the JSON of its values and its lines', as fingerprinted
    lines: list[tuple] = field(default_factory=list)

    @property
    def external_id(self) -> str:
        return self.record.external_id

    @property
    def fingerprint(self) -> bytes:
        return self.row[-1]


class _Shape:
    """One record type as the COPY sends it: its columns with the raw payload last, and where
    its numbers sit with the digits before the point their columns hold.

    The fingerprint hashes the values before and after the raw payload's place in the table as
    two lists (`pair`); that JSON is what every stored `content_hash` was made of, so it stays."""

    def __init__(self, record_type: type, offset: int) -> None:
        names = column_names(record_type)
        self.split = names.index("raw")
        mapped = names[: self.split] + names[self.split + 1 :]
        self.columns = [*mapped, "raw"]  # the COPY's column list names this order
        self.values = attrgetter(*mapped)  # every record type maps more than one column
        self.raw_index = offset + len(mapped)
        kinds = {f.name: str(f.type) for f in fields(record_type)}
        self.numbers = [
            (offset + i, INTEGER_DIGITS.get(name, MONEY_INTEGER_DIGITS))
            for i, name in enumerate(mapped)
            if "Decimal" in kinds[name]
        ]

    def pair(self, values: tuple) -> tuple[tuple, tuple]:
        """The values before and after the raw payload's column, as fingerprinted."""
        return values[: self.split], values[self.split :]

    def too_large(self, row: tuple) -> bool:
        """Whether a number of the row has more digits before the point than its column."""
        for index, digits in self.numbers:
            number = row[index]
            if isinstance(number, Decimal) and number.adjusted() >= digits:
                return True
        return False


def json_bytes(value) -> bytes:
    """A JSON value as the loader writes it: orjson, anything it cannot encode by `str`. A key
    that is not text is written as its `str` too; orjson checks for such keys only when asked,
    and asking costs a third more on every payload, so it is asked only after a refusal."""
    try:
        return orjson.dumps(value, default=str)
    except orjson.JSONEncodeError:
        return orjson.dumps(value, default=str, option=orjson.OPT_NON_STR_KEYS)


def json_text(value) -> str:
    """`json_bytes` as text."""
    return json_bytes(value).decode()


class RecordEncoder:
    """Encodes the records of one (tenant, system) and entity for the loader."""

    def __init__(self, tenant_id: str, system: str, record_type: type) -> None:
        self.tenant_id, self.system = tenant_id, system
        self.record = _Shape(record_type, offset=2)  # after tenant_id, system
        self.line = _Shape(InvoiceLine, offset=3)  # after tenant_id, system, invoice id

    def encode(self, record) -> EncodedRecord | None:
        """The record's row and fingerprint, or None when it cannot be JSON for PostgreSQL (a
        lone surrogate in its raw payload or a text: orjson refuses it)."""
        values = self.record.values(record)
        lines = getattr(record, "lines", ())
        line_values = list(map(self.line.values, lines))
        pair = self.line.pair
        fingerprinted = (self.record.pair(values), [pair(v) for v in line_values])
        try:
            raw = json_bytes(record.raw)
            mapped = orjson.dumps(fingerprinted, default=str)
        except orjson.JSONEncodeError:
            return None
        fingerprint = blake2b(raw, digest_size=16)
        fingerprint.update(mapped)
        row = (self.tenant_id, self.system, *values, raw.decode(), fingerprint.digest())
        return EncodedRecord(record, row, line_values, mapped)

    def add_lines(self, encoded: EncodedRecord) -> bool:
        """Encode the lines' rows of a record about to be written; False when a line's raw
        payload cannot be JSON for PostgreSQL."""
        prefix = (self.tenant_id, self.system, encoded.external_id)
        lines = getattr(encoded.record, "lines", ())
        try:
            encoded.lines = [
                (*prefix, *values, json_text(line.raw))
                for line, values in zip(lines, encoded.line_values, strict=True)
            ]
        except orjson.JSONEncodeError:
            return False
        return True

    def suspect(self, encoded: EncodedRecord) -> bool:
        """Whether the record may hold what the warehouse refuses (a cheap screen: the canonical
        `storage_problem` then names the field). A NUL is found in the JSON the fingerprint made
        of its values (orjson escapes it; it refuses a lone surrogate, so `encode` did)."""
        currency = encoded.record.currency
        return (
            ESCAPED_NUL in encoded.row[self.record.raw_index]
            or ESCAPED_NUL_BYTES in encoded.values_json
            or (currency is not None and not CURRENCY_CODE.fullmatch(currency))
            or self.record.too_large(encoded.row)
            or any(self.line.too_large(line) for line in encoded.lines)
        )
