"""deploy/grafana/accounting-hub.json and deploy/prometheus/: the dashboard loads in Grafana's
dashboard model (grafana-foundation-sdk, generated from Grafana 11.6's schema), the rules file has
Prometheus's shape and its rules fire when they should (`promtool`, where it is installed), and
every metric a panel, a variable or a rule queries — with the labels it filters and groups by —
is in a real scrape of the service's /metrics after syncs and errors exist in the database.
"""

from __future__ import annotations

import enum
import json
import re
import shutil
import subprocess
import time
import types
import typing
from collections import defaultdict
from pathlib import Path

import httpx
import promql_parser
import psycopg
import pytest
import yaml
from dagster._daemon.types import DaemonHeartbeat
from grafana_foundation_sdk.cog.encoder import JSONEncoder
from grafana_foundation_sdk.cog.plugins import register_default_plugins
from grafana_foundation_sdk.models.dashboard import Dashboard

from hub_pipelines.connectors.errors import Category, SyncError
from hub_pipelines.connectors.loopback import LoopbackServer
from hub_pipelines.imports import audit
from hub_pipelines.service import health
from hub_pipelines.service.app import build_app
from hub_pipelines.simulation import books as generated
from hub_pipelines.tenants.connection_check import check_connection
from hub_pipelines_tests.contract.conftest import (  # noqa: F401
    AS_OF,
    FAST,
    TENANT,
    Tenant,
    tenant_of,
)
from hub_pipelines_tests.service.test_core import scraped, service_env  # noqa: F401

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"
DASHBOARD = DEPLOY / "grafana" / "accounting-hub.json"
RULES = DEPLOY / "prometheus" / "alerts.yml"
PROMETHEUS_CONFIG = DEPLOY / "prometheus" / "prometheus.yml"
PROMTOOL = shutil.which("promtool")
needs_promtool = pytest.mark.skipif(PROMTOOL is None, reason="promtool is not installed")

RULE_KEYS = {"alert", "expr", "for", "keep_firing_for", "labels", "annotations"}
SEVERITIES = {"warning", "critical"}
DURATION = re.compile(r"^(\d+(ms|[smhdwy]))+$")
# `$system`, `${tenant}`, `${tenant:regex}`, `$__rate_interval`: Grafana's variables in a query.
GRAFANA_VARIABLE = re.compile(r"\$\{?(\w+)(?::\w+)?\}?")
LABEL_VALUES = re.compile(r"^label_values\((?P<selector>.+),\s*(?P<label>\w+)\)$")


def dashboard() -> dict:
    return json.loads(DASHBOARD.read_text())


def rules() -> list[dict]:
    return [
        rule for group in yaml.safe_load(RULES.read_text())["groups"] for rule in group["rules"]
    ]


def panels() -> list[dict]:
    return [panel for panel in dashboard()["panels"] if panel["type"] != "row"]


# --- PromQL ------------------------------------------------------------------------------------


def as_sent(query: str) -> str:
    """A dashboard query as Prometheus receives it: Grafana's interval variables become a
    duration; template variables (used only inside regex matchers) match anything."""
    return GRAFANA_VARIABLE.sub(lambda m: "5m" if m[1].startswith("__") else ".*", query)


def variables_used(query: str) -> set[str]:
    return {m[1] for m in GRAFANA_VARIABLE.finditer(query) if not m[1].startswith("__")}


def parsed(expr: str) -> promql_parser.Expr:
    return promql_parser.parse(as_sent(expr))


def selectors(expr: str) -> list[tuple[str, set[str]]]:
    """Every (metric, labels it filters on) an expression reads."""
    found = []

    def visit(node):
        if isinstance(node, promql_parser.VectorSelector):
            assert node.name, f"a selector without a metric name in {expr!r}"
            found.append((node.name, {m.name for m in node.matchers.matchers}))

    promql_parser.walk(parsed(expr), visit)
    return found


def grouping_labels(expr: str) -> set[str]:
    """The labels of every `by (…)` / `without (…)` and `on (…)` / `ignoring (…)`."""
    labels: set[str] = set()

    def visit(node):
        if isinstance(node, promql_parser.AggregateExpr) and node.modifier is not None:
            labels.update(node.modifier.labels)
        matching = getattr(node, "modifier", None) and getattr(node.modifier, "matching", None)
        if isinstance(node, promql_parser.BinaryExpr) and matching is not None:
            labels.update(matching.labels)

    promql_parser.walk(parsed(expr), visit)
    return labels


