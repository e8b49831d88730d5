"""Process-wide logging: one format for every component, level from LOG_LEVEL."""

from __future__ import annotations

import logging
import sys


def configure_logging(level: str = "INFO", component: str | None = None) -> None:
    """Log to stderr with timestamps; `component` prefixes each line (the supervisor adds its own)."""
    prefix = f"[{component}] " if component else ""
    logging.basicConfig(
        level=getattr(logging, level.upper(), logging.INFO),
        format=f"%(asctime)s {prefix}%(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
        force=True,
    )
