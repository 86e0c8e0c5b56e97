"""`hub dev`: options passed through to `dg dev`, any working folder, the local env file loaded by
the code location itself, and one real start answering GraphQL."""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

import hub_pipelines
from hub_pipelines import cli, settings
from hub_pipelines.vault import KEY_VARIABLE, generate_key

CHECKOUT = Path(hub_pipelines.__file__).resolve().parents[1]
BIN_DIR = Path(sys.executable).parent
ANY = "0.0.0.0"  # noqa: S104 (only parsed here, never bound)


# --- the command line -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("argv", "passed"),
    [
        (["dev"], []),
        (["dev", "-p", "3001"], ["-p", "3001"]),
        (["dev", "-p", "3001", "--host", ANY], ["-p", "3001", "--host", ANY]),
        (["dev", "--port=3001", "-h", ANY], ["--port=3001", "-h", ANY]),
        (["dev", "--", "--log-level", "debug"], ["--log-level", "debug"]),
        (["dev", "--", "-p", "3001"], ["-p", "3001"]),  # issue 7: `dg dev` rejects the `--`
        (
            ["dev", "-p", "3001", "--", "--log-level", "debug"],
            ["-p", "3001", "--log-level", "debug"],
        ),
    ],
)
def test_hub_dev_passes_options_to_dg_dev(argv: list[str], passed: list[str]) -> None:
    args = cli.parse_args(argv)
    assert args.func is cli.cmd_dev
    command = cli.dev_command(
        "/venv/bin/dg", "/home/.hub/dagster/workspace.yaml", args.dagster_args
    )
    assert command == ["/venv/bin/dg", "dev", "-w", "/home/.hub/dagster/workspace.yaml", *passed]


def test_a_target_of_ones_own_replaces_the_hub_workspace() -> None:
    args = cli.parse_args(["dev", "-m", "other.definitions", "-p", "3001"])
    command = cli.dev_command("dg", "/ws.yaml", args.dagster_args)
    assert command == ["dg", "dev", "-m", "other.definitions", "-p", "3001"]
    assert cli.dev_command("dg", "/ws.yaml", ["--workspace=/mine.yaml"]) == [
        "dg",
        "dev",
        "--workspace=/mine.yaml",
    ]


def test_other_commands_still_reject_unknown_options(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        cli.parse_args(["tenants", "list", "-p", "3001"])
    assert exit_info.value.code == cli.EXIT_BAD_INPUT
    assert "unrecognized arguments: -p 3001" in capsys.readouterr().err


def test_hub_dev_help_is_its_own(
    capsys: pytest.CaptureFixture[str],
) -> None:
    with pytest.raises(SystemExit) as exit_info:
        cli.parse_args(["dev", "--help"])
    assert exit_info.value.code == 0
    assert "passed through" in capsys.readouterr().out


def test_dev_program_prefers_dg(tmp_path: Path) -> None:
    assert cli.dev_program(str(tmp_path)) == str(tmp_path / "dagster")
    dg = tmp_path / "dg"
    dg.write_text("#!/bin/sh\n")
    dg.chmod(0o755)
    assert cli.dev_program(str(tmp_path)) == str(dg)
    # this project's dev extras install dagster-dg-cli: `hub dev` runs `dg dev`, not the
    # superseded `dagster dev` (which prints a SupersessionWarning on every start)
    assert cli.dev_program(str(BIN_DIR)) == str(BIN_DIR / "dg")


def test_dev_workspace_loads_the_code_location_by_module(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path / "instance"))
    path = settings.write_dev_workspace()
    assert path == tmp_path / "instance" / "workspace.yaml"
    text = path.read_text()
    assert "module_name: hub_pipelines.definitions" in text
    assert "location_name: hub_pipelines\n" in text


# --- HUB_HOME ---------------------------------------------------------------------------------


