"""`hub`: the one command line for everything operational. `hub --help` lists the subcommands.

Bad input exits with code 2 and a message that names the field and the fix; nothing is written.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from hub_pipelines import settings
from hub_pipelines.demo.plan import BASE_PORT as DEMO_BASE_PORT
from hub_pipelines.demo.plan import PAIRS as DEMO_PAIRS
from hub_pipelines.zoho_books.demo_organisation import DEMO_SIMULATOR

EXIT_BAD_INPUT = 2


class CliError(Exception):
    """Bad input or environment, reported as `error: …` with exit code 2."""


# --- db ---------------------------------------------------------------------------------------


def cmd_db_upgrade(args: argparse.Namespace) -> None:
    from hub_pipelines.warehouse import migrations

    applied = migrations.upgrade()
    names = ", ".join(m.path.name for m in applied) or "nothing to apply"
    print(f"migrations applied: {names}")


def cmd_db_status(args: argparse.Namespace) -> None:
    from hub_pipelines.warehouse import migrations

    for item in migrations.status():
        state = item.applied_at.isoformat(timespec="seconds") if item.applied_at else "pending"
        flag = "" if item.checksum_matches else "  CHANGED AFTER APPLY"
        print(f"{item.migration.path.name:40} {state}{flag}")


def cmd_db_url(args: argparse.Namespace) -> None:
    from hub_pipelines.warehouse import db

    print(db.database_url())


def cmd_db_psql(args: argparse.Namespace) -> None:
    """psql on the warehouse: the system's psql, or the one the embedded-server wheel ships."""
    import shutil

    from hub_pipelines.warehouse import db

    psql = shutil.which("psql") or db.bundled_psql()
    if psql is None:
        raise CliError("no psql found; install the PostgreSQL client, or use `hub db url`")
    url = db.database_url()
    extra = args.psql_args[1:] if args.psql_args[:1] == ["--"] else args.psql_args
    os.execv(psql, [psql, url, *extra])  # noqa: S606


def cmd_db_backup(args: argparse.Namespace) -> None:
    from hub_pipelines.warehouse import backup, db

    path = args.file or backup.default_path(settings.hub_home() / "backups")
    written = backup.backup(db.database_url(), Path(path).expanduser().resolve())
    print(f"backup written: {written} ({written.stat().st_size:,} bytes)")


def cmd_db_restore(args: argparse.Namespace) -> None:
    from hub_pipelines.warehouse import backup, db

    if not args.yes:
        raise CliError(
            "restore replaces the warehouse's hub and accounting tables with the backup's: "
            "add --yes to confirm (stop the Dagster daemon and hub serve first)"
        )
    backup.restore(db.database_url(), Path(args.file).expanduser().resolve())
    print(f"restored {args.file}; check it with `hub db status` and `hub tenants list`")


def cmd_db_start(args: argparse.Namespace) -> None:
    from hub_pipelines.warehouse import db

    if db.configured_url():
        raise CliError("an external database is configured (HUB_DATABASE_URL / DATABASE_HOST)")
    db.start_embedded()
    tcp = db.embedded_tcp_address()
    tcp_text = f" and on TCP {tcp.host}:{tcp.port} (passwords required)" if tcp else " only"
    print(f"embedded PostgreSQL running, data in {db.embedded_data_dir()}")
    print(f"listening on its Unix socket{tcp_text}")
    if db.embedded_listen() != tcp:
        print(
            "note: the running server listens as it was started; `hub db stop` then `hub db "
            f"start` applies the current {db.LISTEN_VARIABLE}"
        )


def cmd_db_stop(args: argparse.Namespace) -> None:
    from hub_pipelines.warehouse import db

    stopped = db.stop_embedded()
    print("embedded PostgreSQL stopped" if stopped else "embedded PostgreSQL was not running")


# --- keys -------------------------------------------------------------------------------------


def cmd_keys_generate(args: argparse.Namespace) -> None:
    from hub_pipelines.vault import generate_key

    print(generate_key())


def cmd_keys_rotate(args: argparse.Namespace) -> None:
    changed = _registry().rotate_keys()
    print(f"re-encrypted {changed} config(s) with the current key")


# --- tenants ----------------------------------------------------------------------------------


def _registry():
    from hub_pipelines.tenants.registry import TenantRegistry
    from hub_pipelines.vault import Vault

    return TenantRegistry(Vault.from_env())


# A guard against /dev/zero or a wrong file, not a size policy: real configs are under 10 KB and
# the fields' own bounds name a value that is too long.
MAX_CONFIG_BYTES = 64 * 1024 * 1024


class _DuplicateKey(ValueError):
    pass


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    """JSON readers disagree on which of two equal keys wins: refuse to guess."""
    seen: dict[str, Any] = {}
    for key, value in pairs:
        if key in seen:
            raise _DuplicateKey(key)
        seen[key] = value
    return seen


def _no_constant(name: str) -> Any:
    raise CliError(f"--config: {name} is not a JSON number; give a number or leave the field out")


def _read_bytes(source: str) -> bytes | str:
    """The config's raw bytes (stdin as bytes too, so its encoding is checked like a file's)."""
    if source == "-":
        stream = getattr(sys.stdin, "buffer", sys.stdin)  # a text stream in tests
        return stream.read(MAX_CONFIG_BYTES + 1)
    try:
        with open(source, "rb") as handle:
            return handle.read(MAX_CONFIG_BYTES + 1)
    except OSError as exc:
        raise CliError(f"--config: cannot read {source}: {exc.strerror}") from None


def _decode(data: bytes | str, label: str) -> str:
    if len(data) > MAX_CONFIG_BYTES:
        raise CliError(f"--config: {label} is larger than 64 MiB; is it the right file?")
    if isinstance(data, str):
        return data
    try:
        return data.decode("utf-8-sig")  # a BOM some editors add is harmless
    except UnicodeDecodeError as exc:
        raise CliError(
            f"--config: {label} is not UTF-8 text (byte {data[exc.start]:#04x} at offset "
            f"{exc.start}); save the config as UTF-8 JSON"
        ) from None


def _read_document(source: str) -> Any:
    label = "stdin" if source == "-" else source
    text = _decode(_read_bytes(source), label)
    try:
        return json.loads(text, object_pairs_hook=_unique_keys, parse_constant=_no_constant)
    except json.JSONDecodeError as exc:
        raise CliError(
            f"--config: invalid JSON at line {exc.lineno} column {exc.colno}: {exc.msg}"
        ) from None
    except _DuplicateKey as exc:
        raise CliError(
            f"--config: duplicate key {exc.args[0]!r} in one JSON object; keep only one"
        ) from None
    except RecursionError:
        raise CliError(
            f"--config: {label} is nested too deeply to be a tenant config (an object holding "
            "connection_config and sync_config objects)"
        ) from None


