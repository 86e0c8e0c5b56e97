"""The landing folder and its sensor: complete files only, each imported once through a run of its
tenant's partition, then moved to processed/ or failed/ with the outcome on record; the CLI's
file-drop registration and `hub import-file`. Real Tally exports are in test_tally_files.py."""

from __future__ import annotations

import os
import shutil
import time
from pathlib import Path

import dagster as dg
import psycopg
import pytest

from hub_pipelines import cli
from hub_pipelines.definitions import defs
from hub_pipelines.imports.assets import import_asset
from hub_pipelines.landing.folder import landed_files, move
from hub_pipelines.landing.sensors import landing_sensor
from hub_pipelines.resources import VaultResource, WarehouseResource
from hub_pipelines.systems import AVAILABLE
from hub_pipelines.tally.export_file import ExportFileError
from hub_pipelines.tenants.registry import TenantRegistry
from hub_pipelines.vault import Vault
from hub_pipelines_tests.conftest import assert_failed_naming_the_upgrade, one_migration_behind

TENANT = "dropco"
SAMPLE = Path(__file__).with_name("sample_daybook.xml")


def _land(root: Path, name: str, content: bytes, system: str = "tally", tenant: str = TENANT):
    folder = root / system / tenant
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    path.write_bytes(content)
    old = time.time() - 60
    os.utime(path, (old, old))
    return path


def test_only_complete_files_of_known_systems_and_tenants_count(tmp_path):
    ready = _land(tmp_path, "daybook.xml", b"<ENVELOPE/>")
    for name in (".daybook.xml", "daybook.xml.tmp", "export.part"):
        _land(tmp_path, name, b"half")  # still being written: renamed into place when done
    _land(tmp_path, "x.xml", b"x", system="sage")  # not a system of ours: left alone
    _land(tmp_path, "x.xml", b"x", tenant="Bad Name")
    fresh = tmp_path / "tally" / TENANT / "copying.xml"
    fresh.write_bytes(b"<ENVELOPE>")  # a copy in progress: not left alone long enough yet

    found = list(landed_files(tmp_path, settle_seconds=10))

    assert [(f.system, f.tenant, f.path) for f in found] == [("tally", TENANT, ready)]
    assert [f.path for f in landed_files(tmp_path, settle_seconds=0)] == [ready, fresh]


def test_a_handled_file_never_overwrites_another(tmp_path):
    first = _land(tmp_path, "daybook.xml", b"one")
    (moved,) = [move(f, "processed") for f in landed_files(tmp_path)]
    _land(tmp_path, "daybook.xml", b"two")
    (again,) = [move(f, "processed") for f in landed_files(tmp_path)]

    assert moved == first.parent / "processed" / "daybook.xml"
    assert again != moved and again.read_bytes() == b"two" and moved.read_bytes() == b"one"


@pytest.fixture
def landing(tmp_path, monkeypatch, warehouse, encryption_key):
    root = tmp_path / "landing"
    monkeypatch.setenv("HUB_LANDING_DIR", str(root))
    monkeypatch.setenv("HUB_LANDING_SETTLE_SECONDS", "0")
    with dg.instance_for_test() as instance:
        instance.add_dynamic_partitions("tally_tenants", [TENANT])
        yield Landing(root, instance, warehouse, encryption_key)


class Landing:
    def __init__(self, root: Path, instance, warehouse: str, key: str):
        self.root, self.instance, self.warehouse = root, instance, warehouse
        self.resources = {
            "warehouse": WarehouseResource(database_url=warehouse),
            "vault": VaultResource(encryption_key=key),
            "tally": AVAILABLE["tally"].resource() if "tally" in AVAILABLE else None,
        }

    def register(self, company: str | None = None) -> None:
        connection = {"file_drop": True, **({"company_name": company} if company else {})}
        TenantRegistry(Vault.from_env()).add(
            TENANT, "tally", {"connection_config": connection, "sync_config": {}}
        )

    def tick(self) -> list[dg.RunRequest]:
        context = dg.build_sensor_context(
            instance=self.instance,
            resources={"warehouse": self.resources["warehouse"]},
            definitions=defs,
        )
        with dg.partition_loading_context(dynamic_partitions_store=self.instance):
            return list(landing_sensor.evaluate_tick(context).run_requests or [])

    def run(self, request: dg.RunRequest) -> dg.ExecuteInProcessResult:
        """What the daemon does with a run request: the tenant's tally import with its config."""
        return dg.materialize(
            [import_asset("tally", e) for e in ("customers", "invoices")],
            partition_key=request.partition_key,
            instance=self.instance,
            resources=self.resources,
            run_config=request.run_config,
            tags=request.tags,
            raise_on_error=False,
        )

    def files(self, where: str = "") -> list[str]:
        folder = self.root / "tally" / TENANT / where
        return sorted(p.name for p in folder.iterdir() if p.is_file()) if folder.is_dir() else []

    def query(self, sql: str, params: tuple = ()) -> list[tuple]:
        with psycopg.connect(self.warehouse) as conn:
            return conn.execute(sql, params).fetchall()


