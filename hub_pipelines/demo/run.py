"""`hub demo` (what `make demo` runs): a working hub on embedded defaults, ending in a summary.

1. the embedded PostgreSQL and the migrations;
2. the demo's simulators (`demo.simulators`, a background process that stays up for the UI);
3. three tenants over the five systems (`demo.plan`), credentials encrypted in the registry;
4. every API pair's partition materialized through Dagster on the persistent `$HUB_HOME/dagster`
   instance, so `hub dev` afterwards shows the runs, their metadata and their checks;
5. the sensors at work: a Tally Day Book export dropped into the landing folder, and a payment
   in Xero announced by a signed webhook to the hub service; the landing sensor is evaluated as
   the daemon does and the runs it asks for are executed;
6. the analyst views refreshed.

Re-running it is safe: the same books in the same month, incremental imports that find nothing
new, the same export file (imported once) and the same payment (no row changes).
"""

from __future__ import annotations

import json
import logging
import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

import dagster as dg
import psycopg

from hub_pipelines import settings
from hub_pipelines.canonical import ENTITIES
from hub_pipelines.demo import simulators
from hub_pipelines.demo.plan import (
    BASE_PORT,
    DEMO_LIMITS,
    FILE_PAIR,
    PAIRS,
    WEBHOOK_PAIR,
    DemoPair,
    scaled,
)
from hub_pipelines.vault import KEY_VARIABLE, generate_key

STEPS = 6
# What a new edition of the demo's books replaces (the audit tables stay: they are history).
CLEARED_ON_NEW_BOOKS = (
    "accounting.invoice_lines",
    "accounting.invoices",
    "accounting.customers",
    "hub.sync_state",
    "hub.landed_files",
)


@dataclass
class Outcome:
    """What one run did, for the summary."""

    label: str
    result: dg.ExecuteInProcessResult
    seconds: float

    @property
    def checks(self) -> list[dg.AssetCheckEvaluation]:
        return self.result.get_asset_check_evaluations()


@dataclass
class DemoReport:
    size: str
    started: float = field(default_factory=time.monotonic)
    runs: list[Outcome] = field(default_factory=list)
    sensor_notes: list[str] = field(default_factory=list)
    views_ok: bool | None = None

    @property
    def success(self) -> bool:
        return all(o.result.success for o in self.runs) and bool(self.views_ok)


def step(number: int, text: str) -> None:
    print(f"[{number}/{STEPS}] {text}", flush=True)


def ensure_demo_key() -> None:
    """Give the local demo an encryption key, kept in $HUB_HOME/hub.env (owner-only)."""
    if os.environ.get(KEY_VARIABLE):
        return
    key = generate_key()
    path = settings.write_local_env(KEY_VARIABLE, key)
    os.environ[KEY_VARIABLE] = key
    print(
        f"      generated a development encryption key in {path} (production: set {KEY_VARIABLE})"
    )


def run_demo(size: str = "small", base_port: int = BASE_PORT) -> DemoReport:
    from hub_pipelines.demo.summary import print_summary
    from hub_pipelines.warehouse import db, migrations

    report = DemoReport(size)
    step(1, "warehouse: PostgreSQL and migrations")
    ensure_demo_key()
    url = db.database_url()
    applied = migrations.upgrade(url)
    print(f"      {len(applied)} migration(s) applied" if applied else "      schema up to date")

    step(2, f"simulators: five systems, {size} books")
    info = _simulators(size, base_port)

    step(3, f"tenants: {len(PAIRS)} (tenant, system) pairs, credentials encrypted")
    _register(info)
    _keep_books_apart(url, info)
    _remember(size, base_port, info)
    print(f"      {', '.join(dict.fromkeys(p.tenant for p in PAIRS))} (hub tenants list)")

    settings.ensure_dagster_home()
    with dg.DagsterInstance.get() as instance:
        _add_partitions(instance)
        step(4, "imports through Dagster, one run per (tenant, system) partition")
        for pair in PAIRS:
            if pair.delivery == "api":
                report.runs.append(_import(instance, pair))
        step(5, "sensors: a dropped Tally export and a Xero webhook")
        _drop_export(base_port, info, report)
        _deliver_webhook(base_port, report)
        report.runs.extend(_sensor_runs(instance, report))
        step(6, "analyst views (accounting.customer_360, gst_sales_summary, ...)")
        report.views_ok = _refresh_views(instance)
    print_summary(url, report, base_port)
    return report


