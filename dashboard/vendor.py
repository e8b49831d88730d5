"""Where the chart library comes from: plotly.js as shipped inside the installed `plotly` package.

Why from a Python package: the dashboard must work offline and without a CDN, and `pip install`
already brings the `plotly` package, whose package data holds the minified plotly.js bundle. The
dashboard serves that file itself, so the browser never leaves 127.0.0.1.
"""

from __future__ import annotations

import re
from functools import lru_cache
from importlib import resources
from pathlib import Path

_VERSION = re.compile(rb"plotly\.js v(\d+\.\d+\.\d+)")


class VendorError(RuntimeError):
    """The chart library is not installed where expected."""


@lru_cache(maxsize=1)
def plotly_js_path() -> Path:
    """The path of plotly.min.js inside the installed `plotly` package."""
    try:
        path = Path(str(resources.files("plotly") / "package_data" / "plotly.min.js"))
    except ModuleNotFoundError:
        raise VendorError("the 'plotly' package is not installed (pip install plotly)") from None
    if not path.is_file():
        raise VendorError(f"the 'plotly' package has no {path.name} (reinstall plotly)")
    return path


def plotly_js_version() -> str:
    """plotly.js's version, from the bundle's banner (for the page footer and the logs)."""
    with plotly_js_path().open("rb") as bundle:
        match = _VERSION.search(bundle.read(512))
    return match.group(1).decode() if match else "unknown"
