"""The embedded server: started on demand, shared by later processes, recovers from a crash."""

import os
import signal
import subprocess
import sys
import time

import psycopg
import pytest

START = "from hub_pipelines.warehouse import db; print(db.database_url())"


def _hub_python(code: str, home) -> str:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("HUB_DATABASE", "DATABASE_"))}
    env["HUB_HOME"] = str(home)
    done = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


def _postmaster_pid(home) -> int:
    return int((home / "postgres" / "postmaster.pid").read_text().split()[0])


@pytest.fixture
def home(tmp_path):
    yield tmp_path
    _hub_python("from hub_pipelines.warehouse import db; db.stop_embedded()", tmp_path)


def test_second_process_reuses_the_running_server_and_stop_is_clean(home):
    url = _hub_python(START, home)
    first_pid = _postmaster_pid(home)
    assert _hub_python(START, home) == url
    assert _postmaster_pid(home) == first_pid  # no second server on the same data directory
    with psycopg.connect(url) as conn:
        assert conn.execute("SELECT 1").fetchone() == (1,)
    _hub_python("from hub_pipelines.warehouse import db; db.stop_embedded()", home)
    assert not (home / "postgres" / "postmaster.pid").exists()
    with pytest.raises(psycopg.OperationalError):
        psycopg.connect(url, connect_timeout=2)


def test_stale_lock_after_a_crash_recovers(home):
    url = _hub_python(START, home)
    os.kill(_postmaster_pid(home), signal.SIGKILL)
    time.sleep(0.1)
    assert (home / "postgres" / "postmaster.pid").exists()  # the crash left its lock behind
    assert _hub_python(START, home) == url
    with psycopg.connect(url) as conn:
        assert conn.execute("SELECT 1").fetchone() == (1,)
