"""Prometheus metrics for the whole fleet, at /metrics.

Counters that workers produce (render durations, provider errors) are kept in Redis hashes, so every
worker on every machine adds to the same numbers and the web node that Prometheus scrapes reports
them all; on the embedded default they live in this process. Gauges (jobs by status, segments in
flight, queue depth, spend) are read from PostgreSQL and Redis at scrape time.
"""

from __future__ import annotations

import functools
import threading
from collections import defaultdict
from collections.abc import Iterator

from django.conf import settings
from django.db.models import Count
from django.http import HttpRequest, HttpResponse
from django.views.decorators.cache import never_cache
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from prometheus_client.core import (
    CollectorRegistry,
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
)

RENDER_BUCKETS = (1, 2, 5, 10, 20, 30, 60, 120, 300, 600, 1200)
RENDER_KEY = "metrics:render_seconds"
ERRORS_KEY = "metrics:provider_errors"
QUEUES = ("celery", "submit", "poll", "assemble")

_local_lock = threading.Lock()
_local: dict[str, dict[str, float]] = defaultdict(lambda: defaultdict(float))


def _redis():
    if not settings.REDIS_URL:
        return None
    return _client_for(settings.REDIS_URL)


@functools.cache
def _client_for(url: str):
    # One client (and connection pool) per process: metrics are written on the render path and read on
    # every scrape, so a fresh connection each time would cost more than the counter itself.
    import redis

    return redis.Redis.from_url(url, socket_connect_timeout=2, socket_timeout=2)


def _increment(key: str, fields: dict[str, float]) -> None:
    client = _redis()
    if client is None:
        with _local_lock:
            for name, amount in fields.items():
                _local[key][name] += amount
        return
    try:
        pipe = client.pipeline(transaction=False)
        for name, amount in fields.items():
            pipe.hincrbyfloat(key, name, amount)
        pipe.execute()
    except Exception:  # metrics must never break rendering
        pass


def _read(key: str) -> dict[str, float]:
    client = _redis()
    if client is None:
        with _local_lock:
            return dict(_local[key])
    return {k.decode(): float(v) for k, v in client.hgetall(key).items()}


def record_render(provider: str, seconds: float) -> None:
    """One segment rendered end to end (claim to stored clip) in `seconds`."""
    fields = {f"{provider}|sum": seconds, f"{provider}|count": 1}
    for bound in RENDER_BUCKETS:
        if seconds <= bound:
            fields[f"{provider}|le|{bound}"] = 1
    _increment(RENDER_KEY, fields)


def record_provider_error(provider: str, code: str) -> None:
    _increment(ERRORS_KEY, {f"{provider}|{code or 'unknown'}": 1})


class FleetCollector:
    def collect(self) -> Iterator:
        yield from self._render_histograms()
        errors = CounterMetricFamily(
            "sora_provider_errors", "Provider errors by provider and code", labels=["provider", "code"]
        )
        for name, value in sorted(_read(ERRORS_KEY).items()):
            provider, _, code = name.partition("|")
            errors.add_metric([provider, code], value)
        yield errors
        yield from self._database_gauges()
        yield from self._queue_depths()

    def _render_histograms(self) -> Iterator:
        raw = _read(RENDER_KEY)
        family = HistogramMetricFamily(
            "sora_render_duration_seconds",
            "Seconds from claiming a segment to its stored clip",
            labels=["provider"],
        )
        providers = sorted({name.split("|", 1)[0] for name in raw})
        for provider in providers:
            buckets = [(str(float(b)), raw.get(f"{provider}|le|{b}", 0.0)) for b in RENDER_BUCKETS]
            buckets.append(("+Inf", raw.get(f"{provider}|count", 0.0)))
            family.add_metric([provider], buckets, sum_value=raw.get(f"{provider}|sum", 0.0))
        yield family

    def _database_gauges(self) -> Iterator:
        from jobs import ledger
        from jobs.models import IN_FLIGHT_SEGMENT_STATUSES, JobStatus, Segment, VideoJob

        jobs = GaugeMetricFamily("sora_jobs", "Video jobs by status", labels=["status"])
        counts = dict(VideoJob.objects.values_list("status").annotate(n=Count("id")))
        for status in JobStatus.values:
            jobs.add_metric([status], counts.get(status, 0))
        yield jobs
        in_flight = GaugeMetricFamily(
            "sora_segments_in_flight",
            "Segments queued or rendering, by provider",
            labels=["provider", "status"],
        )
        rows = (
            Segment.objects.filter(status__in=IN_FLIGHT_SEGMENT_STATUSES)
            .values_list("job__provider", "status")
            .annotate(n=Count("id"))
        )
        for provider, status, n in rows:
            in_flight.add_metric([provider, status], n)
        yield in_flight
        # From the ledger: what was billed stays billed when its job is deleted.
        spend = CounterMetricFamily("sora_spend_usd", "USD charged by providers for segments, all time")
        spend.add_metric([], float(ledger.spent_total()))
        yield spend

    def _queue_depths(self) -> Iterator:
        depth = GaugeMetricFamily("sora_queue_depth", "Tasks waiting in each Celery queue", labels=["queue"])
        client = _redis()
        if client is not None:
            try:
                for queue in QUEUES:
                    depth.add_metric([queue], client.llen(queue))
            except Exception:  # a scrape without queue depths beats a failed scrape
                pass
        yield depth


def _registry() -> CollectorRegistry:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(FleetCollector())
    return registry


@never_cache
def metrics_view(request: HttpRequest) -> HttpResponse:
    token = settings.METRICS_TOKEN
    if token:
        if request.headers.get("Authorization", "") != f"Bearer {token}":
            return HttpResponse("metrics need the bearer token\n", status=401, content_type="text/plain")
    elif not (request.user.is_authenticated and request.user.is_staff):
        return HttpResponse(
            "metrics are for staff (or set METRICS_TOKEN)\n", status=403, content_type="text/plain"
        )
    return HttpResponse(generate_latest(_registry()), content_type=CONTENT_TYPE_LATEST)