def _check_http_settings() -> None:
    """Fail on a malformed RETRY_* / ACCOUNTING_* variable before anything is written or run:
    otherwise it surfaces later as a failed connection test or a failed run."""
    from hub_pipelines.connectors.settings import HttpSettings

    HttpSettings.from_env()


def _partition_note(tenant: str, system: str, add: bool) -> str:
    """Add (or remove) the tenant's partition of the system's assets now, as the tenant sensor
    would at its next tick, so `dagster asset materialize --partition TENANT` works at once.
    The instance is the one `hub dev`, `hub sync` and `hub demo` use; when it does not exist
    yet, nothing is created: the sensor of whatever instance runs later catches up."""
    from hub_pipelines.partitions import tenant_partitions

    home, name = settings.dagster_home(), tenant_partitions(system).name
    done = f"{tenant}/{system}: partition {tenant!r} of {name} {'added' if add else 'removed'}"
    if not home.is_dir():
        return (
            f"{tenant}/{system}: no Dagster instance at {home} (DAGSTER_HOME) to update; the "
            "tenant_registry_sensor of the instance that runs the imports will do it"
        )
    try:
        _update_partition(home, name, tenant, add)
    except Exception as exc:  # noqa: BLE001 (the registration stands; the sensor catches up)
        reason = (str(exc).splitlines() or [""])[0][:200]
        return (
            f"{tenant}/{system}: could not update {name} in the Dagster instance {home} "
            f"({type(exc).__name__}: {reason}); the tenant_registry_sensor does it within a "
            "minute once the instance runs"
        )
    return f"{done} in the Dagster instance {home}"


def _update_partition(home: Path, name: str, tenant: str, add: bool) -> None:
    import dagster as dg

    with dg.DagsterInstance.from_config(str(home)) as instance:
        present = instance.has_dynamic_partition(name, tenant)
        if add and not present:
            instance.add_dynamic_partitions(name, [tenant])
        elif not add and present:
            instance.delete_dynamic_partition(name, tenant)


def cmd_tenants_add(args: argparse.Namespace) -> int:
    """Validate and store (encrypted) first, then test the connection with the stored config: a
    system that rotates refresh tokens may rotate the token during the test, and the rotated one
    must land in a row that exists. A failed test leaves the config registered and exits 1."""
    from hub_pipelines.tenants.connection_check import check_connection, has_connection_test
    from hub_pipelines.tenants.registry import validate_system, validate_tenant_slug

    validate_tenant_slug(args.tenant)
    validate_system(args.system)
    document = _registration_document(args)
    if not args.no_test and not args.file_drop and has_connection_test(args.system):
        _check_http_settings()
    registry = _registry()
    row = registry.add(args.tenant, args.system, document)
    name = f"{row.tenant_id}/{row.system}"
    print(f"registered {name} (config id {row.id}, credentials encrypted)")
    print(_partition_note(row.tenant_id, row.system, add=True))
    if args.file_drop:
        print(_file_drop_note(row.tenant_id, row.system))
        return 0
    retest = f"`hub tenants test {row.tenant_id} {row.system}`"
    if not has_connection_test(row.system):
        print(f"{name}: no connection test is available yet for {row.system} (no connector)")
        return 0
    if args.no_test:
        print(f"{name}: connection not tested (--no-test); test it later with {retest}")
        return 0
    result, error = check_connection(registry, row.tenant_id, row.system)
    if result.success:
        print(_connected(name, result))
        return 0
    print(
        f"{name}: the config is registered, but the connection failed: {result.message}",
        file=sys.stderr,
    )
    if error is not None:
        print(f"fix: {error.suggested_fix}", file=sys.stderr)
    print(
        f"then re-run {retest}, or register corrected credentials with "
        f"`hub tenants add {row.tenant_id} {row.system} --config FILE`",
        file=sys.stderr,
    )
    return 1


def _registration_document(args: argparse.Namespace) -> Any:
    """The --config document, or for --file-drop the config of a tenant without a connection:
    it imports only the files landed in its folder, so no schedule runs for it."""
    if not args.file_drop:
        if args.config is None:
            raise CliError(
                "--config FILE is required (or --file-drop for a Tally file-drop tenant)"
            )
        if args.company:
            raise CliError("--company goes with --file-drop; put company_name in the --config file")
        return _read_document(args.config)
    if args.system != "tally" or args.config is not None:
        raise CliError(
            "--file-drop registers a Tally tenant fed by export files, without --config: "
            f"`hub tenants add {args.tenant} tally --file-drop [--company NAME]`"
        )
    connection = {"file_drop": True, **({"company_name": args.company} if args.company else {})}
    manual = {"customers_frequency": "manual", "invoices_frequency": "manual"}
    return {"connection_config": connection, "sync_config": manual}


def _file_drop_note(tenant: str, system: str) -> str:
    from hub_pipelines.landing.folder import tenant_folder

    folder = tenant_folder(settings.landing_dir(), system, tenant)
    folder.mkdir(parents=True, exist_ok=True)
    return (
        f"file drop: put Tally XML exports (Day Book, masters) into {folder}/ — the landing "
        f"sensor imports each complete file once; or run `hub import-file {tenant} {system} FILE`"
    )


def _connected(name: str, result: Any) -> str:
    version = f" (API {result.version})" if result.version else ""
    return f"{name}: connected to {result.organisation!r}{version} in {result.latency_ms} ms"


def _last_test(row: Any) -> str:
    """`hub tenants list`'s "last test" cell: "ok 2026-11-26 10:00", "failed …" or "never"."""
    if row.last_connection_test is None:
        return "never"
    outcome = "ok" if row.last_connection_status == "ok" else "failed"
    return f"{outcome} {row.last_connection_test:%Y-%m-%d %H:%M}"


def cmd_tenants_list(args: argparse.Namespace) -> None:
    rows = _registry().list()
    print(
        f"{'tenant':24} {'system':11} {'enabled':7} {'entities':20} {'last sync':25} "
        f"{'last test':23} failures"
    )
    for row in rows:
        last = row.last_sync_at.isoformat(timespec="seconds") if row.last_sync_at else "never"
        entities = ",".join(row.sync_config.entities)
        enabled = "yes" if row.is_enabled else "no"
        print(
            f"{row.tenant_id:24} {row.system:11} {enabled:7} {entities:20} {last:25} "
            f"{_last_test(row):23} {row.consecutive_failures}"
        )


