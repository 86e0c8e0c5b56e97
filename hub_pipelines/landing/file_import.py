"""An import from a file instead of a live source: the `Connector` a run uses when its config
names a landed file (`ImportConfig.landed_file`), for the systems whose export files the hub reads.

A file is a slice of the company (a Day Book of some months, the masters), never the whole of it:
its listing is never complete, so nothing is deleted because a file lacks it, and the live
cursor is left as it was. Records load exactly as a live import's do (same mapping, same tables,
record errors with their raw payload), keyed by the source's own ids, so a file and a live
connection of the same company agree.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from hub_pipelines.canonical import ConnectionTest, Entity, ListedRecord, Listing, Page
from hub_pipelines.connectors.errors import Category, SyncError

# The systems whose own export files can be dropped, and the reader of each (imported when used).
FILE_READERS: dict[str, str] = {"tally": "hub_pipelines.tally.export_file:ExportFile"}
PAGE_SIZE = 500


def reads_files(system: str) -> bool:
    return system in FILE_READERS


def file_reader(system: str) -> Callable[[Path], Any]:
    module, name = FILE_READERS[system].split(":")
    return getattr(importlib.import_module(module), name)


class LandedFileConnector:
    api_calls = 0
    retries = 0
    quota_remaining = None

    def __init__(
        self,
        system: str,
        path: Path,
        connection: Any,
        known_parties: Callable[[], dict[str, str]] = dict,
        page_size: int = PAGE_SIZE,
    ):
        if not path.is_file():
            raise SyncError(
                Category.CONFIG,
                f"the file {path} is not there",
                suggested_fix="Drop the file again; the landing sensor imports what it finds.",
            )
        try:
            self.file = file_reader(system)(path)
            company = getattr(self.file, "company", None)  # reads the file up to its name
        except ValueError as exc:  # not XML, not a Tally envelope: the reader says which
            raise _unreadable(exc) from None
        self.path, self.page_size, self.known_parties = path, page_size, known_parties
        _check_company(path, company, connection)

    def customers(self, cursor: str | None) -> Iterator[Page]:
        return self._pages(self.file.customers)

    def invoices(self, cursor: str | None) -> Iterator[Page]:
        """Invoices name their party; the parties the warehouse already holds (from a masters
        file dropped earlier, or the live connection) link those the file's masters lack."""
        return self._pages(self.file.invoices, self.file.known(self.known_parties()))

    def _pages(self, read: Callable[..., Iterator[Page]], masters: Any = None) -> Iterator[Page]:
        try:
            yield from read(page_size=self.page_size, masters=masters)
        except ValueError as exc:  # broken XML part-way: what loaded stays, the run fails
            raise _unreadable(exc) from None

    def listed(self, entity: Entity) -> Listing:
        return Listing()  # never complete: a file is a slice of the company

    def listing(self, entity: Entity) -> Iterator[ListedRecord]:
        return iter(())

    def all_ids(self, entity: Entity) -> Iterator[str]:
        return iter(())

    def count(self, entity: Entity, near: int = 0) -> None:
        return None  # a file is a slice of the company: nothing to compare the warehouse with

    def test_connection(self) -> ConnectionTest:
        return ConnectionTest(True, 0, organisation=getattr(self.file, "company", None))

    def close(self) -> None:
        pass


def _unreadable(exc: ValueError) -> SyncError:
    """A file the reader cannot read (cut short, not an export) is fixed by exporting it again,
    which its reader's error names; the message names the file and where it breaks."""
    fix = getattr(exc, "suggested_fix", None)
    return SyncError(Category.SOURCE_DATA, str(exc), suggested_fix=fix)


def _check_company(path: Path, company: str | None, connection: Any) -> None:
    """A file of another company dropped into this tenant's folder must not load into it."""
    expected = getattr(connection, "company_name", None)
    if expected and company and company.strip().casefold() != expected.strip().casefold():
        raise SyncError(
            Category.CONFIG,
            f"{path.name} is an export of the company {company!r}, but this tenant's company is "
            f"{expected!r}",
            suggested_fix="Drop the file into the folder of the tenant that keeps that company "
            "(landing/tally/<tenant>/), or correct company_name with `hub tenants add`.",
        )
