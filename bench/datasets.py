"""The load stage's input: N Zoho Books invoices mapped to canonical pages of 200, written once
per size to a cache file and read back a page at a time by every contender.

The invoices are the Zoho rendering of `bench.companies.company(N)`: each is the simulator's
detail JSON (`GET /invoices/{id}`), mapped by the hub's `map_invoice` with an empty tax master
(GST heads then come from the tax names, as the connector falls back to), raw JSON kept on the
invoice and on each line. The file is a stream of pickled `Page`s: reading it holds one page, so
the contenders' memory is bounded by a page, and the time to generate and map the invoices is
outside every measurement (the mapping and the simulator are imported only to write a file, not
by the contenders reading it). The file's name carries a fingerprint of the canonical model and the
mapping code, so a change to either writes a new one.
"""

from __future__ import annotations

import hashlib
import inspect
import pickle
from collections.abc import Iterator
from pathlib import Path

from bench.companies import SEED, company
from hub_pipelines.canonical import Page
from hub_pipelines.settings import hub_home

PAGE = 200
SYSTEM = "zoho_books"


def cache_dir() -> Path:
    return hub_home() / "bench"


def fingerprint() -> str:
    """Changes when the canonical model or the Zoho mapping changes."""
    from hub_pipelines import canonical
    from hub_pipelines.zoho_books import connector as zoho
    from hub_pipelines.zoho_books import rendering

    sources = inspect.getsource(canonical) + inspect.getsource(zoho) + inspect.getsource(rendering)
    return hashlib.sha256(sources.encode()).hexdigest()[:12]


def cache_path(invoices: int) -> Path:
    return cache_dir() / f"zoho_pages_{invoices}_seed{SEED}_{fingerprint()}.pickle"


def _mapped_pages(invoices: int) -> Iterator[Page]:
    from hub_pipelines.zoho_books import connector as zoho
    from hub_pipelines.zoho_books import rendering

    simulated = rendering.simulate(company(invoices))
    simulator, org_id = simulated.simulator, simulated.connection_config("")["organization_id"]
    records = []
    for invoice_id in simulator.invoice_ids(org_id):
        records.append(zoho.map_invoice(simulator.get_invoice(org_id, invoice_id), {}))
        if len(records) == PAGE:
            yield Page(records)
            records = []
    if records:
        yield Page(records)


def ensure_pages(invoices: int) -> Path:
    """The cache file for `invoices`, written first if missing (atomically: a half-written file
    never passes for a cache), replacing the file of an earlier fingerprint."""
    path = cache_path(invoices)
    if path.exists():
        return path
    path.parent.mkdir(parents=True, exist_ok=True)
    for stale in path.parent.glob(f"zoho_pages_{invoices}_*.pickle"):
        stale.unlink()  # written before the model or the mapping changed
    partial = path.with_suffix(".partial")
    with partial.open("wb") as out:
        for page in _mapped_pages(invoices):
            pickle.dump(page, out, protocol=pickle.HIGHEST_PROTOCOL)
    partial.replace(path)
    return path


def read_pages(path: Path) -> Iterator[Page]:
    """The pages of a cache file, one at a time."""
    with path.open("rb") as source:
        while True:
            try:
                yield pickle.load(source)  # noqa: S301 - our own cache file
            except EOFError:
                return


def counts(path: Path) -> dict[str, int]:
    """Invoices and lines in a cache file."""
    invoices = lines = 0
    for page in read_pages(path):
        invoices += len(page.records)
        lines += sum(len(invoice.lines) for invoice in page.records)
    return {"invoices": invoices, "lines": lines}
