"""Services layer: the durable queue's tuning (``OrchestratorOptions``)."""

from __future__ import annotations

from dataclasses import dataclass

from pod_studio.domain.jobs import MAX_ATTEMPTS, next_retry_delay
from pod_studio.domain.orchestration import RetrySchedule


@dataclass
class OrchestratorOptions:
    # Prompts kept on each server (running + queued): at least ``in_flight_per_server``,
    # more when the GPU would otherwise wait: enough to cover, at the measured seconds per
    # prompt, the slow end of recent POST /prompt calls and (socket down) the polling
    # interval; at most ``max_in_flight_per_server``. A job whose POST has gone unanswered
    # for ``submit_stuck_after`` seconds stops counting, so a hung or retried submit lets
    # the next job in.
    in_flight_per_server: int = 2
    max_in_flight_per_server: int = 32
    submit_stuck_after: float = 0.25
    publish_concurrency: int = 8
    per_platform_concurrency: int = 2
    retry_delay: RetrySchedule = next_retry_delay
    max_attempts: int = MAX_ATTEMPTS
    reconcile: bool = True  # False only for the control run of the crash test
    tick: float = 0.5  # longest wait between scheduling passes while work is running
    idle_wake: float = 30.0  # longest sleep with nothing running and nothing due
    poll_interval: float = 1.0  # following a prompt resumed after a restart
    # asking a server with an open breaker whether it is back: as often as the scheduling
    # pass, as the breaker itself refuses at once (no request) until its reset timeout is up
    probe_interval: float = 0.5
    preflight_retry: float = 10.0  # re-reading /object_info after it failed
    idle_horizon: float = 5.0  # run_until_idle waits for retries due within this
    stall_timeout: float = 120.0  # run_until_idle gives up when nothing can run for this long
    lease_seconds: float = 3600.0
    owner: str = ""
    filename_prefix: str = "pod_studio/img"