def cmd_tenants_show(args: argparse.Namespace) -> None:
    config = _registry().get(args.tenant, args.system)
    row = config.row
    shown = {
        "id": row.id,
        "tenant_id": row.tenant_id,
        "system": row.system,
        "is_enabled": row.is_enabled,
        "connection_config": config.connection.model_dump(mode="json"),  # SecretStr → ****
        "sync_config": row.sync_config.model_dump(mode="json"),
        "last_sync_at": row.last_sync_at,
        "last_sync_status": row.last_sync_status,
        "consecutive_failures": row.consecutive_failures,
        "last_connection_test": row.last_connection_test,
        "last_connection_status": row.last_connection_status,
        "created_at": row.created_at,
        "updated_at": row.updated_at,
    }
    print(json.dumps(shown, indent=2, default=str))


def cmd_tenants_test(args: argparse.Namespace) -> int:
    from hub_pipelines.tenants.connection_check import check_connection

    _check_http_settings()
    result, error = check_connection(_registry(), args.tenant, args.system)
    if result.success:
        print(_connected(f"{args.tenant}/{args.system}", result))
        return 0
    print(f"{args.tenant}/{args.system}: connection failed: {result.message}", file=sys.stderr)
    if error is not None:
        print(f"fix: {error.suggested_fix}", file=sys.stderr)
    return 1


def _set_state(verb: str) -> Callable[[argparse.Namespace], None]:
    def command(args: argparse.Namespace) -> None:
        registry = _registry()
        if verb == "remove":
            registry.remove(args.tenant, args.system)
        else:
            registry.set_enabled(args.tenant, args.system, verb == "enable")
        print(f"{args.tenant}/{args.system}: {verb}d")
        if verb == "remove":  # a paused config keeps its partition; only removal takes it away
            print(_partition_note(args.tenant, args.system, add=False))

    return command


# --- analysts ---------------------------------------------------------------------------------


def cmd_analysts_grant(args: argparse.Namespace) -> None:
    from hub_pipelines.warehouse import analyst_access

    print("\n".join(analyst_access.grant_report(analyst_access.grant(args.role, args.tenant))))


def cmd_analysts_revoke(args: argparse.Namespace) -> None:
    from hub_pipelines.warehouse import analyst_access

    tenants = analyst_access.revoke(args.role)
    print(f"analyst role {args.role} dropped; it read tenants {', '.join(tenants) or 'none'}")


def cmd_analysts_list(args: argparse.Namespace) -> None:
    from hub_pipelines.warehouse import analyst_access

    print("\n".join(analyst_access.list_report(analyst_access.list_roles())))


# --- retention --------------------------------------------------------------------------------


def cmd_retention_run(args: argparse.Namespace) -> None:
    """What `retention_job` does, from here: for a dry run, or a run outside the schedule."""
    from datetime import UTC, datetime

    from hub_pipelines.retention import archive
    from hub_pipelines.warehouse import db

    try:
        given = {name: getattr(args, name) for name in archive.ENV_VARIABLES}
        policy = archive.resolve_policy(given)
    except ValueError as exc:
        raise CliError(exc) from None
    with archive.connect(db.database_url()) as conn:
        try:
            results = archive.run_retention(
                conn, policy, datetime.now(UTC), dry_run=args.dry_run, log=print
            )
        except archive.RetentionError as exc:
            raise CliError(exc) from None
    verb = "would take" if args.dry_run else "took"
    for result in results:
        print(
            f"{result.step.name}: {verb} {result.rows} row(s) older than "
            f"{result.cutoff:%Y-%m-%d %H:%M} UTC in {result.batches} batch(es) of "
            f"{policy.batch_size}"
        )


# --- errors -----------------------------------------------------------------------------------


def cmd_errors_list(args: argparse.Namespace) -> None:
    from hub_pipelines.imports.error_log import list_errors

    rows = list_errors(
        tenant=args.tenant, system=args.system, include_resolved=args.all, limit=args.limit
    )
    header = ("id", "when", "partition", "entity", "category", "severity")
    print("{:>6} {:19} {:32} {:9} {:11} {:8} message".format(*header))
    for row in rows:
        partition = f"{row['system']}|{row['tenant_id']}"
        state = " (resolved)" if row["resolved"] else ""
        print(
            f"{row['id']:>6} {row['created_at']:%Y-%m-%d %H:%M:%S} {partition:32} "
            f"{row['entity_type'] or '-':9} {row['category']:11} {row['severity']:8} "
            f"{'run' if row['scope'] == 'run' else row['entity_id'] or 'record'}: "
            f"{row['message']}{state}"
        )


def cmd_errors_show(args: argparse.Namespace) -> None:
    from hub_pipelines.imports.error_log import get_error

    print(json.dumps(get_error(args.id), indent=2, default=str))


def cmd_errors_resolve(args: argparse.Namespace) -> None:
    from hub_pipelines.imports.error_log import resolve_error

    resolve_error(args.id, args.note)
    print(f"error {args.id} resolved")


def cmd_errors_retry(args: argparse.Namespace) -> None:
    from hub_pipelines.imports.error_log import schedule_retry

    schedule_retry(args.id)
    print(f"error {args.id}: the retry sensor re-runs its partition at its next tick")


# --- sync -------------------------------------------------------------------------------------


def cmd_sync(args: argparse.Namespace) -> int:
    """An import now, through Dagster on the local instance: it shows in the UI's run history."""
    from hub_pipelines.imports.local import describe, import_now
    from hub_pipelines.systems import AVAILABLE
    from hub_pipelines.tenants.registry import validate_system, validate_tenant_slug

    validate_tenant_slug(args.tenant)
    validate_system(args.system)
    if args.system not in AVAILABLE:
        raise CliError(f"{args.system}: no connector is available for this system yet")
    _check_http_settings()
    config = _registry().get(args.tenant, args.system)  # a missing one names `hub tenants add`
    if config.files_only:
        raise CliError(
            f"{args.tenant} {args.system} has no live connection to sync from (file_drop): "
            + _file_drop_note(args.tenant, args.system)
        )
    entities = [args.entity] if args.entity else list(config.row.sync_config.entities)
    result, views = import_now(
        args.tenant,
        args.system,
        entities,
        full_refresh=args.full_refresh,
        tags={"hub/trigger": "hub sync"},
    )
    print("\n".join(describe(result)))
    if views is not None:
        print(f"analyst views refreshed: {'yes' if views.success else 'FAILED'}")
    return 0 if result.success else 1


