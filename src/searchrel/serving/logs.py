"""The server's log lines: client text in them escaped, client errors on one line.

A request path, a model name or an id can carry a newline (``%0A``); logged as it is, it
forges a log line. ``EscapeControls`` sits on every handler of the server's loggers (KServe's,
uvicorn's, ours) and escapes control characters (and lone surrogates, which a UTF-8 stream
cannot write) in every message, whoever wrote it.
"""

from __future__ import annotations

import logging
import re

_CONTROLS = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029\ud800-\udfff]")
# Loggers that KServe configures (each with its own handler and no propagation) and the root.
SERVER_LOGGERS = ("", "kserve", "kserve.trace", "uvicorn", "uvicorn.error", "uvicorn.access")


def escape_controls(text: str) -> str:
    """``text`` with every control character and lone surrogate written as ``\\xNN``/``\\uNNNN``."""
    return _CONTROLS.sub(lambda m: ascii(m.group())[1:-1], text)


class EscapeControls(logging.Filter):
    """Rewrites a record whose message holds a control character, so it stays one line."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.name == "uvicorn.access":
            return True  # uvicorn %-quotes the path itself, and its formatter needs the args
        try:
            message = record.getMessage()
        except Exception:  # a bad format string: leave it to the handler to report
            return True
        if _CONTROLS.search(message):
            record.msg, record.args = escape_controls(message), None
        return True


def escape_server_logs() -> None:
    """Put ``EscapeControls`` on every handler of the server's loggers (after KServe has set
    up logging, which it does when its ``ModelServer`` is created)."""
    escape = EscapeControls()
    for name in SERVER_LOGGERS:
        for handler in logging.getLogger(name).handlers:
            if not any(isinstance(f, EscapeControls) for f in handler.filters):
                handler.addFilter(escape)
