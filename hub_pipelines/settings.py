"""Where the hub keeps its local state, and the local environment file the demo writes.

`HUB_HOME` (default `./.hub`) holds the embedded PostgreSQL data directory, the Dagster instance of
local runs and `hub.env`, a development-only file of variables (the demo's generated encryption
key). Real deployments set those variables in the environment instead; a variable that is set
always wins over the file.
"""

from __future__ import annotations

import os
from pathlib import Path

SYSTEMS = ("tally", "busy", "zoho_books", "quickbooks", "xero")
TENANT_SLUG_PATTERN = r"^[a-z0-9][a-z0-9_-]{0,62}$"
LOCAL_ENV_FILE = "hub.env"


def hub_home() -> Path:
    return Path(os.environ.get("HUB_HOME", ".hub")).expanduser().resolve()


def dagster_home() -> Path:
    return Path(os.environ.get("DAGSTER_HOME") or hub_home() / "dagster").expanduser().resolve()


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


def load_local_env() -> None:
    """Fill unset variables from `$HUB_HOME/hub.env` (KEY=VALUE lines), if that file exists."""
    path = hub_home() / LOCAL_ENV_FILE
    if not path.is_file():
        return
    for line in path.read_text().splitlines():
        key, sep, value = line.strip().partition("=")
        if sep and key and not key.startswith("#"):
            os.environ.setdefault(key.strip(), value.strip())


def write_local_env(key: str, value: str) -> Path:
    """Add or replace one variable in `$HUB_HOME/hub.env`, readable by the owner only."""
    path = hub_home() / LOCAL_ENV_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    lines = path.read_text().splitlines() if path.exists() else []
    kept = [line for line in lines if not line.startswith(f"{key}=")]
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write("\n".join([*kept, f"{key}={value}"]) + "\n")
    return path