def _simulators(size: str, base_port: int) -> dict:
    log = settings.hub_home() / "demo" / "simulators.log"
    already = simulators.running(base_port)
    if already is None or already["size"] != size:
        invoices = sum(scaled(pair, size)[1] for pair in PAIRS)
        print(f"      generating {invoices:,} invoices and starting the simulators (log: {log})")
    info, started = simulators.ensure(size, base_port, log)
    if not started:
        print(f"      already running (pid {info['pid']}): reusing them and their tokens")
    for pair in PAIRS:
        customers, invoices = scaled(pair, size)
        where = (
            f"127.0.0.1:{info['pairs'][pair.key]['port']}"
            if pair.delivery == "api"
            else "export files"
        )
        print(
            f"      {pair.system:10} for {pair.tenant:13} {where:16} "
            f"{customers:>6,} customers {invoices:>7,} invoices"
        )
    return info


def connection_config(pair: DemoPair, info: dict) -> dict:
    """The tenant config reaching the pair's simulator as it serves now (current tokens)."""
    if pair.delivery == "file":
        return {"file_drop": True}
    config = dict(info["pairs"][pair.key]["config"])
    if pair.system == "zoho_books":  # Zoho's config carries the pace; the demo raises it
        config["requests_per_minute"] = DEMO_LIMITS["requests_per_minute"]
    if pair == WEBHOOK_PAIR:
        config["webhook_key"] = info["webhook_key"]
    return config


def _register(info: dict) -> None:
    from hub_pipelines.tenants.registry import TenantRegistry
    from hub_pipelines.vault import Vault

    registry = TenantRegistry(Vault.from_env())
    for pair in PAIRS:
        registry.add(pair.tenant, pair.system, {"connection_config": connection_config(pair, info)})


def _state_file() -> Path:
    return settings.hub_home() / "demo" / "state.json"


def _remember(size: str, base_port: int, info: dict) -> None:
    """What `hub dev` needs to serve the demo's sources again (its size and ports), and which
    books the warehouse now holds."""
    _state_file().parent.mkdir(parents=True, exist_ok=True)
    state = {"size": size, "base_port": base_port, "books": _books(info)}
    _state_file().write_text(json.dumps(state) + "\n")


def _state() -> dict:
    try:
        return json.loads(_state_file().read_text())
    except FileNotFoundError:
        return {}


def _books(info: dict) -> dict:
    """Which books the simulators serve: a size and the month they end in."""
    return {"size": info["size"], "as_of": info["as_of"]}


def _changes(state: dict, serving: dict) -> list[str]:
    """How the books served differ from those the warehouse holds (a state file written before
    the books were remembered names only its size)."""
    if not state:
        return []
    held = state.get("books") or {"size": state["size"], "as_of": None}
    changes = []
    if held["size"] != serving["size"]:
        changes.append(f"{held['size']} to {serving['size']}")
    if held["as_of"] not in (None, serving["as_of"]):
        changes.append(f"ending {held['as_of'][:10]} to {serving['as_of'][:10]}")
    return changes


