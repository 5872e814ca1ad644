"""Every Prometheus metric kafka-rewind exports, declared in one object from an injected registry.

The core never touches metric objects; adapters call the methods here. Tests pass a fresh registry.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Gauge, Info

from processor import __version__


class Metrics:
    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry if registry is not None else CollectorRegistry()
        self._build = Info("rewind_build", "kafka-rewind version", registry=self.registry)
        self._build.info({"version": __version__})
        self._up = Gauge(
            "rewind_component_up",
            "1 while a pipeline component is running",
            ["component"],
            registry=self.registry,
        )

    def component_started(self, component: str) -> None:
        self._up.labels(component).set(1)

    def component_stopped(self, component: str) -> None:
        self._up.labels(component).set(0)

    def healthy(self) -> bool:
        """Healthy while at least one component runs and none has stopped unexpectedly."""
        samples = [s.value for m in self._up.collect() for s in m.samples]
        return bool(samples) and all(v == 1 for v in samples)
