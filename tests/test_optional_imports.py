"""The long-running commands keep clickhouse-connect's dataframe libraries out of their process.

Each check runs in a fresh interpreter: the test process itself has its own imports.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def run_python(code: str) -> dict:
    result = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)], cwd=REPO, capture_output=True, text=True, timeout=60, check=True
    )
    return json.loads(result.stdout.strip().splitlines()[-1])


def test_inserts_and_queries_work_without_loading_numpy_pandas_or_arrow(clickhouse_server, clickhouse_database):
    user, password = clickhouse_server.credentials()
    outcome = run_python(f"""
        import json, sys
        from coinstream.common.optional_imports import without_dataframe_libraries
        blocked = without_dataframe_libraries()
        import clickhouse_connect
        client = clickhouse_connect.get_client(host="127.0.0.1", port={clickhouse_server.port},
                                               username={user!r}, password={password!r},
                                               database={clickhouse_database!r})
        client.command("CREATE TABLE rates (code String, rate Float64) ENGINE = MergeTree ORDER BY code")
        client.insert("rates", [("BTC", 64000.5), ("ETH", 3100.25)], column_names=["code", "rate"])
        rows = client.query("SELECT code, rate FROM rates ORDER BY code").result_rows
        loaded = [name for name in ("numpy", "pandas", "pyarrow", "polars") if sys.modules.get(name) is not None]
        print(json.dumps({{"blocked": blocked, "rows": rows, "loaded": loaded}}))
    """)
    assert outcome == {
        "blocked": ["numpy", "pandas", "pyarrow", "polars"],
        "rows": [["BTC", 64000.5], ["ETH", 3100.25]],
        "loaded": [],
    }


def test_a_library_already_imported_stays_usable():
    outcome = run_python("""
        import json
        import numpy
        from coinstream.common.optional_imports import without_dataframe_libraries
        blocked = without_dataframe_libraries()
        import numpy as again
        try:
            import pandas
            pandas_import = "imported"
        except ImportError:
            pandas_import = "ImportError"
        print(json.dumps({"blocked": blocked, "numpy": int(again.arange(4).sum()), "pandas": pandas_import}))
    """)
    assert outcome == {"blocked": ["pandas", "pyarrow", "polars"], "numpy": 6, "pandas": "ImportError"}
