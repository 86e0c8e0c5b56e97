"""A Tally export file (Day Book, vouchers, masters, All Masters; UTF-16 or UTF-8 XML) read as
pages of canonical records, for offices that drop files instead of opening Tally's port.

Each read streams the file twice: a first pass collects the masters (groups, voucher types,
ledgers, currencies, the company: a Day Book writes its COMPANY object last), a second maps the
debtor ledgers or the sales vouchers. Memory holds the masters and one page, never the file.
Objects repeat in exports (All Masters writes a group once per TALLYMESSAGE that needs it): each
GUID is mapped once.
"""

from __future__ import annotations

import os
from collections import Counter
from collections.abc import Callable, Collection, Iterator
from pathlib import Path
from typing import Any

from lxml import etree

from hub_pipelines.canonical import Entity, Page, RecordFailure
from hub_pipelines.connectors.walk import mapped
from hub_pipelines.connectors.xml import XmlError, as_dict, objects, root_tag
from hub_pipelines.tally.mapping import (
    Masters,
    customer,
    invoice,
    is_invoice,
    plain,
    voucher_type,
)

MASTER_TAGS = ("GROUP", "VOUCHERTYPE", "LEDGER", "CURRENCY", "COMPANY")
HOW_TO_EXPORT = "export from Tally as XML: Gateway > Display > Day Book > Alt+E > XML"
FIX = {
    "customers": "Correct the ledger in Tally (Alt+G > Ledger) and export the file again.",
    "invoices": "Correct the voucher in Tally (Day Book > open it) and export the file again.",
}


class ExportFileError(ValueError):
    """The file is not a Tally XML export, or is cut short; the message names the file and where
    it breaks. Either way the file is what needs fixing, not a record in Tally."""

    suggested_fix = (
        "Export the file again from Tally (Gateway > Display > Day Book > Alt+E > XML; masters "
        "through Display > List of Accounts > Alt+E), let the export finish, then drop it into the "
        "tenant's landing folder or give it to `hub import-file TENANT tally FILE`."
    )


class ExportFile:
    """One Tally export file. `customers()` and `invoices()` yield pages of records (with a
    RecordFailure, raw payload included, for each object that cannot be mapped)."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        self._masters: Masters | None = None
        self._checked = False

    @property
    def company(self) -> str | None:
        """The company the export names (SVCURRENTCOMPANY, else its COMPANY object)."""
        for element in self._objects(("SVCURRENTCOMPANY", "REMOTECMPNAME")):
            name = plain(element.text)
            if name:
                return name
        return None

    def masters(self, known: Masters | None = None) -> Masters:
        """The file's masters, added to a copy of `known` (e.g. rebuilt from the warehouse)."""
        if self._masters is None:
            self._masters = Masters()
            for element in self._objects(MASTER_TAGS):
                self._masters.add(element)
        return self._masters if known is None else known.merged(self._masters)

    @staticmethod
    def known(parties: dict[str, str]) -> Masters:
        """Masters from what the warehouse holds: its party ledgers, name -> GUID."""
        return Masters.of_parties(parties)

    def customers(self, page_size: int = 500, masters: Masters | None = None) -> Iterator[Page]:
        """The ledgers in the Sundry Debtors subtree."""
        return self._pages("customers", page_size, masters)

    def invoices(self, page_size: int = 500, masters: Masters | None = None) -> Iterator[Page]:
        """The vouchers of a Sales type that are not optional (cancelled ones are void)."""
        return self._pages("invoices", page_size, masters)

    def guids(self, entity: Entity, masters: Masters | None = None) -> set[str]:
        """The GUIDs of every customer or invoice the file holds, mappable or not: what a
        deletion diff compares against."""
        tag, keep, _ = self._entity(entity, masters)
        kept = (element for element in self._objects((tag,)) if keep(element))
        return {guid for element in kept if (guid := _guid(element))}

    def counts(self) -> dict[str, Any]:
        """What the file holds, each GUID once: vouchers by type, ledgers, debtor ledgers, the
        invoices among the vouchers, and the other masters."""
        known = self.masters()
        vouchers: Counter[str] = Counter()
        seen: set[tuple[str, str]] = set()
        ledgers = debtors = invoices = 0
        for element in self._objects(("VOUCHER", "LEDGER")):
            kind, guid = element.tag, _guid(element)
            if guid is not None and (kind, guid) in seen:
                continue
            seen.add((kind, guid or ""))
            if kind == "VOUCHER":
                vouchers[voucher_type(element) or "?"] += 1
                invoices += is_invoice(element, known)
            else:
                ledgers += 1
                debtors += _is_debtor(known)(element)
        return {
            "vouchers": dict(vouchers),
            "invoices": invoices,
            "ledgers": ledgers,
            "debtor_ledgers": debtors,
            "groups": len(known.groups),
            "voucher_types": len(known.voucher_types),
            "currencies": len(known.currencies),
        }

    def _entity(
        self, entity: Entity, masters: Masters | None
    ) -> tuple[str, Callable[[etree._Element], bool], Callable[[etree._Element], Any]]:
        """(tag, which of those objects are the entity's, their mapping)."""
        known = self.masters(masters)
        if entity == "customers":
            return "LEDGER", _is_debtor(known), lambda ledger: customer(ledger, known)
        return "VOUCHER", lambda v: is_invoice(v, known), lambda voucher: invoice(voucher, known)

    def _pages(self, entity: Entity, page_size: int, masters: Masters | None) -> Iterator[Page]:
        tag, keep, read = self._entity(entity, masters)
        seen: set[str] = set()
        page = Page([], [])
        label = "ledger" if tag == "LEDGER" else "voucher"
        for element in self._objects((tag,)):
            if not keep(element):
                continue
            guid = _guid(element)
            if guid in seen:
                continue
            if guid is not None:
                seen.add(guid)
            outcome = mapped(guid, element, read, label, FIX[entity])
            if isinstance(outcome, RecordFailure):
                outcome.raw = as_dict(element)  # the element is cleared once the next is read
                page.failures.append(outcome)
            else:
                page.records.append(outcome)
            if len(page.records) + len(page.failures) >= page_size:
                yield page
                page = Page([], [])
        if page.records or page.failures:
            yield page

    def _objects(self, tags: Collection[str]) -> Iterator[etree._Element]:
        """The elements named `tags`, the file checked to be a Tally envelope first."""
        try:
            if not self._checked:
                with self.path.open("rb") as file:
                    root = root_tag(file)
                if root != "ENVELOPE":
                    raise ExportFileError(
                        f"{self.path.name}: not a Tally export (its root element is <{root}>, "
                        f"not <ENVELOPE>): {HOW_TO_EXPORT}"
                    )
                self._checked = True
            with self.path.open("rb") as file:
                yield from objects(file, tags)
        except XmlError as exc:
            raise ExportFileError(
                f"{self.path.name}: not readable as XML ({exc}): {HOW_TO_EXPORT}"
            ) from None


def _guid(element: etree._Element) -> str | None:
    found = element.find("GUID")
    return plain(found.text) if found is not None else None


def _is_debtor(masters: Masters) -> Callable[[etree._Element], bool]:
    return lambda ledger: masters.is_debtor_group(plain(ledger.findtext("PARENT")))
