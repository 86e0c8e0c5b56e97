"""`hub demo` in a HUB_HOME of a test's own, on the session's warehouse, with its simulators on
free ports; used by the tests that start from the demo (the demo itself, the operator's paths,
the browser)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from hub_pipelines.demo.plan import PAIRS
from hub_pipelines.demo.simulators import stop
from hub_pipelines.vault import KEY_VARIABLE
from hub_pipelines_tests.conftest import empty_tables
from hub_pipelines_tests.dagster_webserver import free_port_range


@contextmanager
def demo_hub(warehouse_url: str, home: Path) -> Iterator[int]:
    """The base port for `run_demo(base_port=…)`, with HUB_HOME set to `home` and the warehouse
    emptied; the demo's simulators are stopped at the end, and the variables the demo sets (its
    key, DAGSTER_HOME) are undone."""
    empty_tables(warehouse_url)
    base_port = free_port_range(len(PAIRS) + 1)  # the control port, then one per pair
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("HUB_HOME", str(home))
        for name in (KEY_VARIABLE, "DAGSTER_HOME"):  # set and removed: restored as unset
            patch.setenv(name, "")
            patch.delenv(name)
        try:
            yield base_port
        finally:
            stop(base_port)