def variable_queries() -> list[tuple[str, str]]:
    """(selector, label) of every query variable's `label_values(SELECTOR, LABEL)`."""
    found = []
    for variable in dashboard()["templating"]["list"]:
        if variable["type"] == "query":
            match = LABEL_VALUES.match(variable["query"]["query"])
            assert match, f"variable {variable['name']}: not label_values(SELECTOR, LABEL)"
            found.append((match["selector"], match["label"]))
    return found


def dashboard_queries() -> list[str]:
    """Every panel target's expression and every query variable's selector."""
    targets = [target["expr"] for panel in panels() for target in panel["targets"]]
    return targets + [selector for selector, _ in variable_queries()]


def all_queries() -> list[str]:
    return dashboard_queries() + [rule["expr"] for rule in rules()]


# --- Grafana's dashboard model ---------------------------------------------------------------


def model_violations(model: object, path: str) -> list[str]:
    return [
        problem
        for name, hint in typing.get_type_hints(type(model)).items()
        for problem in violations(getattr(model, name), hint, f"{path}.{name}")
    ]


def violations(value, hint, path: str) -> list[str]:
    """Where a decoded value does not have the type the generated model declares (the SDK
    decodes without checking: an unknown enum value or a string for a number passes)."""
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if hint in (typing.Any, object):
        # Untyped in the dashboard model (a panel's options): typed by the panel plugin's model.
        return model_violations(value, path) if hasattr(value, "to_json") else []
    if origin in (typing.Union, types.UnionType):
        branches = [a for a in args if a is not type(None)] if value is not None else []
        found = [violations(value, branch, path) for branch in branches]
        if value is None or any(not problems for problems in found):
            return []
        decoded_as = [p for b, p in zip(branches, found, strict=True) if _is_model_of(value, b)]
        return (decoded_as or found)[0]
    if origin is typing.Literal:
        return [] if value in args else [f"{path}: {value!r} is not one of {args}"]
    if origin is list:
        if not isinstance(value, list):
            return [f"{path}: {value!r} is not a list"]
        return [
            p for i, item in enumerate(value) for p in violations(item, args[0], f"{path}[{i}]")
        ]
    if origin is dict:
        if not isinstance(value, dict):
            return [f"{path}: {value!r} is not an object"]
        return [p for k, item in value.items() for p in violations(item, args[1], f"{path}.{k}")]
    if isinstance(hint, type) and issubclass(hint, enum.Enum):
        allowed = sorted(str(member.value) for member in hint)
        ok = isinstance(value, hint) or value in allowed or value in [m.value for m in hint]
        return [] if ok else [f"{path}: {value!r} is not one of {allowed}"]
    if hint in (int, float):
        ok = isinstance(value, int if hint is int else (int, float)) and not isinstance(value, bool)
        return [] if ok else [f"{path}: {value!r} is not a {hint.__name__}"]
    if hint in (str, bool):
        return [] if isinstance(value, hint) else [f"{path}: {value!r} is not a {hint.__name__}"]
    if isinstance(value, dict) and hasattr(hint, "from_json"):
        return violations(hint.from_json(value), hint, path)  # left undecoded by its parent
    if not isinstance(value, hint):
        return [f"{path}: {value!r} is not a {hint.__name__}"]
    return model_violations(value, path)


def _is_model_of(value, hint) -> bool:
    return isinstance(hint, type) and hasattr(hint, "to_json") and isinstance(value, hint)


def not_kept(written, decoded, path: str = "") -> list[str]:
    """What of the file a decode → encode round trip lost or changed: keys outside the schema."""
    if isinstance(written, dict) and isinstance(decoded, dict):
        return [
            problem
            for key, value in written.items()
            for problem in (
                not_kept(value, decoded[key], f"{path}.{key}")
                if key in decoded
                else [f"{path}.{key}: not in Grafana's dashboard schema"]
            )
        ]
    if isinstance(written, list) and isinstance(decoded, list) and len(written) == len(decoded):
        return [
            p
            for i, pair in enumerate(zip(written, decoded, strict=True))
            for p in not_kept(*pair, f"{path}[{i}]")
        ]
    return [] if written == decoded else [f"{path}: {written!r} read back as {decoded!r}"]


def test_the_dashboard_loads_in_grafanas_dashboard_model():
    register_default_plugins()  # decode Prometheus targets and each panel type's options
    written = dashboard()
    model = Dashboard.from_json(written)
    assert model_violations(model, "dashboard") == []
    assert not_kept(written, json.loads(json.dumps(model, cls=JSONEncoder))) == []


