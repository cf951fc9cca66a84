"""Logging set-up: one JSON object per line (or plain text for people).

Fields passed in `extra` (request_id, method, code, duration_ms, tenant_id, ...) become
keys of the JSON object.
"""

from __future__ import annotations

import json
import logging
import time
from typing import Any

_STANDARD = set(logging.LogRecord("", 0, "", 0, "", None, None).__dict__) | {"message"}
_ENCODE = json.JSONEncoder(default=str).encode


class JsonFormatter(logging.Formatter):
    """Formats a record as a JSON object: time, level, logger, message, extras, traceback.

    `time` is ISO 8601 in UTC with milliseconds (`2026-11-22T08:07:26.630+00:00`). The
    access log formats a line per call, so the date and time of day are formatted once
    per second and reused.
    """

    def __init__(self) -> None:
        super().__init__()
        self._second = -1
        self._second_text = ""

    def _time(self, created: float) -> str:
        second = int(created)
        if second != self._second:
            self._second_text = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(second))
            self._second = second
        return f"{self._second_text}.{int((created - second) * 1000):03d}+00:00"

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": self._time(record.created),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        if record.processName != "MainProcess":
            entry["process"] = record.processName
        entry |= {k: v for k, v in record.__dict__.items() if k not in _STANDARD}
        if record.exc_info:
            entry["traceback"] = self.formatException(record.exc_info)
        return _ENCODE(entry)


def configure(level: str, fmt: str) -> None:
    """Send the root logger's records to stderr in `fmt` ("json" or "text")."""
    handler = logging.StreamHandler()
    if fmt == "json":
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(
            logging.Formatter("%(asctime)s %(levelname)s %(processName)s %(name)s: %(message)s")
        )
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    # Neither format shows the calling file and line or the thread: don't collect them
    # (the logging documentation's "Optimization" advice; the access log is per call).
    logging._srcfile = None
    logging.logThreads = False
