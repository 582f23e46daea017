"""Domain layer: plain values the engine hands to whoever shows it (the window, a command).

``PlatformChoice`` is a platform the publish panel offers and why it cannot be used now;
``WorkflowReport`` describes a workflow the seller opened and the problems the server found.
"""

from __future__ import annotations

from dataclasses import dataclass, field


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