def test_the_dashboard_is_laid_out_and_queries_through_its_datasource_variable():
    board = dashboard()
    assert isinstance(board["schemaVersion"], int) and board["schemaVersion"] >= 36
    assert board["uid"] and board["title"]
    ids = [panel["id"] for panel in board["panels"]]
    assert len(ids) == len(set(ids))
    cells: dict[tuple[int, int], int] = {}
    for panel in board["panels"]:
        grid = panel["gridPos"]
        assert grid["x"] >= 0 and grid["w"] > 0 and grid["x"] + grid["w"] <= 24, panel["title"]
        for x in range(grid["x"], grid["x"] + grid["w"]):
            for y in range(grid["y"], grid["y"] + grid["h"]):
                assert (x, y) not in cells, f"panels {cells.get((x, y))} and {panel['id']} overlap"
                cells[(x, y)] = panel["id"]

    variables = {v["name"]: v for v in board["templating"]["list"]}
    assert variables["datasource"]["type"] == "datasource"
    assert variables["datasource"]["query"] == "prometheus"
    via_variable = {"type": "prometheus", "uid": "${datasource}"}
    for panel in panels():
        assert panel["datasource"] == via_variable, panel["title"]
        assert panel["targets"], panel["title"]
        ref_ids = [target["refId"] for target in panel["targets"]]
        assert len(ref_ids) == len(set(ref_ids)), panel["title"]
        for target in panel["targets"]:
            assert target["datasource"] == via_variable
            assert variables_used(target["expr"]) <= set(variables), target["expr"]
    for query in dashboard_queries():
        parsed(query)  # raises on a query Prometheus would refuse


# --- Prometheus rules --------------------------------------------------------------------------


# The labels each alert carries besides its rule's, which its messages may name (checked against
# a real scrape in test_every_metric_queried_is_in_a_scrape_of_the_service, and by promtool).
LABELS_OF_RULES = {
    "AccountingTenantFailing": {"tenant", "system"},
    "AccountingTenantLastImportFailed": {"tenant", "system"},
    "AccountingImportStale": {"tenant", "system", "entity"},
    "AccountingErrorSpike": {"category"},
    "AccountingReconnectNeeded": {"tenant", "system"},
    "AccountingRunQueueNotDraining": set(),
    "AccountingDagsterDaemonDown": set(),
    "AccountingDagsterInstanceNotRead": set(),
    "AccountingMetricsMissing": set(),
}


def test_the_rules_file_has_prometheus_rule_file_shape():
    document = yaml.safe_load(RULES.read_text())
    assert set(document) == {"groups"}
    names = [group["name"] for group in document["groups"]]
    assert len(names) == len(set(names))
    alerts = []
    for group in document["groups"]:
        assert set(group) <= {"name", "interval", "limit", "rules"}
        for rule in group["rules"]:
            assert set(rule) <= RULE_KEYS, rule
            assert re.fullmatch(r"[A-Z][A-Za-z]+", rule["alert"])
            alerts.append(rule["alert"])
            parsed(rule["expr"])
            assert DURATION.match(rule.get("for", "0s")), rule["alert"]
            assert rule["labels"]["severity"] in SEVERITIES, rule["alert"]
            assert {"summary", "description"} <= set(rule["annotations"]), rule["alert"]
            named = set(re.findall(r"\$labels\.(\w+)", json.dumps(rule["annotations"])))
            assert named <= LABELS_OF_RULES[rule["alert"]], (rule["alert"], named)
    assert sorted(alerts) == sorted(LABELS_OF_RULES)  # each alert once, each declared
    assert set(alerts) >= {
        "AccountingTenantFailing",
        "AccountingImportStale",
        "AccountingErrorSpike",
        "AccountingReconnectNeeded",
    }


@needs_promtool
def test_promtool_accepts_the_rules_and_the_scrape_config():
    for command in (["check", "rules", str(RULES)], ["check", "config", str(PROMETHEUS_CONFIG)]):
        done = subprocess.run([PROMTOOL, *command], capture_output=True, text=True, timeout=60)
        assert done.returncode == 0, done.stdout + done.stderr


def series(name: str, labels: dict[str, str], values: str) -> dict:
    inner = ",".join(f'{key}="{value}"' for key, value in sorted(labels.items()))
    return {"series": f"{name}{{{inner}}}", "values": values}


