"""Capture what MMEngine's loggers emit, whichever logger instance emits it.

A ``Runner`` names its ``MMLogger`` after its experiment name, which holds a timestamp to the
second, so a handler attached to ``MMLogger.get_current_instance()`` before a runner is built
catches that runner's messages only if the runner happens to reuse the instance (same second).
:func:`captured_logs` wraps ``MMLogger.callHandlers`` on the class for the duration of the block,
so every instance, existing or created inside the block, reports to it.
"""
import contextlib
import logging
from typing import Iterator, List

from mmengine.logging import MMLogger


@contextlib.contextmanager
def captured_logs(level: int = logging.WARNING) -> Iterator[List[logging.LogRecord]]:
    """The records at ``level`` or above that any ``MMLogger`` handles while the block runs.

    A record is captured when its logger lets it through (the logger's own level still
    applies, as for the run's log file).
    """
    records: List[logging.LogRecord] = []
    own = MMLogger.__dict__.get('callHandlers')  # None when inherited from logging.Logger
    original = MMLogger.callHandlers

    def call_handlers(logger: MMLogger, record: logging.LogRecord) -> None:
        if record.levelno >= level:
            records.append(record)
        original(logger, record)

    MMLogger.callHandlers = call_handlers
    try:
        yield records
    finally:
        if own is None:
            del MMLogger.callHandlers
        else:
            MMLogger.callHandlers = own


def messages(records: List[logging.LogRecord]) -> List[str]:
    """The formatted messages of ``records``."""
    return [record.getMessage() for record in records]
