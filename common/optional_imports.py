"""Keep clickhouse-connect's optional dataframe libraries out of the pipeline's processes.

Why: on a process's first insert, clickhouse-connect imports NumPy, pandas and PyArrow to test
whether the data is one of their frames. They are installed (chDB needs them), but no coinstream
process hands ClickHouse a frame, and importing them costs each long-running process about 77 MiB
of resident memory (measured: a loader goes from 66 to 143 MiB at its first insert), a tenth of
the local stack's memory target. Marking a module unavailable (`sys.modules[name] = None`, which
makes `import name` raise ImportError) is Python's own way to make an optional import fail fast;
clickhouse-connect then behaves as if they were not installed.

Called by the commands that run a long-lived process (loader, daily-close job, dashboard), never
from library code: a process that does want the libraries (tests, a notebook) keeps them.
"""

from __future__ import annotations

import sys

# The optional dataframe libraries clickhouse-connect looks for.
DATAFRAME_LIBRARIES = ("numpy", "pandas", "pyarrow", "polars")


def without_dataframe_libraries() -> list[str]:
    """Make the dataframe libraries unavailable to this process; returns those it could block
    (one already imported stays usable)."""
    blocked = []
    for name in DATAFRAME_LIBRARIES:
        if name not in sys.modules:
            sys.modules[name] = None  # type: ignore[assignment]  # None in sys.modules makes `import name` fail
            blocked.append(name)
    return blocked
