"""`hub sync` and `hub demo` import in this process: what they print when interrupted."""

from __future__ import annotations

import logging

import dagster as dg
import pytest

from hub_pipelines.imports.local import _InterruptedClose, quiet_interrupted_closes

# The logger SQLAlchemy's NullPool (Dagster's SQLite storage) reports a failed close on.
POOL_LOGGER = "sqlalchemy.pool.impl.NullPool"


def _close_failed(error: BaseException) -> None:
    try:
        raise error
    except BaseException:
        logging.getLogger(POOL_LOGGER).error("Exception closing connection %r", "c", exc_info=True)


def _quieting_handlers() -> list[logging.Handler]:
    pool = logging.getLogger("sqlalchemy.pool")
    return [h for h in pool.handlers if any(isinstance(f, _InterruptedClose) for f in h.filters)]


@pytest.fixture
def pool_logger():
    """Without the handler an earlier import in this process may have added."""
    pool = logging.getLogger("sqlalchemy.pool")
    handlers, propagate = list(pool.handlers), pool.propagate
    pool.handlers[:] = [h for h in handlers if h not in _quieting_handlers()]
    yield
    pool.handlers[:], pool.propagate = handlers, propagate


@pytest.mark.usefixtures("pool_logger")
@pytest.mark.parametrize("interrupt", [dg.DagsterExecutionInterruptedError(), KeyboardInterrupt()])
def test_an_interrupted_connection_close_prints_no_traceback(interrupt, capsys):
    quiet_interrupted_closes()
    quiet_interrupted_closes()  # twice: still one handler
    _close_failed(interrupt)
    assert capsys.readouterr().err == ""
    assert len(_quieting_handlers()) == 1


@pytest.mark.usefixtures("pool_logger")
def test_any_other_failed_close_is_still_printed_with_its_traceback(capsys):
    with capsys.disabled():  # made while stderr is another stream: it writes to the current one
        quiet_interrupted_closes()
    _close_failed(OSError("disk I/O error"))
    said = capsys.readouterr().err
    assert "Exception closing connection 'c'" in said
    assert "Traceback" in said and "OSError: disk I/O error" in said