def test_hub_home_defaults_to_the_checkouts_dot_hub_from_any_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("HUB_HOME", raising=False)
    monkeypatch.chdir(tmp_path)
    assert (CHECKOUT / "pyproject.toml").is_file()
    assert settings.hub_home() == CHECKOUT / ".hub"


def test_hub_home_variable_wins_and_is_made_absolute(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("HUB_HOME", "state")
    assert settings.hub_home() == tmp_path / "state"
    monkeypatch.setenv("HUB_HOME", str(tmp_path / "elsewhere"))
    assert settings.hub_home() == tmp_path / "elsewhere"


def test_hub_home_outside_a_checkout_is_in_the_home_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The same settings.py, installed where no pyproject.toml sits above the package."""
    package = tmp_path / "site-packages" / "hub_pipelines"
    package.mkdir(parents=True)
    shutil.copyfile(settings.__file__, package / "settings.py")
    spec = importlib.util.spec_from_file_location("installed_settings", package / "settings.py")
    assert spec is not None and spec.loader is not None
    installed = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(installed)
    monkeypatch.delenv("HUB_HOME", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path / "user"))
    assert installed.source_checkout() is None
    assert installed.hub_home() == tmp_path / "user" / ".hub"


# --- hub.env ------------------------------------------------------------------------------------


def _unset(monkeypatch: pytest.MonkeyPatch, *names: str) -> None:
    """Unset NAMES and have them unset again after the test, whatever load_local_env set."""
    for name in names:
        monkeypatch.setenv(name, "")
        monkeypatch.delenv(name)


@pytest.mark.parametrize(
    ("line", "value"),
    [
        ("export HUB_T=v1", "v1"),  # was a variable named "export HUB_T"
        ('HUB_T="quoted value"', "quoted value"),  # the quotes used to stay in the value
        ("HUB_T='single'", "single"),
        ("HUB_T=plain # a comment", "plain"),  # so did the comment
        ('HUB_T="a#b"  # comment', "a#b"),
        ("HUB_T = spaced", "spaced"),
        ("HUB_T=has$dollar${HOME}", "has$dollar${HOME}"),  # literal: no expansion
        ("HUB_T=", ""),
    ],
)
def test_hub_env_is_read_with_dotenv_syntax(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, line: str, value: str
) -> None:
    monkeypatch.setenv("HUB_HOME", str(tmp_path))
    _unset(monkeypatch, "HUB_T")
    (tmp_path / settings.LOCAL_ENV_FILE).write_text(f"# local\n{line}\n")
    settings.load_local_env()
    assert os.environ["HUB_T"] == value


def test_hub_env_fills_only_unset_variables(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HUB_HOME", str(tmp_path))
    monkeypatch.setenv("HUB_T", "from the environment")
    _unset(monkeypatch, "HUB_BARE")
    (tmp_path / settings.LOCAL_ENV_FILE).write_text("HUB_T=from the file\nHUB_BARE\n")
    settings.load_local_env()
    assert os.environ["HUB_T"] == "from the environment"
    assert "HUB_BARE" not in os.environ  # a line without `=` sets nothing


@pytest.mark.parametrize("value", [generate_key(), "it's a \\ value # with spaces", ""])
def test_write_local_env_replaces_every_form_and_reads_back(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, value: str
) -> None:
    monkeypatch.setenv("HUB_HOME", str(tmp_path))
    _unset(monkeypatch, "HUB_T", "OTHER_T")
    path = tmp_path / settings.LOCAL_ENV_FILE
    path.write_text("# mine\nexport HUB_T=old\nHUB_T = older\nOTHER_T=kept\n")
    settings.write_local_env("HUB_T", value)
    assert "old" not in path.read_text() and "OTHER_T=kept" in path.read_text()
    settings.load_local_env()
    assert os.environ["HUB_T"] == value


def test_a_hub_env_that_is_not_utf8_exits_2_naming_the_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("HUB_HOME", str(tmp_path))
    _unset(monkeypatch, "HUB_T")
    (tmp_path / settings.LOCAL_ENV_FILE).write_bytes("HUB_T=Société\n".encode("latin-1"))
    assert cli.main(["keys", "generate"]) == cli.EXIT_BAD_INPUT
    assert f"{tmp_path / settings.LOCAL_ENV_FILE} is not UTF-8" in capsys.readouterr().err


# --- the code location loads hub.env ------------------------------------------------------------


def _environment(**changes: str) -> dict[str, str]:
    env = {
        name: value
        for name, value in os.environ.items()
        if name not in {KEY_VARIABLE, "DAGSTER_HOME", "HUB_HOME"}
    }
    env.update(changes)
    return env


def test_importing_the_code_location_loads_hub_env_from_any_folder(tmp_path: Path) -> None:
    """What a plain `dagster dev` / `dg dev` does: import the module, with no `hub` around it."""
    home = tmp_path / "home"
    home.mkdir()
    key = generate_key()
    (home / settings.LOCAL_ENV_FILE).write_text(f"# the demo's key\n{KEY_VARIABLE}={key}\n")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    result = subprocess.run(
        [
            sys.executable,
            "-c",
            f"import hub_pipelines.definitions, os; print(os.environ.get({KEY_VARIABLE!r}))",
        ],
        cwd=elsewhere,
        env=_environment(HUB_HOME=str(home)),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().splitlines()[-1] == key


# --- one real start ---------------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


LOCATIONS_QUERY = (
    "{ version workspaceOrError { ... on Workspace { locationEntries { name loadStatus "
    "locationOrLoadError { __typename ... on RepositoryLocation { repositories { name } } "
    "... on PythonError { message } } } } } }"
)


def _graphql(port: int, query: str) -> dict | None:
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}/graphql",
        data=json.dumps({"query": query}).encode(),
        headers={"Content-Type": "application/json"},
        method="POST",
    )
    try:
        with urllib.request.urlopen(request, timeout=5) as response:  # noqa: S310 (loopback)
            return json.load(response)["data"]
    except (OSError, urllib.error.URLError, ValueError):
        return None


def _stop(process: subprocess.Popen[bytes]) -> int:
    """SIGTERM to the whole process group (dg dev, webserver, daemon, code server); SIGKILL after
    30 s if anything is left."""
    try:
        os.killpg(process.pid, signal.SIGTERM)
        return process.wait(timeout=30)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        return process.wait(timeout=10)
    except ProcessLookupError:
        return process.wait(timeout=10)


def test_hub_dev_starts_from_another_folder_and_serves_the_code_location(
    tmp_path: Path, warehouse_url: str
) -> None:
    home = tmp_path / "home"
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    port = _free_port()
    log_path = tmp_path / "hub-dev.log"
    env = _environment(HUB_HOME=str(home), HUB_DATABASE_URL=warehouse_url)
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            [str(BIN_DIR / "hub"), "dev", "-p", str(port), "--", "--log-level", "info"],
            cwd=elsewhere,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    entries: list[dict] = []
    try:
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline and process.poll() is None:
            data = _graphql(port, LOCATIONS_QUERY)
            if data and data["workspaceOrError"].get("locationEntries"):
                entries = data["workspaceOrError"]["locationEntries"]
                if all(entry["loadStatus"] == "LOADED" for entry in entries):
                    break
            time.sleep(1)
    finally:
        exit_code = _stop(process)
    output = log_path.read_text(errors="replace")
    assert entries, f"no GraphQL answer on port {port}:\n{output[-3000:]}"
    assert [entry["name"] for entry in entries] == ["hub_pipelines"]
    location = entries[0]["locationOrLoadError"]
    assert location["__typename"] == "RepositoryLocation", location
    assert exit_code == 0, output[-3000:]
    assert (home / "dagster" / "dagster.yaml").is_file()  # the project's instance config
    assert "SupersessionWarning" not in output
    assert "Found a dagster instance configuration value" not in output
