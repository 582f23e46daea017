"""Composition (Qt-free): the typed overrides ``build_core`` takes over the seller's settings.

Tests, benchmarks and the headless commands tune a few knobs of what the composition builds:
the ComfyUI clients' timings (``ComfyUIClientOverrides``), the retry policies and breakers
(``ResilienceOverrides``, each field naming only what it changes over the hub's tuned
defaults) and the local ComfyUI server's process (``LocalServerOverrides``: ``command``
replaces its command line). A field left ``None`` keeps what the settings or the defaults say.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, fields
from typing import Any

import httpx


def _given(value: object) -> dict[str, Any]:
    """The fields of a dataclass ``value`` that are set (not ``None``)."""
    out = {f.name: getattr(value, f.name) for f in fields(value)}  # type: ignore[arg-type]
    return {name: v for name, v in out.items() if v is not None}


@dataclass(frozen=True)
class ComfyUIClientOverrides:
    """The ComfyUI clients' timings (``ComfyUIClient``'s keyword arguments)."""

    timeout: httpx.Timeout | None = None
    poll_initial: float | None = None
    poll_factor: float | None = None
    poll_max: float | None = None
    reconnect_initial: float | None = None
    reconnect_max: float | None = None

    def kwargs(self) -> dict[str, Any]:
        return _given(self)


@dataclass(frozen=True)
class RetryOverride:
    """A change to one service's retry policy (``services.resilience.RetryPolicy``)."""

    max_retries: int | None = None
    initial_delay: float | None = None
    max_delay: float | None = None
    backoff_multiplier: float | None = None
    jitter: float | None = None
    retry_after_cap: float | None = None
    total_budget_seconds: float | None = None


@dataclass(frozen=True)
class BreakerOverride:
    """A change to one service's breaker (``domain.breaker.BreakerConfig``)."""

    failure_threshold: int | None = None
    window_seconds: float | None = None
    reset_timeout: float | None = None
    probe_timeout: float | None = None
    failure_rate: float | None = None


@dataclass(frozen=True)
class ResilienceOverrides:
    """Retry policies and breakers per service, replacing what the settings say."""

    policies: Mapping[str, RetryOverride] = field(default_factory=dict)
    breakers: Mapping[str, BreakerOverride] = field(default_factory=dict)

    def hub_settings(self) -> dict[str, Any]:
        return {
            "policies": {name: _given(p) for name, p in self.policies.items()},
            "breakers": {name: _given(b) for name, b in self.breakers.items()},
        }


@dataclass(frozen=True)
class LocalServerOverrides:
    """The local ComfyUI server's process: ``command`` replaces its command line (tests);
    ``enable`` runs the service even when the settings do not enable it."""

    enable: bool = False
    command: Sequence[str] | None = None
    env: Mapping[str, str] | None = None
    auto_restart: bool | None = None
    keep_running: bool | None = None
    ready_timeout: float | None = None
    ready_poll: float | None = None

    def kwargs(self) -> dict[str, Any]:
        return {k: v for k, v in _given(self).items() if k != "enable"}
