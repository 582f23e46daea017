"""Services layer: the durable queue's tuning (``OrchestratorOptions``)."""

from __future__ import annotations

from dataclasses import dataclass

from pod_studio.domain.jobs import MAX_ATTEMPTS, next_retry_delay
from pod_studio.domain.orchestration import RetrySchedule


@dataclass
class OrchestratorOptions:
    in_flight_per_server: int = 2
    publish_concurrency: int = 8
    per_platform_concurrency: int = 2
    retry_delay: RetrySchedule = next_retry_delay
    max_attempts: int = MAX_ATTEMPTS
    reconcile: bool = True  # False only for the control run of the crash test
    tick: float = 0.5  # longest wait between scheduling passes while work is running
    idle_wake: float = 30.0  # longest sleep with nothing running and nothing due
    poll_interval: float = 1.0  # following a prompt resumed after a restart
    probe_interval: float = 5.0  # asking a server with an open breaker whether it is back
    preflight_retry: float = 10.0  # re-reading /object_info after it failed
    idle_horizon: float = 5.0  # run_until_idle waits for retries due within this
    stall_timeout: float = 120.0  # run_until_idle gives up when nothing can run for this long
    lease_seconds: float = 3600.0
    owner: str = ""
    filename_prefix: str = "pod_studio/img"