def cmd_import_file(args: argparse.Namespace) -> int:
    from hub_pipelines.imports.local import describe, import_now
    from hub_pipelines.landing.file_import import FILE_READERS, reads_files
    from hub_pipelines.tenants.registry import validate_system, validate_tenant_slug

    validate_tenant_slug(args.tenant)
    validate_system(args.system)
    if not reads_files(args.system):
        raise CliError(
            f"{args.system}: the hub imports files of {', '.join(FILE_READERS)} only; "
            f"{args.system} tenants import through their connection (`hub sync`)"
        )
    path = args.file.expanduser().resolve()
    if not path.is_file():
        raise CliError(f"FILE: {args.file} is not a file; give the path of a Tally XML export")
    row = _registry().row(args.tenant, args.system)  # a missing config names `hub tenants add`
    result, views = import_now(
        args.tenant,
        args.system,
        list(row.sync_config.entities),
        landed_file=str(path),
        tags={"hub/trigger": f"hub import-file:{path.name}"},
    )
    print("\n".join(describe(result)))
    if views is not None:
        print(f"analyst views refreshed: {'yes' if views.success else 'FAILED'}")
    return 0 if result.success else 1


# --- simulators -------------------------------------------------------------------------------


def cmd_simulate(args: argparse.Namespace) -> None:
    """Serve a system's simulator: generated books (the same seed gives the same business in
    every system) or, with --from, the records of captured payload files."""
    import importlib

    from hub_pipelines.simulation import books as generated
    from hub_pipelines.simulation.engine import serve
    from hub_pipelines.simulation.replay import ReplayError, files_in
    from hub_pipelines.systems import AVAILABLE

    if args.system not in AVAILABLE:
        raise CliError(
            f"no simulator for {args.system!r}; available: {', '.join(sorted(AVAILABLE))}"
        )
    _check_port_free(args.host, args.port)
    module = importlib.import_module(AVAILABLE[args.system].simulator_module)
    limits = _simulator_limits(args)
    try:
        if args.from_dir:
            simulated = module.replay(files_in(args.from_dir), **limits)
        else:
            books = generated.generate(
                seed=args.seed, parties=args.customers, sales=args.invoices, max_lines=args.lines
            )
            simulated = module.simulate(books, **limits)
    except ReplayError as exc:
        raise CliError(f"--from: {exc}") from None
    simulated.faults.latency = args.latency
    base_url = f"http://{args.host}:{args.port}"
    config = _paced_to(simulated.connection_config(base_url), args.system, limits)
    if args.config_out:
        _write_private_json(args.config_out, {"connection_config": config, "sync_config": {}})
    print(f"{AVAILABLE[args.system].label} simulator on {base_url}")
    source = (
        f"records of {args.from_dir}" if args.from_dir else f"generated books, seed {args.seed}"
    )
    print(f"  serving:     {source}")
    if args.config_out:
        print(f"  tenant config (simulator credentials): {args.config_out}")
        print(f"  register it: hub tenants add TENANT {args.system} --config {args.config_out}")
    else:
        print("  write the tenant config with --config-out FILE")
    print("  stop with Ctrl-C")
    serve(simulated.app, args.host, args.port)


def _simulator_limits(args: argparse.Namespace) -> dict[str, int]:
    """Limits given on the command line; Zoho Books serves a raised pace by default (30,000
    requests a minute, to finish in seconds), every other system its documented limits."""
    limits = {"requests_per_minute": args.requests_per_minute, "daily_limit": args.requests_per_day}
    if args.system == "zoho_books":
        defaults = DEMO_SIMULATOR["limits"]
        limits = {name: value or defaults[name] for name, value in limits.items()}
    return {name: value for name, value in limits.items() if value}


def _paced_to(config: dict, system: str, limits: dict[str, int]) -> dict:
    """The tenant config paced at the limits the simulator serves, where the system's config
    holds a pace: a config at the real limit (Zoho's 90 a minute) would crawl through books the
    simulator serves at 30,000."""
    from hub_pipelines.tenants.models import CONNECTION_MODELS

    fields = CONNECTION_MODELS[system].model_fields
    return {**config, **{name: value for name, value in limits.items() if name in fields}}


def _write_private_json(path: str, document: dict) -> None:
    """Written readable by the owner only: it holds (simulator) credentials."""
    target = Path(path).expanduser()
    try:
        fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as out:
            json.dump(document, out, indent=2)
            out.write("\n")
    except OSError as exc:
        raise CliError(f"--config-out {path}: cannot write it: {exc.strerror}") from None


def _check_port_free(host: str, port: int) -> None:
    """Bind the address once, as the server will, so a busy port or a wrong host is an error
    naming the option instead of a server that logs and exits (or waits)."""
    import errno
    import socket

    try:
        family = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0][0]
        socket.create_server((host, port), family=family).close()
    except socket.gaierror:
        raise CliError(f"--host {host!r} is not a host name or address; e.g. 127.0.0.1") from None
    except OSError as exc:
        if exc.errno == errno.EADDRINUSE:
            raise CliError(
                f"--port {port}: {host}:{port} is already in use (another `hub simulate` or "
                "`hub demo`?); stop that program or choose another port with --port"
            ) from None
        raise CliError(
            f"--host {host} --port {port}: cannot listen there: {exc.strerror}"
        ) from None


# --- local development ------------------------------------------------------------------------


def cmd_demo(args: argparse.Namespace) -> int:
    from hub_pipelines.demo.run import run_demo
    from hub_pipelines.demo.simulators import DemoPortBusy, stop

    try:
        if args.stop:
            stopped = stop(args.base_port)
            print("demo simulators stopped" if stopped else "no demo simulators were running")
            return 0
        report = run_demo(size=args.size, base_port=args.base_port)
    except DemoPortBusy as exc:
        raise CliError(str(exc)) from None
    return 0 if report.success else 1


# `dagster dev` / `dg dev` options naming the code to load: with one, `hub dev` adds no workspace.
DEV_TARGET_OPTIONS = frozenset(
    {"-w", "--workspace", "-m", "--module-name", "-f", "--python-file", "--package-name"}
    | {"--autoload-defs-module-name", "--grpc-port", "--grpc-socket", "--empty-workspace"}
)


def dev_program(bin_dir: str) -> str:
    """`dg` (dagster-dg-cli, in the dev extras) when installed in BIN_DIR, else `dagster`.

    `dagster dev` is superseded by `dg dev` and says so in a SupersessionWarning on every start.
    """
    dg_path = os.path.join(bin_dir, "dg")
    return dg_path if os.access(dg_path, os.X_OK) else os.path.join(bin_dir, "dagster")


