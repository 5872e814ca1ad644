"""HTTP endpoint: /metrics for Prometheus, /healthz for liveness probes."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

from prometheus_client import make_wsgi_app

from processor.metrics import Metrics

StartResponse = Callable[..., Any]


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        """Scrapes every few seconds would flood the log."""


def serve(
    metrics: Metrics, port: int, host: str = "0.0.0.0",  # noqa: S104
    broker: Callable[[], str | None] | None = None,
) -> WSGIServer:  # fmt: skip
    """Serve in a daemon thread; call ``shutdown()`` on the result to stop. ``broker`` asks the cluster
    for /healthz (None when it answered, else the error)."""
    prometheus = make_wsgi_app(metrics.registry)

    def app(environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        if environ.get("PATH_INFO") == "/healthz":
            verdict = metrics.health.check(broker)
            status = "200 OK" if verdict.ok else "503 Service Unavailable"
            start_response(status, [("Content-Type", "text/plain; charset=utf-8")])
            return [verdict.text().encode()]
        result: Iterable[bytes] = prometheus(environ, start_response)
        return result

    server = make_server(host, port, app, handler_class=_QuietHandler)
    threading.Thread(target=server.serve_forever, name="metrics-http", daemon=True).start()
    return server