def fired(alert: str, *label_sets: dict[str, str]) -> list[dict]:
    """The alerts promtool should see, with the rule's own labels (annotations are stripped in
    the copy of the rules promtool runs: their text is not the point)."""
    rule = next(rule for rule in rules() if rule["alert"] == alert)
    return [{"exp_labels": {**rule["labels"], **labels}} for labels in label_sets]


def at(eval_time: str, alert: str, *label_sets: dict[str, str]) -> dict:
    return {"eval_time": eval_time, "alertname": alert, "exp_alerts": fired(alert, *label_sets)}


ACME = {"tenant": "acme", "system": "xero"}
BETA = {"tenant": "beta", "system": "tally"}
UP = series("accounting_sync_duration_seconds_count", {}, "0x300")  # a scrape answers

SYNTHETIC_TESTS = [
    {  # three failures in a row: critical at once; one failure: a warning after two hours
        "interval": "1m",
        "input_series": [
            series("accounting_consecutive_failures", ACME, "0 1 2 3x200"),
            series("accounting_consecutive_failures", BETA, "0 0 1x200"),
        ],
        "alert_rule_test": [
            at("2m", "AccountingTenantFailing"),
            at("4m", "AccountingTenantFailing", ACME),
            at("1h50m", "AccountingTenantLastImportFailed"),
            at("2h5m", "AccountingTenantLastImportFailed", ACME, BETA),
        ],
    },
    {  # ages grow a minute a minute; invoices every 6 h (stale after 12 h), customers daily
        "interval": "1m",
        "input_series": [
            series("accounting_import_age_seconds", {**ACME, "entity": "invoices"}, "0+60x800"),
            series(
                "accounting_import_interval_seconds", {**ACME, "entity": "invoices"}, "21600x800"
            ),
            series("accounting_import_age_seconds", {**ACME, "entity": "customers"}, "0+60x800"),
            series(
                "accounting_import_interval_seconds", {**ACME, "entity": "customers"}, "86400x800"
            ),
            # manual: no period, never stale
            series("accounting_import_age_seconds", {**BETA, "entity": "invoices"}, "0+600x800"),
        ],
        "alert_rule_test": [
            at("12h10m", "AccountingImportStale"),
            at("12h20m", "AccountingImportStale", {**ACME, "entity": "invoices"}),
        ],
    },
    {  # AUTH errors at 5 a minute spike; 1 a minute does not; a drop (archived rows) is no spike
        "interval": "1m",
        "input_series": [
            series("accounting_sync_errors_total", {"category": "AUTH"}, "0+5x60"),
            series("accounting_sync_errors_total", {"category": "SOURCE_DATA"}, "0+1x60"),
            series("accounting_sync_errors_total", {"category": "NETWORK"}, "1000x30 900x30"),
        ],
        "alert_rule_test": [
            at("40m", "AccountingErrorSpike", {"category": "AUTH"}),
        ],
    },
    {
        "interval": "1m",
        "input_series": [
            series("accounting_reconnect_needed", ACME, "0 0 1x10"),
            series("accounting_reconnect_needed", BETA, "0x12"),
        ],
        "alert_rule_test": [
            at("1m", "AccountingReconnectNeeded"),
            at("3m", "AccountingReconnectNeeded", ACME),
        ],
    },
    {  # a queue that never empties for two hours, and one that emptied once
        "interval": "1m",
        "input_series": [
            series("accounting_queue_size", {"instance": "a"}, "5x130"),
            series("accounting_queue_size", {"instance": "b"}, "5x60 0 5x70"),
        ],
        "alert_rule_test": [
            at("2h5m", "AccountingRunQueueNotDraining", {"instance": "a"}),
        ],
    },
    {  # the daemon beats (its timestamp keeps up with the clock) until 10 min, then stops
        "interval": "1m",
        "input_series": [
            series(
                "accounting_dagster_daemon_heartbeat_timestamp",
                {"daemon": "SCHEDULER"},
                "0+60x10 600x20",
            ),
            UP,
        ],
        "alert_rule_test": [
            at("14m", "AccountingDagsterDaemonDown"),
            at("16m", "AccountingDagsterDaemonDown", {}),
            at("30m", "AccountingDagsterInstanceNotRead"),
            at("30m", "AccountingMetricsMissing"),
        ],
    },
    {  # scrapes answer, without any heartbeat: a DAGSTER_HOME that is not the deployment's
        "interval": "1m",
        "input_series": [UP],
        "alert_rule_test": [
            at("10m", "AccountingDagsterInstanceNotRead"),
            at("20m", "AccountingDagsterInstanceNotRead", {}),
        ],
    },
    {  # no scrape answers at all
        "interval": "1m",
        "input_series": [series("accounting_queue_size", {}, "0x30")],
        "alert_rule_test": [
            at("5m", "AccountingMetricsMissing"),
            at("15m", "AccountingMetricsMissing", {}),
            at("15m", "AccountingDagsterInstanceNotRead"),
        ],
    },
]