def dev_command(program: str, workspace: str, options: list[str]) -> list[str]:
    """The command line `hub dev` runs: PROGRAM dev on WORKSPACE (the code location
    `hub_pipelines`, by module) unless OPTIONS name a target of their own, then OPTIONS as given.
    The first `--` among the options (`hub dev -- -p 3001`) is dropped: it separates `hub`'s
    arguments from Dagster's, and `dg dev` / `dagster dev` reject it."""
    passed = list(options)
    if "--" in passed:
        passed.remove("--")
    own_target = any(option.split("=", 1)[0] in DEV_TARGET_OPTIONS for option in passed)
    return [program, "dev", *([] if own_target else ["-w", workspace]), *passed]


DEV_SERVICE_HOST = "127.0.0.1"  # `hub dev` is for one developer's machine: loopback only
DEV_SERVICE_PORT = 8080  # `hub serve`'s default
CHILD_STOP_SECONDS = 30  # for a child to stop after SIGTERM before it is killed
# What `hub dev` passes on to its children for each signal that stops it: a closed terminal's
# SIGHUP as SIGTERM, which Dagster and uvicorn take as an order to shut down cleanly.
DEV_STOP_SIGNALS = {
    signal.SIGINT: signal.SIGINT,
    signal.SIGTERM: signal.SIGTERM,
    signal.SIGHUP: signal.SIGTERM,
}


def dev_option(options: list[str], names: tuple[str, ...], default: str) -> str:
    """The last value OPTIONS give to one of NAMES (`-p 3001`, `--port=3001`), else DEFAULT."""
    value = default
    for index, option in enumerate(options):
        name, has_value, inline = option.partition("=")
        if name in names and (has_value or index + 1 < len(options)):
            value = inline if has_value else options[index + 1]
    return value


def dev_ui_url(options: list[str]) -> str:
    """Where `dg dev` serves the UI given OPTIONS (the webserver's defaults: 127.0.0.1:3000)."""
    host = dev_option(options, ("-h", "--host"), "127.0.0.1")
    port = dev_option(options, ("-p", "--port"), "3000")
    shown = "localhost" if host in {"0.0.0.0", "::"} else host  # noqa: S104 (only compared)
    return f"http://{shown}:{port}"


def service_command(port: int) -> list[str]:
    """`hub serve` on loopback PORT, run by this interpreter (the one `hub` runs on)."""
    serve = ["serve", "--host", DEV_SERVICE_HOST, "--port", str(port)]
    return [sys.executable, "-m", "hub_pipelines.cli", *serve]


def stop_child(child: subprocess.Popen) -> None:
    """SIGTERM to CHILD if it still runs, then SIGKILL when it does not stop in time."""
    if child.poll() is None:
        child.terminate()
    try:
        child.wait(timeout=CHILD_STOP_SECONDS)
    except subprocess.TimeoutExpired:
        child.kill()
        child.wait()


def exit_status(returncode: int) -> int:
    """A child's status as a shell reports it: 128 + N when signal N ended it."""
    return 128 - returncode if returncode < 0 else returncode


def run_dev_children(dev_argv: list[str], dev_cwd: Path, service_argv: list[str] | None) -> int:
    """`dg dev` and the hub service side by side until `dg dev` exits; its exit status.

    Each child leads a process group of its own, so a Ctrl-C in the terminal (or a SIGTERM)
    reaches `hub dev` alone and is passed on exactly once: a second interrupt would break into
    `dg dev`'s own shutdown, which waits for its webserver and daemon. Whatever ends `dg dev`,
    the service is stopped after it; nothing outlives `hub dev` unless SIGKILL ends it.
    """
    children: list[subprocess.Popen] = []
    received: list[int] = []

    def pass_on(signum: int, _frame: object) -> None:
        received.append(signum)
        for child in children:
            if child.poll() is None:
                child.send_signal(DEV_STOP_SIGNALS[signum])

    previous = {signum: signal.signal(signum, pass_on) for signum in DEV_STOP_SIGNALS}
    try:
        if service_argv is not None:
            children.append(subprocess.Popen(service_argv, process_group=0))  # noqa: S603
        if received:  # stopped while the service started: no `dg dev` to start
            return exit_status(-received[0])
        dev = subprocess.Popen(dev_argv, cwd=dev_cwd, process_group=0)  # noqa: S603
        children.append(dev)
        return exit_status(dev.wait())
    finally:
        for child in reversed(children):
            stop_child(child)
        for signum, handler in previous.items():
            signal.signal(signum, handler)


def cmd_dev(args: argparse.Namespace) -> int:
    """`dg dev` on the hub's persistent DAGSTER_HOME, from any folder, with the local env loaded,
    and beside it the hub service and (after `hub demo`) the demo's simulators.

    `dg dev` runs in DAGSTER_HOME: from the repository root Dagster would otherwise warn that the
    dagster.yaml there is not the instance's (it is a copy: `settings.ensure_dagster_home`).
    """
    from hub_pipelines.connectors.loopback import port_is_free

    if not args.no_service and not port_is_free(DEV_SERVICE_HOST, args.service_port):
        raise CliError(
            f"--service-port {args.service_port}: {DEV_SERVICE_HOST}:{args.service_port} is "
            "already in use (another `hub serve` or `hub dev`?); choose another port with "
            "--service-port, or start without the hub service with --no-service"
        )
    from hub_pipelines.demo.run import serve_demo_sources
    from hub_pipelines.demo.simulators import DemoPortBusy
    from hub_pipelines.warehouse import db, migrations

    os.environ["HUB_HOME"] = str(settings.hub_home())  # absolute, for every child process
    home = settings.ensure_dagster_home()
    db.database_url()  # start the embedded server once, before Dagster's processes need it
    applied = migrations.upgrade()  # the sensors read the registry from their first tick
    if applied:
        print(f"migrations applied: {', '.join(m.path.name for m in applied)}")
    try:
        sources = serve_demo_sources()  # runs launched from the UI must reach them
    except DemoPortBusy as exc:
        raise CliError(str(exc)) from None
    workspace = str(settings.write_dev_workspace())
    argv = dev_command(dev_program(os.path.dirname(sys.executable)), workspace, args.dagster_args)
    print(f"the Dagster UI:    {dev_ui_url(args.dagster_args)} (dg dev, instance {home})")
    if args.no_service:
        print("the hub service:  not started (--no-service)")
    else:
        print(f"the hub service:  http://{DEV_SERVICE_HOST}:{args.service_port} (hub serve)")
    if sources is not None:
        print(sources)
    print("stop with Ctrl-C", flush=True)
    service = None if args.no_service else service_command(args.service_port)
    return run_dev_children(argv, home, service)