def _keep_books_apart(url: str, info: dict) -> None:
    """The warehouse holds one edition of the demo's books. When the simulators serve another
    (`--size` changed, or a new month's), the demo tenants' rows from the old one are cleared
    first: the two businesses share ids, so an incremental import would mix them (and checks
    such as `matches_source` would rightly fail)."""
    changes = _changes(_state(), _books(info))
    if not changes:
        return
    print(
        f"      the books changed ({'; '.join(changes)}): clearing the demo tenants' imported "
        "rows, cursors and landed files first"
    )
    demo = "(tenant_id, system) IN (SELECT * FROM unnest(%s::text[], %s::text[]))"
    pairs = ([pair.tenant for pair in PAIRS], [pair.system for pair in PAIRS])
    with psycopg.connect(url) as conn:
        for table in CLEARED_ON_NEW_BOOKS:
            conn.execute(f"DELETE FROM {table} WHERE {demo}", pairs)
        conn.execute(
            "UPDATE hub.accounting_sync_errors SET resolved = true, resolved_at = now(), "
            f"resolution_note = 'the demo changed its books' WHERE {demo} AND NOT resolved",
            pairs,
        )


def serve_demo_sources() -> str | None:
    """For `hub dev`: the demo's simulators serving (started again after a reboot, with the
    tenants re-registered: restarted simulators issue new tokens), so runs from the UI reach
    them. None when the demo never ran in this $HUB_HOME; else what serves where."""
    state = _state()
    if not state:
        return None
    size, base_port = state["size"], state["base_port"]
    info, started = simulators.ensure(size, base_port, _state_file().with_name("simulators.log"))
    if started:
        _register(info)
        from hub_pipelines.warehouse import db

        _keep_books_apart(db.database_url(), info)  # a new month's books, after a reboot
        _remember(size, base_port, info)
    last = base_port + len(PAIRS)
    return f"the demo's simulators ({size} books) on 127.0.0.1:{base_port}-{last}"


def _add_partitions(instance: dg.DagsterInstance) -> None:
    """Every pair's partition, as the tenant sensor adds them (the UI shows them at once)."""
    from hub_pipelines.partitions import tenant_partitions

    for pair in PAIRS:
        name = tenant_partitions(pair.system).name
        if not instance.has_dynamic_partition(name, pair.tenant):
            instance.add_dynamic_partitions(name, [pair.tenant])


def _import(instance: dg.DagsterInstance, pair: DemoPair) -> Outcome:
    from hub_pipelines.imports.local import import_partition

    label = f"{pair.system}/{pair.tenant}"
    print(f"      {label:26} ", end="", flush=True)  # the counts follow when the run ends
    began = time.monotonic()
    result = import_partition(
        instance, pair.tenant, pair.system, list(ENTITIES), tags={"hub/trigger": "demo"}
    )
    outcome = Outcome(label, result, time.monotonic() - began)
    print(f"{_counts(result)} ({outcome.seconds:.1f} s)", flush=True)
    return outcome


def _counts(result: dg.ExecuteInProcessResult) -> str:
    if not result.success:
        return "FAILED (see the summary)"
    fetched = inserted = updated = 0
    for event in result.get_asset_materialization_events():
        meta = {k: v.value for k, v in event.materialization.metadata.items()}
        fetched += meta["records_fetched"]
        inserted += meta["records_inserted"]
        updated += meta["records_updated"]
    return f"fetched {fetched:>6,}, inserted {inserted:>6,}, updated {updated:>4,}"


def _drop_export(base_port: int, info: dict, report: DemoReport) -> None:
    """The office's Day Book export, written into the tenant's landing folder by rename (a file
    that appears complete, as a careful sync tool writes it)."""
    from hub_pipelines.landing.folder import tenant_folder

    folder = tenant_folder(settings.landing_dir(), FILE_PAIR.system, FILE_PAIR.tenant)
    folder.mkdir(parents=True, exist_ok=True)
    target = folder / f"DayBook-{datetime.fromisoformat(info['as_of']):%Y-%m}.xml"
    partial = target.with_name(target.name + ".part")
    partial.write_bytes(simulators.export_file(base_port))
    partial.replace(target)
    note = f"dropped {target.name} ({target.stat().st_size:,} bytes) into {folder}"
    report.sensor_notes.append(note)
    print(f"      {note}")


