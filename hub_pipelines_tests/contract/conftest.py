"""One registered tenant per system, its books served by the system's simulator over loopback
HTTP, imported through Dagster into the real warehouse. Every system in `systems.AVAILABLE` gets
the contract suite by being registered there."""

from __future__ import annotations

import importlib
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal

import dagster as dg
import psycopg
import pytest

from hub_pipelines.connectors.loopback import LoopbackServer
from hub_pipelines.imports.assets import import_asset, op_name
from hub_pipelines.resources import VaultResource, WarehouseResource
from hub_pipelines.simulation import books as generated
from hub_pipelines.simulation.simulated import Simulated
from hub_pipelines.systems import AVAILABLE
from hub_pipelines.tenants.registry import TenantRegistry
from hub_pipelines.vault import Vault

TENANT = "contract"
AS_OF = datetime(2026, 10, 1, 12, 0, tzinfo=UTC)
FAST = 100_000  # requests per minute on both sides, for tests that are not about limits


@dataclass
class Tenant:
    system: str
    simulated: Simulated
    server: LoopbackServer
    instance: dg.DagsterInstance
    registry: TenantRegistry
    warehouse_url: str
    resources: dict

    @property
    def books(self) -> generated.Books:
        return self.simulated.books

    def live_sales(self) -> list[generated.Sale]:
        """The books' sales this system can hold (drafts only where it has them)."""
        return self.books.live_sales(drafts=self.simulated.holds_drafts)

    def register(self, sync_config: dict | None = None, **overrides) -> None:
        config = {**self.simulated.connection_config(self.server.url), **overrides}
        document = {"connection_config": config, "sync_config": sync_config or {}}
        self.registry.add(TENANT, self.system, document)

    def materialize(self, *entities: str, full_refresh: bool = False) -> dg.ExecuteInProcessResult:
        selected = [import_asset(self.system, e) for e in entities or ("customers", "invoices")]
        run_config = {
            "ops": {
                op_name(self.system, a.key.path[-1]): {"config": {"full_refresh": full_refresh}}
                for a in selected
            }
        }
        return dg.materialize(
            selected,
            partition_key=TENANT,
            instance=self.instance,
            resources=self.resources,
            run_config=run_config,
            raise_on_error=False,
        )

    def query(self, sql: str, params: tuple = ()) -> list[tuple]:
        with psycopg.connect(self.warehouse_url) as conn:
            return conn.execute(sql, params).fetchall()

    def stored_refresh_token(self) -> str:
        config = self.registry.get(TENANT, self.system)
        return config.connection.refresh_token.get_secret_value()

    def requests(self) -> int:
        return len(self.simulated.request_log)


def simulate(system: str, books: generated.Books, **limits) -> Simulated:
    module = importlib.import_module(AVAILABLE[system].simulator_module)
    return module.simulate(books, **limits)


def small_books(seed: int = 11) -> generated.Books:
    return generated.generate(seed=seed, parties=12, sales=40, as_of=AS_OF)


@pytest.fixture(params=sorted(AVAILABLE))
def system(request) -> str:
    return request.param


@pytest.fixture
def tenant_of(warehouse, encryption_key, monkeypatch):
    """`tenant_of(system, books, **limits)`: a registered tenant whose source serves `books`
    (or `simulated=`, e.g. a replay of captured payloads)."""
    monkeypatch.setenv("RETRY_INITIAL_DELAY", "5")
    monkeypatch.setenv("RETRY_MAX_DELAY", "50")
    opened: list = []

    def make(
        system: str,
        books: generated.Books | None = None,
        register: bool = True,
        simulated: Simulated | None = None,
        **limits,
    ) -> Tenant:
        simulated = simulated or simulate(system, books, **limits)
        server = LoopbackServer(simulated.app).start()
        instance = dg.instance_for_test()
        opened.extend([server, instance])
        dg_instance = instance.__enter__()
        dg_instance.add_dynamic_partitions(f"{system}_tenants", [TENANT])
        tenant = Tenant(
            system,
            simulated,
            server,
            dg_instance,
            TenantRegistry(Vault.from_env()),
            warehouse,
            {
                "warehouse": WarehouseResource(database_url=warehouse),
                "vault": VaultResource(encryption_key=encryption_key),
                system: AVAILABLE[system].resource(),
            },
        )
        if register:
            tenant.register()
        return tenant

    yield make
    for thing in reversed(opened):
        if isinstance(thing, LoopbackServer):
            thing.stop()
        else:
            thing.__exit__(None, None, None)