def test_a_landed_file_is_imported_once_then_moved_to_processed(landing):
    landing.register()
    _land(landing.root, "daybook.xml", SAMPLE.read_bytes())

    (request,) = landing.tick()
    (again,) = landing.tick()  # not launched yet: asked under the same key (launched once)
    assert again.run_key == request.run_key
    assert landing.run(request).success
    assert landing.tick() == []

    assert landing.files() == [] and landing.files("processed") == ["daybook.xml"]
    assert landing.query("SELECT status, file_name FROM hub.landed_files") == [
        ("processed", "daybook.xml")
    ]
    imported = landing.query(
        "SELECT count(*) FROM accounting.invoices WHERE tenant_id = %s", (TENANT,)
    )
    assert imported[0][0] > 0

    # The same content dropped again, under any name, is not imported twice.
    _land(landing.root, "daybook-copy.xml", SAMPLE.read_bytes())
    assert landing.tick() == []
    assert landing.files("processed") == ["daybook-copy.xml", "daybook.xml"]
    assert len(landing.query("SELECT id FROM hub.landed_files")) == 1


def test_a_file_that_fails_to_import_moves_to_failed_with_its_error(landing):
    landing.register(company="Another Company")  # the sample is another company's export
    _land(landing.root, "daybook.xml", SAMPLE.read_bytes())

    (request,) = landing.tick()
    result = landing.run(request)
    landing.tick()

    assert not result.success
    assert landing.files("failed") == ["daybook.xml"]
    ((status, error),) = landing.query("SELECT status, error_message FROM hub.landed_files")
    assert status == "failed" and result.run_id in error
    failure = next(e for e in result.all_events if e.is_step_failure)
    assert "Another Company" in failure.step_failure_data.user_failure_data.description


def test_a_file_for_an_unknown_tenant_or_system_fails_with_the_fix(landing):
    _land(landing.root, "daybook.xml", SAMPLE.read_bytes())  # no tenant registered
    _land(landing.root, "notice.json", b"{}", system="busy")

    assert landing.tick() == []

    assert landing.files("failed") == ["daybook.xml"]
    errors = dict(
        landing.query(
            "SELECT system, error_message FROM hub.accounting_sync_errors WHERE scope = 'file'"
        )
    )
    assert f"hub tenants add {TENANT} tally --file-drop" in errors["tally"]
    assert "does not import busy files" in errors["busy"]


def test_file_drop_registration_and_import_file_from_the_command_line(
    landing, tmp_path, monkeypatch, capsys
):
    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path / "dagster"))
    assert cli.main(["tenants", "add", TENANT, "tally", "--file-drop"]) == 0
    out = capsys.readouterr().out
    assert (
        str(landing.root / "tally" / TENANT) in out and (landing.root / "tally" / TENANT).is_dir()
    )

    exported = tmp_path / "exported.xml"
    shutil.copyfile(SAMPLE, exported)
    assert cli.main(["import-file", TENANT, "tally", str(exported)]) == 0

    out = capsys.readouterr().out
    assert "succeeded" in out and "tally/invoices" in out
    assert exported.exists()  # the command leaves the file where it was
    assert cli.main(["sync", TENANT, "tally"]) == 2  # nothing to sync from: say where files go
    err = capsys.readouterr().err
    assert "no live connection" in err and "hub import-file" in err
    assert str(landing.root / "tally" / TENANT) in err
    assert cli.main(["tenants", "add", TENANT, "busy", "--file-drop"]) == 2
    assert "--file-drop registers a Tally tenant" in capsys.readouterr().err