def promtool_test(tmp_path: Path, tests: list[dict]) -> None:
    """Run `promtool test rules` on a copy of alerts.yml without its annotations."""
    document = yaml.safe_load(RULES.read_text())
    for group in document["groups"]:
        for rule in group["rules"]:
            rule.pop("annotations", None)
    (tmp_path / "rules.yml").write_text(yaml.safe_dump(document))
    suite = {"rule_files": ["rules.yml"], "evaluation_interval": "1m", "tests": tests}
    (tmp_path / "tests.yml").write_text(yaml.safe_dump(suite, sort_keys=False))
    done = subprocess.run(
        [PROMTOOL, "test", "rules", "tests.yml"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stdout + done.stderr


@needs_promtool
def test_the_alerts_fire_when_they_should_and_not_otherwise(tmp_path):
    promtool_test(tmp_path, SYNTHETIC_TESTS)


# --- against the service's real metrics --------------------------------------------------------


def history(tenant_of) -> Tenant:  # noqa: F811
    """What the metrics read, written as real syncs write it: a Zoho Books tenant imported, then
    failing on AUTH (a revoked refresh token, recorded as the failure sensor records it), a sync
    still running, and a daemon heartbeat in the service's Dagster instance."""
    # Few records: what matters is the rows the syncs leave, not what they import.
    books = generated.generate(seed=5, parties=3, sales=6, as_of=AS_OF)
    tenant = tenant_of("zoho_books", books, requests_per_minute=FAST)
    assert tenant.materialize().success
    tenant.register(refresh_token="1000.revoked.token")
    failed = tenant.materialize("customers")
    assert not failed.success
    with psycopg.connect(tenant.warehouse_url) as conn:
        audit.record_run_failure(
            conn,
            run_id=failed.run_id,
            partition_key=TENANT,
            tenant_id=TENANT,
            system="zoho_books",
            error=SyncError(Category.AUTH, "the refresh token was revoked"),
            entity="customers",
        )
        (config_id,) = conn.execute("SELECT id FROM hub.accounting_configs").fetchone()
        audit.start_sync_log(
            conn,
            config_id=config_id,
            tenant_id=TENANT,
            system="zoho_books",
            entity="invoices",
            sync_type="incremental",
            run_id="a-run-still-going",
            partition_key=TENANT,
            cursor_before=None,
        )
    health.dagster_instance().add_daemon_heartbeat(
        DaemonHeartbeat(time.time(), "SCHEDULER", "test-daemon", None)
    )
    return tenant


def scrape() -> str:
    with LoopbackServer(build_app()) as server:
        answer = httpx.get(f"{server.url}/metrics", timeout=60)
    assert answer.status_code == 200
    return answer.text


def labels_by_metric(samples: dict[tuple[str, tuple], float]) -> dict[str, set[str]]:
    labels: dict[str, set[str]] = defaultdict(set)
    for name, pairs in samples:
        labels[name].update(key for key, _ in pairs)
    return labels


def test_every_metric_queried_is_in_a_scrape_of_the_service(service_env, tenant_of):  # noqa: F811
    history(tenant_of)
    exported = labels_by_metric(scraped(scrape()))
    for query in all_queries():
        metrics = selectors(query)
        for metric, filtered in metrics:
            assert metric in exported, f"{metric} (in {query!r}) has no sample in the scrape"
            assert filtered <= exported[metric], (query, filtered - exported[metric])
        carried = set().union(*(exported[metric] for metric, _ in metrics))
        assert grouping_labels(query) <= carried, (query, grouping_labels(query) - carried)
    for rule in rules():
        carried = set().union(*(exported[metric] for metric, _ in selectors(rule["expr"])))
        assert LABELS_OF_RULES[rule["alert"]] <= carried, rule["alert"]
    for selector, label in variable_queries():
        ((metric, _),) = selectors(selector)
        assert label in exported[metric], (selector, label)


@needs_promtool
def test_the_alerts_on_a_real_scrape(service_env, tenant_of, tmp_path):  # noqa: F811
    """The scrape after an AUTH failure, held for two hours: the tenant needs reconnecting at
    once, its last import failed for two hours; nothing else fires."""
    history(tenant_of)
    samples = scraped(scrape())
    held = [
        series(name, dict(labels), f"{value!r}x150") for (name, labels), value in samples.items()
    ]
    tenant = {"tenant": TENANT, "system": "zoho_books"}
    checks = [at("2h5m", "AccountingReconnectNeeded", tenant)]
    checks.append(at("2h5m", "AccountingTenantLastImportFailed", tenant))
    quiet = set(LABELS_OF_RULES) - {c["alertname"] for c in checks}
    checks += [at("2h5m", alert) for alert in sorted(quiet)]
    promtool_test(tmp_path, [{"interval": "1m", "input_series": held, "alert_rule_test": checks}])


def test_the_added_metrics_follow_the_configs_and_the_audit_trail(service_env, tenant_of):  # noqa: F811
    tenant = history(tenant_of)
    registry, connection = tenant.registry, tenant.simulated.connection_config(tenant.server.url)
    manual = {"customers_frequency": "manual", "entities": ["customers"]}
    registry.add("by-hand", "zoho_books", {"connection_config": connection, "sync_config": manual})
    registry.add("paused", "zoho_books", {"connection_config": connection, "sync_config": {}})
    registry.set_enabled("paused", "zoho_books", False)

    samples = scraped(scrape())

    def value(name: str, **labels: str) -> float | None:
        return samples.get((name, tuple(sorted(labels.items()))))

    ours = {"tenant": TENANT, "system": "zoho_books"}
    by_hand = {"tenant": "by-hand", "system": "zoho_books"}
    assert value("accounting_consecutive_failures", **ours) == 1
    assert value("accounting_consecutive_failures", **by_hand) == 0
    assert value("accounting_reconnect_needed", **ours) == 1
    assert value("accounting_reconnect_needed", **by_hand) == 0
    assert not [key for key in samples if ("tenant", "paused") in key[1]]  # paused: not judged

    ages = dict(
        tenant.query(
            "SELECT l.entity_type, extract(epoch FROM now() - max(l.completed_at)) "
            "FROM hub.accounting_sync_logs l WHERE l.tenant_id = %s AND l.status = 'success' "
            "GROUP BY 1",
            (TENANT,),
        )
    )
    for entity in ("customers", "invoices"):
        age = value("accounting_import_age_seconds", **ours, entity=entity)
        assert float(ages[entity]) - 5 <= age <= float(ages[entity]) + 5
    ((registered,),) = tenant.query(
        "SELECT extract(epoch FROM now() - created_at) FROM hub.accounting_configs "
        "WHERE tenant_id = 'by-hand'"
    )
    by_hand_age = value("accounting_import_age_seconds", **by_hand, entity="customers")
    assert float(registered) - 5 <= by_hand_age <= float(registered) + 5
    assert value("accounting_import_age_seconds", **by_hand, entity="invoices") is None
    assert value("accounting_import_interval_seconds", **ours, entity="customers") == 86400
    assert value("accounting_import_interval_seconds", **ours, entity="invoices") == 6 * 3600
    assert value("accounting_import_interval_seconds", **by_hand, entity="customers") is None

    heartbeat = value("accounting_dagster_daemon_heartbeat_timestamp", daemon="SCHEDULER")
    assert time.time() - 60 < heartbeat <= time.time()

    # Reconnecting stores new credentials and tests them: the alert clears before any import.
    tenant.register()
    result, _ = check_connection(registry, TENANT, "zoho_books")
    assert result.success
    samples = scraped(scrape())
    assert value("accounting_reconnect_needed", **ours) == 0
    assert value("accounting_consecutive_failures", **ours) == 1  # until an import succeeds


def test_the_dagster_metrics_are_left_out_when_the_instance_does_not_answer(
    service_env,  # noqa: F811
    tmp_path,
    monkeypatch,
):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    monkeypatch.setenv("DAGSTER_HOME", str(blocker / "dagster"))
    names = {name for name, _ in scraped(scrape())}
    assert "accounting_sync_duration_seconds_count" in names
    assert "accounting_queue_size" not in names
    assert "accounting_dagster_daemon_heartbeat_timestamp" not in names