@pytest.fixture
def tenant(system, tenant_of) -> Iterator[Tenant]:
    yield tenant_of(system, small_books())


# --- the oracle --------------------------------------------------------------------------------


def warehouse_matches_books(tenant: Tenant, except_numbers: frozenset[str] = frozenset()) -> None:
    """The live invoices are exactly the books' sales (by number, since ids differ by system),
    with the same status, amounts, GST heads and line count; voids match on status (QuickBooks
    zeroes a voided invoice's amounts, Zoho and Xero keep them), and a draft's balance is not
    compared (Zoho and Xero report its total as due). Customers match by name.
    `except_numbers`: sales the warehouse is known not to hold (a record error)."""
    truth = tenant.simulated.truth_invoices()
    truth = {number: sale for number, sale in truth.items() if number not in except_numbers}
    rows = tenant.query(
        "SELECT invoice_number, status, taxable_amount, cgst, sgst, igst, total, balance_due, "
        "currency, (SELECT count(*) FROM accounting.invoice_lines l WHERE l.tenant_id = "
        "i.tenant_id AND l.system = i.system AND l.invoice_external_id = i.external_id) "
        "FROM accounting.invoices i WHERE tenant_id = %s AND system = %s AND deleted_at IS NULL",
        (TENANT, tenant.system),
    )
    held = {row[0]: row[1:] for row in rows}
    assert len(rows) == len(held), "an invoice number is held twice"
    assert set(held) == set(truth)
    for number, want in truth.items():
        status, taxable, cgst, sgst, igst, total, balance, currency, lines = held[number]
        assert status == want.status, number
        if status == "void":
            continue
        got = (taxable, cgst, sgst, igst, total, currency, lines)
        expected = (
            want.taxable,
            want.cgst,
            want.sgst,
            want.igst,
            want.total,
            want.currency,
            want.line_count,
        )
        assert got == expected, number
        if status != "draft":  # a draft owes nothing; systems report its balance differently
            assert balance == want.balance, number
    customers = tenant.query(
        "SELECT name, gstin, is_active FROM accounting.customers "
        "WHERE tenant_id = %s AND system = %s AND deleted_at IS NULL",
        (TENANT, tenant.system),
    )
    parties = tenant.simulated.truth_customers()
    assert {name for name, *_ in customers} == set(parties)
    for name, gstin, active in customers:
        assert (gstin, active) == (parties[name].gstin, parties[name].active), name


def metadata(result: dg.ExecuteInProcessResult, entity: str) -> dict:
    for event in result.get_asset_materialization_events():
        if event.asset_key.path[-1] == entity:
            return {k: v.value for k, v in event.materialization.metadata.items()}
    raise AssertionError(f"{entity} was not materialized")


def lines_outside_their_invoices(tenant) -> list[tuple[str, int]]:
    """(invoice, line number) of every line whose raw payload is not a part of its invoice's:
    the loader's fingerprint covers the lines' raw payloads only through the invoice's."""
    rows = tenant.query(
        "SELECT i.external_id, l.line_number, i.raw, l.raw FROM accounting.invoices i "
        "JOIN accounting.invoice_lines l ON (l.tenant_id, l.system, l.invoice_external_id) = "
        "(i.tenant_id, i.system, i.external_id) WHERE i.tenant_id = %s AND i.system = %s",
        (TENANT, tenant.system),
    )
    assert rows, "no lines to compare"
    return [(invoice, number) for invoice, number, raw, line in rows if not _holds(raw, line)]


def _holds(tree, part) -> bool:
    if tree == part:
        return True
    children = tree.values() if isinstance(tree, dict) else tree if isinstance(tree, list) else ()
    return any(_holds(child, part) for child in children)


def failed_checks(result: dg.ExecuteInProcessResult) -> list[tuple[str, str]]:
    return [
        (f"{e.asset_key.path[-1]}.{e.check_name}", e.description or "")
        for e in result.get_asset_check_evaluations()
        if not e.passed and e.severity == dg.AssetCheckSeverity.ERROR
    ]


ZERO = Decimal("0.00")
