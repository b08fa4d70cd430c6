"""Prometheus metrics of one server: HTTP traffic, sandboxes, commands, alerts in the store."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily
from prometheus_client.registry import Collector

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


class _AlertCollector(Collector):
    def __init__(self, counts: Callable[[], dict[str, dict[str, int]]]) -> None:
        self.counts = counts

    def collect(self) -> Iterator[Any]:
        family = CounterMetricFamily("rollcage_alerts", "Alerts in the event store", labels=["category", "severity"])
        try:
            counts = self.counts()
        except Exception:
            counts = {}
        for category, by_severity in sorted(counts.items()):
            for severity, count in sorted(by_severity.items()):
                family.add_metric([category, severity], count)
        yield family


class Metrics:
    def __init__(self, alert_counts: Callable[[], dict[str, dict[str, int]]], open_sandboxes: Callable[[], int]):
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "rollcage_http_requests", "HTTP requests", ["method", "route", "status"], registry=self.registry
        )
        self.latency = Histogram(
            "rollcage_http_request_seconds",
            "HTTP request latency",
            ["method", "route"],
            registry=self.registry,
            buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60),
        )
        self.sandboxes_created = Counter("rollcage_sandboxes_created", "Sandboxes created", registry=self.registry)
        self.commands = Counter(
            "rollcage_commands", "Commands run through the API", ["outcome"], registry=self.registry
        )
        self.command_seconds = Histogram(
            "rollcage_command_seconds", "Command duration inside the sandbox", registry=self.registry
        )
        self.stream_clients = Gauge("rollcage_alert_stream_clients", "Open live alert streams", registry=self.registry)
        self.streamed = Counter("rollcage_alerts_streamed", "Alerts sent on live streams", registry=self.registry)
        open_gauge = Gauge("rollcage_sandboxes_open", "Sandboxes open on this server", registry=self.registry)
        open_gauge.set_function(lambda: float(open_sandboxes()))
        self.registry.register(_AlertCollector(alert_counts))

    def render(self) -> bytes:
        return generate_latest(self.registry)
