"""Memory measured in an interpreter of its own.

tracemalloc counts every thread's allocations. In the suite's process, threads left by earlier
tests (servers shutting down) can allocate during a measurement: a Tally mapping that peaks at
1.9 MB alone once measured 5.3 MB in CI. So a memory test runs its work in a fresh interpreter.
"""

from __future__ import annotations

import json
import subprocess
import sys
from typing import Any

MEASURED = """
import json, sys, tracemalloc
{setup}
result = {{}}
tracemalloc.start()
{work}
result["peak"] = tracemalloc.get_traced_memory()[1]
print(json.dumps(result))
"""


def traced_peak(setup: str, work: str, *args: str) -> dict[str, Any]:
    """Run `setup` (imports: not measured), then `work` (Python that fills the dict `result`,
    arguments in `sys.argv[1:]`) under tracemalloc, in a fresh interpreter; `result` with the
    traced peak under "peak"."""
    done = subprocess.run(  # noqa: S603 - this interpreter, our own code
        [sys.executable, "-c", MEASURED.format(setup=setup, work=work), *args],
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)