def cmd_serve(args: argparse.Namespace) -> None:
    """The hub service (webhooks, OAuth onboarding, test-connection, health, metrics) on uvicorn,
    logging JSON lines. Stateless: run one per host or several behind a load balancer."""
    import uvicorn

    from hub_pipelines.service.app import build_app
    from hub_pipelines.service.security import configure_logging

    configure_logging()
    settings.ensure_dagster_home()  # the instance /health and /metrics read the run queue from
    uvicorn.run(build_app(), host=args.host, port=args.port, access_log=False, log_config=None)


# --- parser -----------------------------------------------------------------------------------


def whole_number(minimum: int, maximum: int) -> Callable[[str], int]:
    """An argparse type: ASCII digits within [MINIMUM, MAXIMUM]. argparse names the option in
    its message (`argument --limit: …`) and exits with code 2; a value PostgreSQL or the socket
    layer would refuse later (a negative LIMIT, an id beyond bigint, port 99999) stops here."""

    def parse(text: str) -> int:
        if not (text.isascii() and text.lstrip("-").isdigit()) or not (
            minimum <= int(text) <= maximum
        ):
            raise argparse.ArgumentTypeError(
                f"must be a whole number from {minimum} to {maximum}, got {text!r}"
            )
        return int(text)

    return parse


PORT = whole_number(1, 65535)
ROW_ID = whole_number(1, 2**63 - 1)  # PostgreSQL bigint


