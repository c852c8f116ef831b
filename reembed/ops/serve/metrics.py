"""``GET /metrics``: Prometheus text, read from the stores at each scrape.

Chunks by status per version, messages waiting per queue and each running
build's rate are read when Prometheus asks (a scrape every 15-60 s costs one
ledger count per version); request latencies are counted as requests pass.
The registry is the service's own, so two apps in one process (tests) do not
share counters.
"""

from __future__ import annotations

from collections.abc import Iterator

from prometheus_client import CollectorRegistry, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from ...build import runs
from ...store import ledger, versions
from ...store.family import list_families
from ..progress import queue_depths, rate, run_processed

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


class Metrics:
    """The service's registry: request latencies, and the stores read at scrape time."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.latency = Histogram(
            "reembed_serve_request_seconds", "Time to answer, by route", ["route"],
            registry=self.registry,
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0))
        self.registry.register(_StoreCollector())

    def text(self) -> bytes:
        return generate_latest(self.registry)


class _StoreCollector(Collector):
    """Ledger counts per version, queue depths and build rates, read per scrape."""

    def collect(self) -> Iterator[Metric]:
        chunks = GaugeMetricFamily("reembed_chunks", "Ledger rows by status per version",
                                   labels=["family", "version", "status"])
        build_rate = GaugeMetricFamily("reembed_build_rate_chunks_per_second",
                                       "Chunks per second of the run in flight",
                                       labels=["family", "version"])
        for fam in list_families():
            for rec in versions.for_family(fam.name):
                counts = ledger.counts(rec.family, rec.version)
                for status, n in counts.as_dict().items():
                    chunks.add_metric([rec.family, rec.version, status], n)
                run = runs.current(rec)
                if run is not None and run.running:
                    chunks_s = rate(run, run_processed(run, counts))
                    build_rate.add_metric([rec.family, rec.version], chunks_s or 0.0)
        queued = GaugeMetricFamily("reembed_queue_messages", "Messages waiting per queue",
                                   labels=["queue"])
        for queue, depth in queue_depths().items():
            if depth is not None:
                queued.add_metric([queue], depth)
        yield from (chunks, build_rate, queued)