def test_a_file_drop_partition_run_without_a_file_stands_as_its_files_left_it(landing):
    """Materialize in the UI, or a backfill of every Tally partition, reaches a file-drop tenant
    with no file: its run succeeds and materializes the partition as it stands (so the backfill
    completes), with its checks passed, writing no row and no sync log, and says where files go."""
    landing.register()
    _land(landing.root, "daybook.xml", SAMPLE.read_bytes())
    (request,) = landing.tick()
    assert landing.run(request).success
    before = landing.query("SELECT count(*), max(synced_at) FROM accounting.invoices")
    logs = landing.query("SELECT count(*) FROM hub.accounting_sync_logs")

    backfill = dg.RunRequest(partition_key=TENANT, tags={"dagster/backfill": "b1"})
    result = landing.run(backfill)

    assert result.success
    materialized = {e.asset_key.to_user_string() for e in result.get_asset_materialization_events()}
    assert materialized == {"tally/customers", "tally/invoices"}
    evaluations = result.get_asset_check_evaluations()
    assert evaluations and all(e.passed for e in evaluations)
    matches = [e for e in evaluations if e.check_name == "matches_source"]
    assert len(matches) == 2 and all(e.description.startswith("not applicable") for e in matches)
    said = [entry.user_message for entry in landing.instance.all_logs(result.run_id)]
    folder = str(landing.root / "tally" / TENANT)
    assert any("fed by dropped export files only" in m and folder in m for m in said)
    assert landing.query("SELECT count(*), max(synced_at) FROM accounting.invoices") == before
    assert landing.query("SELECT count(*) FROM hub.accounting_sync_logs") == logs
    assert landing.query(
        "SELECT count(*) FROM hub.accounting_sync_errors WHERE tenant_id = %s AND NOT resolved",
        (TENANT,),
    ) == [(0,)]


def test_a_file_drop_partition_run_on_a_warehouse_behind_the_code_names_the_fix(landing):
    """As every import does, a file-drop partition's run checks the schema first: its checks
    would otherwise fail on a missing column, as an unexpected error."""
    landing.register()
    with one_migration_behind(landing.warehouse) as newest:
        result = landing.run(dg.RunRequest(partition_key=TENANT))
    assert_failed_naming_the_upgrade(result, newest)


def test_a_file_drop_partitions_checks_run_alone_without_a_connection(landing):
    """The checks of a file-drop partition run on their own (the UI's Execute): matches_source
    has nothing to list, so it is not applicable rather than a failure."""
    landing.register()
    _land(landing.root, "daybook.xml", SAMPLE.read_bytes())
    (request,) = landing.tick()
    assert landing.run(request).success
    invoices = import_asset("tally", "invoices")
    checks = dg.AssetSelection.checks_for_assets(invoices)
    job_defs = dg.Definitions(
        assets=[import_asset("tally", "customers"), invoices],
        jobs=[dg.define_asset_job("checks_only", selection=checks)],  # what the UI's Execute runs
        resources=landing.resources,
    )
    result = job_defs.resolve_job_def("checks_only").execute_in_process(
        instance=landing.instance, tags={"dagster/partition": TENANT}, raise_on_error=False
    )
    assert result.success
    evaluations = result.get_asset_check_evaluations()
    assert evaluations and all(e.passed for e in evaluations)
    assert result.get_asset_materialization_events() == []


@pytest.mark.parametrize("kept", [0.03, 0.66], ids=["cut-before-the-company", "cut-part-way"])
def test_a_broken_export_given_to_import_file_is_source_data_naming_the_re_export(
    landing, tmp_path, monkeypatch, capsys, kept
):
    """A file cut short (a copy interrupted, a disk filled) is the file's fault, not a hub bug nor
    a record to correct in Tally: the fix says to export it again, and nothing of it is written.
    Cut before the company's name, it broke while the hub checked the company (then MAPPING)."""
    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path / "dagster"))
    landing.register(company="Sample Traders & Co")
    whole = SAMPLE.read_bytes()
    broken = tmp_path / "broken.xml"
    broken.write_bytes(whole[: int(len(whole) * kept) // 2 * 2])  # UTF-16: whole characters

    assert cli.main(["import-file", TENANT, "tally", str(broken)]) == 1

    out = capsys.readouterr().out
    assert "SOURCE_DATA: broken.xml: not readable as XML (line " in out
    fix = next(line for line in out.splitlines() if line.strip().startswith("fix:"))
    assert "Export the file again from Tally" in fix and "hub import-file" in fix
    assert fix.strip() == f"fix: {ExportFileError.suggested_fix}"
    ((status, message),) = landing.query(
        "SELECT status, error_message FROM hub.accounting_sync_logs WHERE entity_type = 'customers'"
    )
    assert status == "failed" and "broken.xml: not readable as XML" in message
    assert landing.query("SELECT count(*) FROM accounting.invoices") == [(0,)]
    assert broken.exists()
