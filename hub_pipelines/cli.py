"""`hub`: the one command line for everything operational. `hub --help` lists the subcommands.

Bad input exits with code 2 and a message that names the field and the fix; nothing is written.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from hub_pipelines import settings

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


def cmd_db_start(args: argparse.Namespace) -> None:
    from hub_pipelines.warehouse import db

    if db.configured_url():
        raise CliError("an external database is configured (HUB_DATABASE_URL / DATABASE_HOST)")
    db.start_embedded()
    print(f"embedded PostgreSQL running, data in {db.embedded_data_dir()}")


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


def _read_document(source: str) -> Any:
    try:
        text = sys.stdin.read() if source == "-" else Path(source).read_text(encoding="utf-8")
    except OSError as exc:
        raise CliError(f"--config: cannot read {source}: {exc.strerror}") from None
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise CliError(
            f"--config: invalid JSON at line {exc.lineno} column {exc.colno}: {exc.msg}"
        ) from None


def cmd_tenants_add(args: argparse.Namespace) -> None:
    from hub_pipelines.tenants.registry import validate_system, validate_tenant_slug

    validate_tenant_slug(args.tenant)
    validate_system(args.system)
    row = _registry().add(args.tenant, args.system, _read_document(args.config))
    print(f"registered {row.tenant_id}/{row.system} (config id {row.id}, credentials encrypted)")


def cmd_tenants_list(args: argparse.Namespace) -> None:
    rows = _registry().list()
    print(f"{'tenant':24} {'system':11} {'enabled':7} {'entities':20} {'last sync':20} failures")
    for row in rows:
        last = row.last_sync_at.isoformat(timespec="seconds") if row.last_sync_at else "never"
        entities = ",".join(row.sync_config.entities)
        enabled = "yes" if row.is_enabled else "no"
        print(
            f"{row.tenant_id:24} {row.system:11} {enabled:7} {entities:20} {last:20} "
            f"{row.consecutive_failures}"
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
        "created_at": row.created_at,
        "updated_at": row.updated_at,
    }
    print(json.dumps(shown, indent=2, default=str))


def cmd_tenants_test(args: argparse.Namespace) -> int:
    from hub_pipelines.tenants.connection_check import check_connection

    result, error = check_connection(_registry(), args.tenant, args.system)
    if result.success:
        print(
            f"{args.tenant}/{args.system}: connected to {result.organisation!r} "
            f"(API {result.version}) in {result.latency_ms} ms"
        )
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

    return command


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


# --- simulators -------------------------------------------------------------------------------


def cmd_simulate(args: argparse.Namespace) -> None:
    import importlib

    from hub_pipelines.systems import AVAILABLE

    if args.system not in AVAILABLE:
        raise CliError(
            f"no simulator for {args.system!r}; available: {', '.join(sorted(AVAILABLE))}"
        )
    module = importlib.import_module(AVAILABLE[args.system].simulator_module)
    module.serve(
        host=args.host,
        port=args.port,
        customers=args.customers,
        invoices=args.invoices,
        lines_per_invoice=args.lines,
        seed=args.seed,
        requests_per_minute=args.requests_per_minute,
        latency=args.latency,
    )


# --- local development ------------------------------------------------------------------------


def cmd_demo(args: argparse.Namespace) -> None:
    from hub_pipelines.demo import run_demo

    run_demo()


def cmd_dev(args: argparse.Namespace) -> None:
    """`dagster dev` on the hub's persistent DAGSTER_HOME, with the local env file loaded."""
    from hub_pipelines.warehouse import db

    settings.ensure_dagster_home()
    db.database_url()  # start the embedded server once, before Dagster's processes need it
    dagster = os.path.join(os.path.dirname(sys.executable), "dagster")
    os.execv(dagster, [dagster, "dev", "-w", "workspace.yaml", *args.dagster_args])  # noqa: S606


# --- parser -----------------------------------------------------------------------------------


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
        help="register or replace a tenant's config for one system",
        description='CONFIG is JSON: {"connection_config": {...}, "sync_config": {...}} or just '
        "the connection config. See docs/connectors/ for each system's fields.",
    )
    _tenant_system(add)
    add.add_argument("--config", required=True, metavar="FILE|-", help="JSON file, or - for stdin")
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

    errors_parser = groups.add_parser("errors", help="the sync error table")
    errors = errors_parser.add_subparsers(dest="command", required=True, metavar="SUBCOMMAND")
    listing = errors.add_parser("list", help="open errors, newest first")
    listing.add_argument("--tenant")
    listing.add_argument("--system", choices=settings.SYSTEMS)
    listing.add_argument("--all", action="store_true", help="include resolved errors")
    listing.add_argument("--limit", type=int, default=50, help="at most this many rows")
    listing.set_defaults(func=cmd_errors_list)
    for verb, func, text in [
        ("show", cmd_errors_show, "one error with its raw payload"),
        ("resolve", cmd_errors_resolve, "mark an error resolved"),
        ("retry", cmd_errors_retry, "re-run the error's partition at the retry sensor's next tick"),
    ]:
        sub = errors.add_parser(verb, help=text)
        sub.add_argument("id", type=int, help="error id (hub errors list)")
        if verb == "resolve":
            sub.add_argument("--note", default="resolved by hand", help="why it is resolved")
        sub.set_defaults(func=func)

    simulate = groups.add_parser(
        "simulate", help="serve a faithful local simulator of an accounting system"
    )
    simulate.add_argument("system", help="the system to simulate, e.g. zoho_books")
    simulate.add_argument("--host", default="127.0.0.1")
    simulate.add_argument("--port", type=int, default=8091)
    simulate.add_argument("--customers", type=int, default=200)
    simulate.add_argument("--invoices", type=int, default=1000)
    simulate.add_argument("--lines", type=int, default=3, help="maximum lines per invoice")
    simulate.add_argument("--seed", type=int, default=42, help="same seed, same data")
    simulate.add_argument(
        "--requests-per-minute", type=int, default=100, help="the per-organisation rate limit"
    )
    simulate.add_argument("--latency", type=float, default=0.0, help="seconds added per request")
    simulate.set_defaults(func=cmd_simulate)

    groups.add_parser(
        "demo", help="embedded database + simulators → a populated warehouse and a summary"
    ).set_defaults(func=cmd_demo)
    dev = groups.add_parser("dev", help="dagster dev on $HUB_HOME/dagster (the demo's runs)")
    dev.add_argument("dagster_args", nargs=argparse.REMAINDER, help="passed to dagster dev")
    dev.set_defaults(func=cmd_dev)
    return parser


def _expected_errors() -> tuple[type[BaseException], ...]:
    from hub_pipelines.imports.error_log import ErrorNotFound
    from hub_pipelines.tenants.models import TenantConfigError
    from hub_pipelines.vault import VaultError
    from hub_pipelines.warehouse.db import DatabaseConfigError
    from hub_pipelines.warehouse.migrations import MigrationError

    return (
        CliError,
        TenantConfigError,
        VaultError,
        DatabaseConfigError,
        MigrationError,
        ErrorNotFound,
    )


def main(argv: list[str] | None = None) -> int:
    settings.load_local_env()
    args = build_parser().parse_args(argv)
    try:
        return args.func(args) or 0
    except _expected_errors() as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT


if __name__ == "__main__":
    sys.exit(main())
