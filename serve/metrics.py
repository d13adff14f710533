"""Prometheus metrics of the service, in the text exposition format (no extra dependency).

:class:`MetricsMiddleware` counts every HTTP request by method, route template and status and
records its latency in a histogram; the service adds decision, explanation and reward counters.
Route templates (``/v1/events/{event_id}/reward``), not raw paths, label the series, so their
number stays bounded.
"""

from __future__ import annotations

import bisect
import threading
import time
from collections import defaultdict
from collections.abc import Iterable

from starlette.types import ASGIApp, Message, Receive, Scope, Send

__all__ = ["CONTENT_TYPE", "LATENCY_BUCKETS", "Metrics", "MetricsMiddleware"]

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
"""Media type of the Prometheus text format."""

LATENCY_BUCKETS: tuple[float, ...] = (
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
)  # fmt: skip
"""Upper bounds (seconds) of the request latency histogram."""


def _labels(**labels: str) -> str:
    escaped = (
        f'{k}="{v.replace(chr(92), chr(92) * 2).replace(chr(34), chr(92) + chr(34))}"'
        for k, v in labels.items()
    )
    return "{" + ",".join(escaped) + "}"


class _Histogram:
    """Cumulative-bucket histogram of one label set."""

    def __init__(self) -> None:
        self.counts = [0] * (len(LATENCY_BUCKETS) + 1)
        self.total = 0.0

    def observe(self, value: float) -> None:
        self.counts[bisect.bisect_left(LATENCY_BUCKETS, value)] += 1
        self.total += value

    def lines(self, name: str, labels: dict[str, str]) -> Iterable[str]:
        cumulative = 0
        for bound, count in zip((*LATENCY_BUCKETS, float("inf")), self.counts, strict=True):
            cumulative += count
            le = "+Inf" if bound == float("inf") else repr(bound)
            yield f"{name}_bucket{_labels(**labels, le=le)} {cumulative}"
        yield f"{name}_sum{_labels(**labels)} {self.total!r}"
        yield f"{name}_count{_labels(**labels)} {cumulative}"


class Metrics:
    """Thread-safe counters and histograms, rendered by :meth:`render`."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.requests: defaultdict[tuple[str, str, str], int] = defaultdict(int)
        self.latency: defaultdict[tuple[str, str], _Histogram] = defaultdict(_Histogram)
        self.decisions = 0
        self.explanations = 0
        self.rewards: defaultdict[str, int] = defaultdict(int)
        self.reward_sum = 0.0
        self.started = time.time()

    def observe_request(self, method: str, path: str, status: int, seconds: float) -> None:
        """Count one HTTP request and record its latency."""
        with self._lock:
            self.requests[(method, path, str(status))] += 1
            self.latency[(method, path)].observe(seconds)

    def add_decisions(self, n: int) -> None:
        """Count ``n`` logged decisions."""
        with self._lock:
            self.decisions += n

    def add_explanation(self) -> None:
        """Count one explanation."""
        with self._lock:
            self.explanations += 1

    def add_reward(self, outcome: str, reward: float | None = None) -> None:
        """Count a reward by outcome: ``recorded``, ``duplicate``, ``conflict``, and so on.

        The outcomes rendered are ``recorded``, ``duplicate``, ``conflict``, ``unknown`` and
        ``out_of_range``.
        """
        with self._lock:
            self.rewards[outcome] += 1
            if outcome == "recorded" and reward is not None:
                self.reward_sum += reward

    def render(self, model_version: str, algorithm: str, policy_updates: int) -> str:
        """The metrics in the Prometheus text exposition format."""
        lines = [
            "# HELP recenv_model_info The served model.",
            "# TYPE recenv_model_info gauge",
            f"recenv_model_info{_labels(model_version=model_version, algorithm=algorithm)} 1",
            "# HELP recenv_start_time_seconds Unix time the service started.",
            "# TYPE recenv_start_time_seconds gauge",
            f"recenv_start_time_seconds {self.started!r}",
            "# HELP recenv_policy_updates Rewards the online policy has learned from.",
            "# TYPE recenv_policy_updates gauge",
            f"recenv_policy_updates {policy_updates}",
        ]
        with self._lock:
            lines += [
                "# HELP recenv_http_requests_total HTTP requests by method, route and status.",
                "# TYPE recenv_http_requests_total counter",
            ]
            for (method, path, status), count in sorted(self.requests.items()):
                labels = _labels(method=method, path=path, status=status)
                lines.append(f"recenv_http_requests_total{labels} {count}")
            lines += [
                "# HELP recenv_http_request_duration_seconds Latency of HTTP requests.",
                "# TYPE recenv_http_request_duration_seconds histogram",
            ]
            for (method, path), histogram in sorted(self.latency.items()):
                lines += histogram.lines(
                    "recenv_http_request_duration_seconds", {"method": method, "path": path}
                )
            lines += [
                "# HELP recenv_decisions_total Decisions served and logged.",
                "# TYPE recenv_decisions_total counter",
                f"recenv_decisions_total {self.decisions}",
                "# HELP recenv_explanations_total Explanations computed.",
                "# TYPE recenv_explanations_total counter",
                f"recenv_explanations_total {self.explanations}",
                "# HELP recenv_rewards_total Rewards received, by outcome.",
                "# TYPE recenv_rewards_total counter",
            ]
            for outcome in ("recorded", "duplicate", "conflict", "unknown", "out_of_range"):
                lines.append(
                    f"recenv_rewards_total{_labels(outcome=outcome)} {self.rewards[outcome]}"
                )
            lines += [
                "# HELP recenv_reward_sum Sum of the recorded rewards.",
                "# TYPE recenv_reward_sum gauge",
                f"recenv_reward_sum {self.reward_sum!r}",
            ]
        return "\n".join(lines) + "\n"


class MetricsMiddleware:
    """Pure ASGI middleware that feeds :meth:`Metrics.observe_request`.

    Args:
        app: The wrapped application.
        metrics: Where to count.
    """

    def __init__(self, app: ASGIApp, metrics: Metrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Time the request and count it under its route template and status."""
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        status = 500

        async def send_with_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_with_status)
        finally:
            route = scope.get("route")
            path = getattr(route, "path", None) or "unmatched"
            self.metrics.observe_request(scope["method"], path, status, time.perf_counter() - start)
