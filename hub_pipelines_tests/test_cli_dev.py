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

import psutil
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


@pytest.mark.parametrize(
    ("argv", "passed", "service_port", "no_service"),
    [
        (["dev", "-p", "3001"], ["-p", "3001"], 8080, False),
        (["dev", "-p", "3001", "--service-port", "9000"], ["-p", "3001"], 9000, False),
        (["dev", "--service-port=9001", "--host", ANY], ["--host", ANY], 9001, False),
        (
            ["dev", "--no-service", "--", "--log-level", "debug"],
            ["--", "--log-level", "debug"],
            8080,
            True,
        ),
        (["dev", "--", "--service-port", "9002"], ["--", "--service-port", "9002"], 8080, False),
    ],
)
def test_hub_devs_own_options_are_taken_out_before_dg_dev_gets_the_rest(
    argv: list[str], passed: list[str], service_port: int, no_service: bool
) -> None:
    args = cli.parse_args(argv)
    assert args.dagster_args == passed
    assert (args.service_port, args.no_service) == (service_port, no_service)


def test_a_service_port_out_of_range_is_refused(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        cli.parse_args(["dev", "--service-port", "99999"])
    assert exit_info.value.code == cli.EXIT_BAD_INPUT
    assert "--service-port: must be a whole number from 1 to 65535" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("options", "url"),
    [
        ([], "http://127.0.0.1:3000"),
        (["-p", "3001"], "http://127.0.0.1:3001"),
        (["--port=3002", "-h", ANY], "http://localhost:3002"),
        (["--", "--host", "10.0.0.5", "--log-level", "debug"], "http://10.0.0.5:3000"),
    ],
)
def test_hub_dev_names_where_dg_dev_serves_the_ui(options: list[str], url: str) -> None:
    assert cli.dev_ui_url(options) == url


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
    help_text = capsys.readouterr().out
    assert "passed through" in help_text
    assert "--service-port PORT" in help_text and "--no-service" in help_text


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


# --- the hub service beside dg dev ---------------------------------------------------------------


def test_a_busy_service_port_exits_2_naming_the_options_before_starting_anything(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    home = tmp_path / "home"
    monkeypatch.setenv("HUB_HOME", str(home))
    with socket.create_server(("127.0.0.1", 0)) as busy:
        port = busy.getsockname()[1]
        assert cli.main(["dev", "--service-port", str(port)]) == cli.EXIT_BAD_INPUT
    error = capsys.readouterr().err
    assert f"--service-port {port}: 127.0.0.1:{port} is already in use" in error
    assert "--no-service" in error
    assert not home.exists()  # no embedded database, no Dagster instance


def test_when_dg_dev_exits_the_service_is_stopped_and_its_status_is_hub_devs(
    tmp_path: Path,
) -> None:
    """Two real processes standing in for them: the service writes its pid and would serve for
    two minutes; `dg dev` waits for that pid and fails with status 3."""
    pid_file = tmp_path / "service.pid"
    service = [
        sys.executable,
        "-c",
        "import os, sys, time; open(sys.argv[1], 'w').write(str(os.getpid())); time.sleep(120)",
        str(pid_file),
    ]
    wait_then_fail = (
        "import os, sys, time\n"
        "while not (os.path.exists(sys.argv[1]) and os.path.getsize(sys.argv[1])):\n"
        "    time.sleep(0.05)\n"
        "sys.exit(3)"
    )
    dev = [sys.executable, "-c", wait_then_fail, str(pid_file)]
    started = time.monotonic()
    assert cli.run_dev_children(dev, tmp_path, service) == 3
    assert time.monotonic() - started < 60  # stopped, not waited for
    assert not psutil.pid_exists(int(pid_file.read_text()))


def test_a_child_ended_by_a_signal_reports_as_a_shell_does() -> None:
    assert cli.exit_status(0) == 0
    assert cli.exit_status(2) == 2
    assert cli.exit_status(-signal.SIGTERM) == 128 + signal.SIGTERM


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


def _answers(port: int, path: str) -> bool:
    """Whether an HTTP server answers PATH on loopback PORT, whatever its status."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=10):  # noqa: S310
            return True
    except urllib.error.HTTPError:
        return True
    except (OSError, urllib.error.URLError):
        return False


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
    port, service_port = _free_port(), _free_port()
    log_path = tmp_path / "hub-dev.log"
    env = _environment(HUB_HOME=str(home), HUB_DATABASE_URL=warehouse_url)
    command = [str(BIN_DIR / "hub"), "dev", "-p", str(port), "--service-port", str(service_port)]
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            [*command, "--", "--log-level", "info"],
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
        service_answers = _answers(service_port, "/health")
    finally:
        children = psutil.Process(process.pid).children(recursive=True)
        exit_code = _stop(process)  # SIGTERM to `hub dev`, which passes it on
        _, left = psutil.wait_procs(children, timeout=30)
    output = log_path.read_text(errors="replace")
    assert entries, f"no GraphQL answer on port {port}:\n{output[-3000:]}"
    assert [entry["name"] for entry in entries] == ["hub_pipelines"]
    location = entries[0]["locationOrLoadError"]
    assert location["__typename"] == "RepositoryLocation", location
    assert exit_code == 0, output[-3000:]
    assert service_answers, output[-3000:]  # the hub service, beside the UI
    assert not left, [child.cmdline() for child in left]  # nothing outlives `hub dev`
    assert (home / "dagster" / "dagster.yaml").is_file()  # the project's instance config
    assert "SupersessionWarning" not in output
    assert "Found a dagster instance configuration value" not in output