def _tenant_system(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("tenant", help="tenant slug, e.g. acme-traders")
    parser.add_argument("system", help="one of: " + ", ".join(settings.SYSTEMS))


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="hub", description=__doc__.splitlines()[0])
    groups = parser.add_subparsers(dest="group", required=True, metavar="COMMAND")

    db_parser = groups.add_parser("db", help="warehouse: migrations, URL, embedded server")
    db_commands = db_parser.add_subparsers(dest="command", required=True, metavar="SUBCOMMAND")
    for name, func, text in [
        ("upgrade", cmd_db_upgrade, "apply pending migrations from sql/ (safe to run twice)"),
        ("status", cmd_db_status, "list migrations and when each was applied"),
        ("url", cmd_db_url, 'print the database URL (psql "$(hub db url)")'),
        ("start", cmd_db_start, "start the embedded PostgreSQL under $HUB_HOME"),
        ("psql", cmd_db_psql, "open psql on the warehouse (arguments after -- go to psql)"),
        ("stop", cmd_db_stop, "stop the embedded PostgreSQL cleanly"),
    ]:
        sub = db_commands.add_parser(name, help=text, description=text)
        sub.set_defaults(func=func)
        if name == "psql":
            sub.add_argument("psql_args", nargs=argparse.REMAINDER, help="passed to psql")
    backup_parser = db_commands.add_parser(
        "backup", help="pg_dump the warehouse (custom format) to FILE or $HUB_HOME/backups/"
    )
    backup_parser.add_argument("file", nargs="?", type=Path, help="where to write the dump")
    backup_parser.set_defaults(func=cmd_db_backup)
    restore_parser = db_commands.add_parser(
        "restore",
        help="replace the warehouse's tables with a backup's (pg_restore, one transaction)",
    )
    restore_parser.add_argument("file", type=Path, help="a dump written by `hub db backup`")
    restore_parser.add_argument("--yes", action="store_true", help="confirm the replacement")
    restore_parser.set_defaults(func=cmd_db_restore)

    keys_parser = groups.add_parser("keys", help="credential encryption keys")
    keys_commands = keys_parser.add_subparsers(dest="command", required=True, metavar="SUBCOMMAND")
    keys_commands.add_parser("generate", help="print a new key (base64 of 32 bytes)").set_defaults(
        func=cmd_keys_generate
    )
    keys_commands.add_parser(
        "rotate",
        help="re-encrypt every config with CREDENTIAL_ENCRYPTION_KEY "
        "(old keys in CREDENTIAL_ENCRYPTION_OLD_KEYS), in one transaction",
    ).set_defaults(func=cmd_keys_rotate)

    tenants_parser = groups.add_parser("tenants", help="the tenant registry")
    tenants = tenants_parser.add_subparsers(dest="command", required=True, metavar="SUBCOMMAND")
    add = tenants.add_parser(
        "add",
        help="register or replace a tenant's config for one system, then test the connection",
        description='CONFIG is JSON: {"connection_config": {...}, "sync_config": {...}} or just '
        "the connection config. See docs/connectors/ for each system's fields. The config is "
        "validated and stored encrypted, then the connection is tested with it (as `hub tenants "
        "test`); a failed test keeps the config and exits with code 1. Zoho Books, QuickBooks "
        "and Xero tenants can instead be connected in a browser through `hub serve`: "
        "GET /oauth/SYSTEM/start?tenant=TENANT (docs/connecting.md).",
    )
    _tenant_system(add)
    add.add_argument("--config", metavar="FILE|-", help="JSON file, or - for stdin")
    add.add_argument(
        "--file-drop",
        action="store_true",
        help="tally only: no live connection; import the export files dropped into "
        "$HUB_LANDING_DIR/tally/TENANT/ (or given to `hub import-file`)",
    )
    add.add_argument(
        "--company", help="with --file-drop: refuse files exported from any other company"
    )
    add.add_argument(
        "--no-test",
        action="store_true",
        help="register without testing the connection (offline registration)",
    )
    add.set_defaults(func=cmd_tenants_add)
    tenants.add_parser("list", help="list configs (no secrets)").set_defaults(func=cmd_tenants_list)
    test = tenants.add_parser(
        "test", help="test the connection with the stored credentials (records the outcome)"
    )
    _tenant_system(test)
    test.set_defaults(func=cmd_tenants_test)
    for verb, text in [
        ("show", "show one config, secrets masked"),
        ("disable", "stop importing this config"),
        ("enable", "resume importing this config"),
        ("remove", "soft-delete this config"),
    ]:
        sub = tenants.add_parser(verb, help=text)
        _tenant_system(sub)
        sub.set_defaults(func=cmd_tenants_show if verb == "show" else _set_state(verb))

    analysts_parser = groups.add_parser(
        "analysts", help="read-only database roles for analysts, each seeing only its tenants"
    )
    analysts = analysts_parser.add_subparsers(dest="command", required=True, metavar="SUBCOMMAND")
    grant = analysts.add_parser(
        "grant",
        help="create or update a read-only login role; prints its URL with a new password",
        description="Makes ROLE a read-only login role of schema accounting that sees the given "
        "tenants' rows only (exactly those: a tenant left out is taken away), with a new "
        "password every time; the last line printed is its connection URL with the password. "
        "See docs/analysts.md.",
    )
    grant.add_argument("role", help="login role name, e.g. acme_analyst")
    grant.add_argument(
        "--tenant", action="append", required=True, help="a tenant it reads (repeat for more)"
    )
    grant.set_defaults(func=cmd_analysts_grant)
    revoke = analysts.add_parser("revoke", help="drop an analyst role made by `grant`")
    revoke.add_argument("role", help="login role name")
    revoke.set_defaults(func=cmd_analysts_revoke)
    analysts.add_parser("list", help="analyst roles and their tenants").set_defaults(
        func=cmd_analysts_list
    )

    errors_parser = groups.add_parser("errors", help="the sync error table")
    errors = errors_parser.add_subparsers(dest="command", required=True, metavar="SUBCOMMAND")
    listing = errors.add_parser("list", help="open errors, newest first")
    listing.add_argument("--tenant")
    listing.add_argument("--system", choices=settings.SYSTEMS)
    listing.add_argument("--all", action="store_true", help="include resolved errors")
    listing.add_argument(
        "--limit", type=whole_number(1, 100_000), default=50, help="at most this many rows"
    )
    listing.set_defaults(func=cmd_errors_list)
    for verb, func, text in [
        ("show", cmd_errors_show, "one error with its raw payload"),
        ("resolve", cmd_errors_resolve, "mark an error resolved"),
        ("retry", cmd_errors_retry, "re-run the error's partition at the retry sensor's next tick"),
    ]:
        sub = errors.add_parser(verb, help=text)
        sub.add_argument("id", type=ROW_ID, help="error id (hub errors list)")
        if verb == "resolve":
            sub.add_argument("--note", default="resolved by hand", help="why it is resolved")
        sub.set_defaults(func=func)

    retention_parser = groups.add_parser(
        "retention", help="archive old sync logs and resolved errors, delete very old archived ones"
    )
    retention = retention_parser.add_subparsers(dest="command", required=True, metavar="SUBCOMMAND")
    retention_run = retention.add_parser(
        "run",
        help="what the daily retention_job does, now",
        description="Moves sync logs and resolved errors older than the archive age to the "
        "archive tables and deletes archived rows older than the deletion age, in batches "
        "(docs/operations.md, Retention and archive). Unset options: HUB_RETENTION_* or the "
        "defaults 365, 730, 5000.",
    )
    retention_run.add_argument(
        "--dry-run", action="store_true", help="count what each step would take; change nothing"
    )
    for option, limit, text in [
        ("--archive-after-days", 36_500, "archive rows older than this (default 365)"),
        ("--delete-after-days", 36_500, "delete archived rows older than this (default 730)"),
        ("--batch-size", 100_000, "rows per transaction (default 5000)"),
    ]:
        retention_run.add_argument(option, type=whole_number(1, limit), help=text)
    retention_run.set_defaults(func=cmd_retention_run)

    sync = groups.add_parser(
        "sync",
        help="import one tenant's system now, through Dagster (shows in the UI's runs)",
        description="Runs the partition's import on the local Dagster instance ($HUB_HOME/dagster),"
        " prints what it did and its checks, refreshes the analyst views; exits 1 if it failed.",
    )
    _tenant_system(sync)
    sync.add_argument("--entity", choices=["customers", "invoices"], help="only this entity")
    sync.add_argument(
        "--full-refresh",
        action="store_true",
        help="ignore the cursor, re-read everything, soft-delete what the source no longer has",
    )
    sync.set_defaults(func=cmd_sync)

    import_file = groups.add_parser(
        "import-file",
        help="import an export file (Tally XML) into a tenant now, through Dagster",
        description="Imports FILE into the tenant's partition on the local Dagster instance, as "
        "the landing sensor does for a dropped file, and prints what it did; exits 1 if it "
        "failed. The file stays where it is.",
    )
    _tenant_system(import_file)
    import_file.add_argument("file", type=Path, help="the export file (XML, UTF-8 or UTF-16)")
    import_file.set_defaults(func=cmd_import_file)

    simulate = groups.add_parser(
        "simulate",
        help="serve a faithful local simulator of an accounting system",
        description="Serves generated books (the same --seed gives the same business in every "
        "system) or, with --from DIR, the records in DIR's files (the system's own list or "
        "detail response bodies, or recordings of them). --config-out writes the tenant config "
        "that reaches it, for `hub tenants add`. zoho_books defaults to a raised pace (30,000 "
        "requests a minute); the other systems serve their documented limits. (`hub demo` "
        "serves its own simulators for its tenants.)",
    )
    demo = DEMO_SIMULATOR
    simulate.add_argument("system", help="the system to simulate, e.g. zoho_books, xero")
    simulate.add_argument("--host", default="127.0.0.1")
    simulate.add_argument("--port", type=PORT, default=demo["port"], help="1 to 65535")
    simulate.add_argument(
        "--from",
        dest="from_dir",
        metavar="DIR",
        help="serve the records in DIR's .json and .xml files (captured answers, Tally "
        "exports, BUSY rowsets) instead of generated books",
    )
    simulate.add_argument(
        "--config-out", metavar="FILE", help="write the tenant config reaching this simulator"
    )
    simulate.add_argument(
        "--customers", type=whole_number(1, 10**6), default=demo["data"]["customers"]
    )
    simulate.add_argument(
        "--invoices", type=whole_number(0, 10**7), default=demo["data"]["invoices"]
    )
    simulate.add_argument(
        "--lines",
        type=whole_number(1, 100),
        default=demo["data"]["lines_per_invoice"],
        help="max lines/invoice",
    )
    simulate.add_argument(
        "--seed", type=int, default=demo["data"]["seed"], help="same seed, same data"
    )
    simulate.add_argument(
        "--requests-per-minute",
        type=whole_number(1, 10**8),
        help="the per-organisation rate limit (default: the system's documented one; for "
        "zoho_books 30,000, Zoho's real one is 100)",
    )
    simulate.add_argument(
        "--requests-per-day",
        type=whole_number(1, 10**9),
        help="the organisation's daily quota (a free Zoho organisation gets 1,000)",
    )
    simulate.add_argument("--latency", type=float, default=0.0, help="seconds added per request")
    simulate.set_defaults(func=cmd_simulate)

    demo_parser = groups.add_parser(
        "demo",
        help="embedded database + five simulators → three tenants imported, and a summary",
        description="Starts the embedded PostgreSQL and the demo's simulators (a background "
        "process that keeps serving for the UI), registers three tenants over the five systems, "
        "imports every partition through Dagster, shows the landing sensor at work on a dropped "
        "Tally export and a Xero webhook, and prints a summary. Safe to run again.",
    )
    demo_parser.add_argument(
        "--size",
        choices=("small", "large"),
        default="small",
        help="small: 3,500 invoices in all (about a minute); large: 70,000",
    )
    demo_parser.add_argument(
        "--base-port",
        type=whole_number(1, 65535 - len(DEMO_PAIRS)),  # the last pair's port is N+6
        default=DEMO_BASE_PORT,
        help=f"the simulators' ports: N (control) to N+{len(DEMO_PAIRS)} "
        f"(default {DEMO_BASE_PORT})",
    )
    demo_parser.add_argument(
        "--stop", action="store_true", help="stop the demo's simulators and exit"
    )
    demo_parser.set_defaults(func=cmd_demo)
    dev = groups.add_parser(
        "dev",
        help="the Dagster UI and daemon (dg dev) on $HUB_HOME/dagster with the hub service",
        description="Runs `dg dev` (`dagster dev` when dagster-dg-cli is not installed) in "
        "$DAGSTER_HOME (default $HUB_HOME/dagster) on the code location hub_pipelines, after "
        "starting the embedded database (unless another is configured) and applying pending "
        "migrations, and beside it the hub service (`hub serve` on 127.0.0.1) and, after `hub "
        "demo`, the demo's simulators (restarted if they stopped). Ctrl-C stops the UI and the "
        "service; the demo's simulators keep serving until `hub demo --stop`. The "
        "options below are hub's; every other one is passed through to dg dev (`dagster dev "
        "--help` lists them), e.g. `hub dev -p 3001 --host 0.0.0.0` or `hub dev -- --log-level "
        "debug`; relative paths in them are read from $DAGSTER_HOME.",
        usage="hub dev [--help] [--service-port PORT | --no-service] [DAGSTER_DEV_OPTION ...]",
        add_help=False,  # -h is dagster dev's --host
        allow_abbrev=False,  # `--serv` and the like are dg dev's to reject, not ours to guess
    )
    dev.add_argument("--help", action="help", help="show this help message and exit")
    dev.add_argument(
        "--service-port",
        type=PORT,
        default=DEV_SERVICE_PORT,
        metavar="PORT",
        help=f"the hub service's port on {DEV_SERVICE_HOST} (default {DEV_SERVICE_PORT})",
    )
    dev.add_argument(
        "--no-service", action="store_true", help="the Dagster UI alone, without the hub service"
    )
    dev.set_defaults(func=cmd_dev, dagster_args=[])
    serve = groups.add_parser(
        "serve",
        help="the hub service: webhooks, OAuth onboarding, test-connection, /health, /metrics",
        description="Serves the hub's HTTP service with uvicorn (docs/service.md). Admin endpoints "
        "need HUB_API_TOKEN; logs are JSON lines on stderr.",
    )
    serve.add_argument("--host", default="127.0.0.1", help="address to listen on")
    serve.add_argument("--port", type=PORT, default=8080, help="1 to 65535")
    serve.set_defaults(func=cmd_serve)
    return parser


