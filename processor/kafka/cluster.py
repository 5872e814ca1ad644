"""Which cluster to talk to: the configured one, or else the local broker, started on demand."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from processor.config import Settings
from processor.kafka.local_broker import LocalBroker


@contextmanager
def connect(settings: Settings, *, keep_local_broker: bool = False) -> Iterator[str]:
    """Yield a bootstrap address. A local broker started here is stopped on exit unless kept."""
    if settings.bootstrap_servers:
        yield settings.bootstrap_servers
        return
    broker = LocalBroker(settings.local_broker, settings.principals)
    started_here = broker.running_pid() is None
    bootstrap = broker.start()
    try:
        yield bootstrap
    finally:
        if started_here and not keep_local_broker:
            broker.stop()