def _deliver_webhook(base_port: int, report: DemoReport) -> None:
    """A payment in the webhook pair's Xero organisation; Xero's signed notice of it goes to the
    hub service (`hub serve`'s app, here on a loopback port for the delivery), which verifies the
    signature and lands the notice as a file for the sensor."""
    from hub_pipelines.connectors.loopback import LoopbackServer
    from hub_pipelines.service.app import build_app

    path = f"/webhooks/{WEBHOOK_PAIR.system}/{WEBHOOK_PAIR.tenant}"
    with LoopbackServer(build_app()) as service:
        status = simulators.send_webhook(base_port, service.url + path)
    note = f"Xero delivered a signed payment notice to POST {path}: {status}"
    report.sensor_notes.append(note)
    print(f"      {note}")


@contextmanager
def _files_settle_at_once() -> Iterator[None]:
    """The demo's files are complete when they appear (written by rename), so the sensor need not
    wait the settle time meant for files copied in place."""
    kept = os.environ.get("HUB_LANDING_SETTLE_SECONDS")
    os.environ["HUB_LANDING_SETTLE_SECONDS"] = "0"
    try:
        yield
    finally:
        if kept is None:
            os.environ.pop("HUB_LANDING_SETTLE_SECONDS")
        else:
            os.environ["HUB_LANDING_SETTLE_SECONDS"] = kept


def _tick(instance: dg.DagsterInstance) -> list[dg.RunRequest]:
    """One evaluation of the landing sensor, as the daemon makes it."""
    from hub_pipelines.definitions import defs
    from hub_pipelines.landing.sensors import landing_sensor
    from hub_pipelines.resources import WarehouseResource

    context = dg.build_sensor_context(
        instance=instance, resources={"warehouse": WarehouseResource()}, definitions=defs
    )
    logging.disable(logging.INFO)  # the sensor logs each file it moves; the demo says less
    try:
        with (
            _files_settle_at_once(),
            dg.partition_loading_context(dynamic_partitions_store=instance),
        ):
            return list(landing_sensor.evaluate_tick(context).run_requests or [])
    finally:
        logging.disable(logging.NOTSET)


def _sensor_runs(instance: dg.DagsterInstance, report: DemoReport) -> list[Outcome]:
    """The runs the landing sensor asks for, executed as the daemon would launch them; then a
    second tick, which files the handled files into `processed/`."""
    from hub_pipelines.definitions import defs
    from hub_pipelines.imports.assets import import_job_name
    from hub_pipelines.imports.local import QUIET_LOGS
    from hub_pipelines.systems import AVAILABLE

    outcomes = []
    requests = _tick(instance)
    if not any(request.job_name == import_job_name(FILE_PAIR.system) for request in requests):
        print(
            "      landing sensor: the export holds the content of a file imported before: "
            "filed into processed/ without a run"
        )
    for request in requests:
        began = time.monotonic()
        tags = {**request.tags, "dagster/sensor_name": "landing_sensor"}
        if request.run_key:
            tags["dagster/run_key"] = request.run_key
        result = defs.resolve_job_def(request.job_name).execute_in_process(
            instance=instance,
            partition_key=request.partition_key,
            asset_selection=request.asset_selection,
            run_config={**QUIET_LOGS, **(request.run_config or {})},
            tags=tags,
            raise_on_error=False,
        )
        system = next(s for s in AVAILABLE if import_job_name(s) == request.job_name)
        trigger = request.tags.get("hub/trigger", "landing sensor")
        label = f"{system}/{request.partition_key} ({trigger})"
        outcome = Outcome(label, result, time.monotonic() - began)
        outcomes.append(outcome)
        print(f"      landing sensor -> {label}: {_counts(result)} ({outcome.seconds:.1f} s)")
    _tick(instance)  # files the handled files and notices away
    filed = list(settings.landing_dir().glob("*/*/processed/*"))
    print(f"      landing sensor, next tick: handled files filed away ({len(filed)} in processed/)")
    return outcomes


def _refresh_views(instance: dg.DagsterInstance) -> bool:
    from hub_pipelines.imports.local import refresh_views

    result = refresh_views(instance, {"hub/trigger": "demo"})
    print(f"      {'refreshed' if result.success else 'FAILED'}")
    return result.success
