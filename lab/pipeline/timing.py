"""The pipeline's clock settings: scrape and evaluation interval, `for:`, Alertmanager waits.

Production values live in the shipped bundle (30s evaluation, `for:` 1m/5m, group_wait 10s);
a test or demo pipeline shortens them through `rules/extract.py render()` and the Alertmanager
route built here, never through an edited copy. `floor_seconds` is the least time the
configuration allows between a condition becoming true and the receiver hearing of it.
"""

from __future__ import annotations

from dataclasses import dataclass


def prom_duration(seconds: float) -> str:
    """A Prometheus/Alertmanager duration string: "1s", "1500ms" (both parse everywhere)."""
    if seconds <= 0:
        raise ValueError(f"duration must be positive, got {seconds!r} seconds")
    millis = round(seconds * 1000)
    if millis % 1000 == 0:
        return f"{millis // 1000}s"
    return f"{millis}ms"


@dataclass(frozen=True)
class Timing:
    """Shortened intervals for a pipeline on one machine (all in seconds).

    - scrape_interval: how often Prometheus scrapes the sandbox's /metrics;
    - evaluation_interval: the rule group's interval (render's interval_override);
    - for_seconds: every alert's `for:` (render's for_override);
    - keep_firing_seconds: every alert's `keep_firing_for:` (render's keep_firing_for_override;
      3m shipped), so a rolled-back revision's alert resolves within seconds;
    - baseline_offset: how long to wait, at most, for the revision a slow one replaces to have a
      typical P99 recorded (the latency alert's baseline; the rules need no hour of history);
    - group_wait / group_interval / repeat_interval: the shipped route's Alertmanager waits.
    """

    scrape_interval: float = 1.0
    evaluation_interval: float = 1.0
    for_seconds: float = 3.0
    keep_firing_seconds: float = 3.0
    # The old revision's P99 needs two samples of a 2-minute rate window and one evaluation.
    baseline_offset: float = 40.0
    group_wait: float = 1.0
    group_interval: float = 2.0
    repeat_interval: float = 3600.0

    def __post_init__(self) -> None:
        for name in (
            "scrape_interval",
            "evaluation_interval",
            "for_seconds",
            "keep_firing_seconds",
            "baseline_offset",
            "group_wait",
            "group_interval",
            "repeat_interval",
        ):
            value = getattr(self, name)
            if not value > 0:
                raise ValueError(f"Timing.{name}: must be positive seconds, got {value!r}")

    def floor_seconds(self) -> float:
        """Least time from a true condition to the delivery: one scrape to see it, one
        evaluation to act on it, `for:` to keep it, group_wait to gather it."""
        return self.scrape_interval + self.evaluation_interval + self.for_seconds + self.group_wait

    def describe(self) -> str:
        """One line for logs and the demo."""
        return (
            f"scrape {prom_duration(self.scrape_interval)}, evaluation "
            f"{prom_duration(self.evaluation_interval)}, for: {prom_duration(self.for_seconds)}, "
            f"group_wait {prom_duration(self.group_wait)}"
        )