def _expected_errors() -> tuple[type[BaseException], ...]:
    from hub_pipelines.connectors.settings import SettingsError
    from hub_pipelines.imports.error_log import ErrorNotFound
    from hub_pipelines.tenants.models import TenantConfigError
    from hub_pipelines.vault import VaultError
    from hub_pipelines.warehouse.analyst_access import AnalystAccessError
    from hub_pipelines.warehouse.backup import BackupError
    from hub_pipelines.warehouse.db import DatabaseConfigError
    from hub_pipelines.warehouse.migrations import MigrationError

    return (
        CliError,
        AnalystAccessError,
        BackupError,
        TenantConfigError,
        VaultError,
        DatabaseConfigError,
        MigrationError,
        ErrorNotFound,
        SettingsError,
        settings.LocalEnvError,
    )


def _unreachable_errors() -> tuple[type[BaseException], ...]:
    import psycopg
    import sqlalchemy as sa

    return (psycopg.OperationalError, sa.exc.OperationalError)


def _is_connection_failure(exc: BaseException) -> bool:
    """Failing to connect (or losing the connection) has no SQLSTATE; a server-side error that
    psycopg also files as operational (a statement timeout, a lock timeout) has one, and is not
    the warehouse being unreachable."""
    import psycopg

    orig = getattr(exc, "orig", exc)  # SQLAlchemy wraps the driver's error
    return isinstance(orig, psycopg.OperationalError) and orig.sqlstate is None


def _unreachable(exc: BaseException) -> str:
    """The warehouse, without its password, why it failed, and what to do."""
    from sqlalchemy.engine import make_url

    from hub_pipelines.warehouse import db

    reason = (str(getattr(exc, "orig", None) or exc).strip().splitlines() or ["?"])[0]
    configured = db.configured_url()
    password = make_url(configured).password if configured else None
    if password:
        reason = reason.replace(password, "***")  # libpq does not echo it; stay sure
    return (
        f"cannot reach the warehouse at {db.describe_target()}: {reason}. Check that "
        "PostgreSQL runs there and accepts connections and that the URL is right (`hub db url` "
        "prints it); unset HUB_DATABASE_URL and DATABASE_HOST to use the embedded database"
    )


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Parse the command line; options `hub` does not know are `hub dev`'s, for `dg dev`, and an
    error (exit code 2) for every other command."""
    parser = build_parser()
    args, unknown = parser.parse_known_args(argv)
    if args.func is cmd_dev:
        args.dagster_args = unknown
    elif unknown:
        parser.error(f"unrecognized arguments: {' '.join(unknown)}")
    return args


def _bad_input(message: object) -> int:
    print(f"error: {message}", file=sys.stderr)
    return EXIT_BAD_INPUT


def main(argv: list[str] | None = None) -> int:
    try:
        settings.load_local_env()
    except settings.LocalEnvError as exc:
        return _bad_input(exc)
    args = parse_args(argv)  # outside the handlers: `--help` must not import what they name
    try:
        return args.func(args) or 0
    except _expected_errors() as exc:
        return _bad_input(exc)
    except _unreachable_errors() as exc:
        if not _is_connection_failure(exc):
            raise
        return _bad_input(_unreachable(exc))


if __name__ == "__main__":
    sys.exit(main())
