"""Domain layer: plain values the engine hands to whoever shows it (the window, a command).

``PlatformChoice`` is a platform the publish panel offers and why it cannot be used now;
``WorkflowReport`` describes a workflow the seller opened and the problems the server found;
``ComfyUIServerView`` / ``ComfyUIAction`` are the local ComfyUI server as the dock sees it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum


@dataclass(frozen=True)
class PlatformChoice:
    """A platform the publish panel offers; ``reason`` says why it cannot be used now."""

    name: str
    label: str = ""
    available: bool = True
    reason: str = ""

    @property
    def title(self) -> str:
        return self.label or self.name.capitalize()


@dataclass(frozen=True)
class WorkflowReport:
    """A workflow the seller picked: its name, a one-line mapping, problems on the server."""

    name: str
    summary: str
    problems: list[str] = field(default_factory=list)


class ComfyUIAction(StrEnum):
    """What the ComfyUI dock can ask of the local server."""

    START = "start"
    STOP = "stop"
    RESTART = "restart"
    FREE_MEMORY = "free_memory"
    INTERRUPT_ALL = "interrupt_all"
    CLEAR_QUEUE = "clear_queue"


@dataclass(frozen=True)
class ComfyUIServerView:
    """The local ComfyUI server as the dock first shows it (later changes come as events).

    ``managed`` is false when no ComfyUI folder is set up; ``state`` is a ``ProcessState``
    value; ``detail`` says why it last ended, in words."""

    managed: bool
    state: str = "stopped"
    url: str = ""
    pid: int | None = None
    detail: str = ""
    log_lines: tuple[str, ...] = ()
