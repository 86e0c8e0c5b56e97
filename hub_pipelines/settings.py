"""Where the hub keeps its local state, and the local environment file the demo writes.

`HUB_HOME` holds the embedded PostgreSQL data directory, the Dagster instance of local runs and
`hub.env`, a development-only file of variables (the demo's generated encryption key). Its default
does not depend on the current directory: `.hub` in the source checkout (the folder holding this
project's pyproject.toml) when the package runs from one, else `~/.hub`. The `hub` command and the
Dagster code location (`hub_pipelines/definitions.py`) both load `hub.env`, so runs launched from
a plain `dagster dev` / `dg dev` see the same variables as `hub dev`. Real deployments set those
variables in the environment instead; a variable that is set always wins over the file.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

SYSTEMS = ("tally", "busy", "zoho_books", "quickbooks", "xero")
TENANT_SLUG_PATTERN = r"^[a-z0-9][a-z0-9_-]{0,62}$"
LOCAL_ENV_FILE = "hub.env"
# The Dagster code location, named alike in workspace.yaml, [tool.dagster] and [tool.dg] of
# pyproject.toml and `hub dev`'s workspace: run history, schedule and sensor state go by name.
CODE_LOCATION_MODULE = "hub_pipelines.definitions"
CODE_LOCATION_NAME = "hub_pipelines"


def source_checkout() -> Path | None:
    """The source checkout this package runs from (editable install), or None when installed."""
    root = Path(__file__).resolve().parents[1]
    return root if (root / "pyproject.toml").is_file() else None


def default_hub_home() -> Path:
    """`.hub` in the source checkout, else `~/.hub`: the same folder from any working directory."""
    checkout = source_checkout()
    return checkout / ".hub" if checkout is not None else Path.home() / ".hub"


def env_setting(name: str, default: str) -> str:
    """A setting's value, blank meaning unset (as Compose and Kubernetes pass an unset variable
    through) like every other variable the hub reads."""
    return os.environ.get(name, "").strip() or default


def env_seconds(name: str, default: float, minimum: float = 0) -> float:
    """A number of seconds from the environment, or a ValueError naming the variable."""
    value = env_setting(name, str(default))
    try:
        seconds = float(value)
    except ValueError:
        seconds = None
    if seconds is None or not seconds >= minimum:  # also refuses nan
        raise ValueError(f"{name} must be a number of seconds of at least {minimum}, got {value!r}")
    return seconds


def schedule_timezone() -> str:
    """The import and retention schedules' time zone (`HUB_SCHEDULE_TIMEZONE`, an IANA name)."""
    from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

    name = env_setting("HUB_SCHEDULE_TIMEZONE", "Asia/Kolkata")
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(
            f"HUB_SCHEDULE_TIMEZONE must be an IANA time zone name such as Asia/Kolkata, "
            f"got {name!r}"
        ) from None
    return name


def hub_home() -> Path:
    given = os.environ.get("HUB_HOME")
    return Path(given).expanduser().resolve() if given else default_hub_home()


def dagster_home() -> Path:
    return Path(os.environ.get("DAGSTER_HOME") or hub_home() / "dagster").expanduser().resolve()


def landing_dir() -> Path:
    """Where files land to be imported, laid out `<system>/<tenant>/` (`HUB_LANDING_DIR`)."""
    given = os.environ.get("HUB_LANDING_DIR")
    return Path(given).expanduser().resolve() if given else hub_home() / "landing"


def ensure_dagster_home() -> Path:
    """Create DAGSTER_HOME with the project's dagster.yaml (run queue, per-system limits)."""
    import shutil

    home = dagster_home()
    home.mkdir(parents=True, exist_ok=True)
    project_config = Path(__file__).resolve().parents[1] / "dagster.yaml"
    if project_config.exists() and not (home / "dagster.yaml").exists():
        shutil.copyfile(project_config, home / "dagster.yaml")
    os.environ["DAGSTER_HOME"] = str(home)
    return home


def write_dev_workspace() -> Path:
    """`$DAGSTER_HOME/workspace.yaml`: the code location by module, loadable from any folder."""
    path = dagster_home() / "workspace.yaml"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(
        "# Written by `hub dev` on every start.\n"
        "load_from:\n"
        "  - python_module:\n"
        f"      module_name: {CODE_LOCATION_MODULE}\n"
        f"      location_name: {CODE_LOCATION_NAME}\n"
    )
    return path


class LocalEnvError(ValueError):
    """`hub.env` cannot be read; the message names the file and the fix."""


def load_local_env() -> None:
    """Fill unset variables from `$HUB_HOME/hub.env`, if that file exists.

    The usual `.env` syntax, read by python-dotenv: `export K=v`, quoted values and trailing
    `# comments` give the value without them. Values are taken literally (no `${VAR}`
    expansion): a key or password containing `$` stays as written.
    """
    from dotenv import dotenv_values

    path = hub_home() / LOCAL_ENV_FILE
    if not path.is_file():
        return
    try:
        values = dotenv_values(path, interpolate=False, encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise LocalEnvError(
            f"{path} is not UTF-8 text (byte {exc.object[exc.start]:#04x} at offset "
            f"{exc.start}); save it as UTF-8 or remove it"
        ) from None
    for key, value in values.items():
        if value is not None:  # a bare `KEY` line sets nothing
            os.environ.setdefault(key, value)


_BARE_VALUE = re.compile(r"[A-Za-z0-9_./:+=@,%-]*")


def _env_line(key: str, value: str) -> str:
    """`KEY=value`, single-quoted when the value holds anything .env syntax would change."""
    if _BARE_VALUE.fullmatch(value):
        return f"{key}={value}"
    escaped = value.replace("\\", "\\\\").replace("'", "\\'")
    return f"{key}='{escaped}'"


def write_local_env(key: str, value: str) -> Path:
    """Add or replace one variable in `$HUB_HOME/hub.env`, readable by the owner only. Lines
    defining KEY in any form `load_local_env` reads (`export KEY=…`, `KEY = …`) are replaced."""
    path = hub_home() / LOCAL_ENV_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    lines = path.read_text(encoding="utf-8").splitlines() if path.exists() else []
    defines = re.compile(rf"\s*(?:export\s+)?{re.escape(key)}\s*=")
    kept = [line for line in lines if not defines.match(line)]
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        handle.write("\n".join([*kept, _env_line(key, value)]) + "\n")
    return path
