"""Services layer: the seller's settings while the engine runs — save them, apply what changed.

``SettingsService`` owns the current ``AppSettings``. Saving writes them (atomically, off the
event loop) and then applies what changed to what was built from them: the workflow (a
workflow that does not load is refused before anything is saved), the product templates,
the local ComfyUI server, the ComfyUI servers (unless pinned), the platforms. It also opens
and checks a workflow against the first server. The composition injects how settings are
written and workflows and templates are read.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping
from pathlib import Path

from pod_studio.domain.errors import PodStudioError, user_message
from pod_studio.domain.products import ProductTemplate
from pod_studio.domain.settings import AppSettings
from pod_studio.domain.views import WorkflowReport
from pod_studio.domain.workflow import WorkflowTemplate
from pod_studio.services.comfyui_servers import ComfyUIServers
from pod_studio.services.orchestrator import Orchestrator
from pod_studio.services.platforms import PlatformRegistry
from pod_studio.services.publishing import PublishService


def workflow_summary(template: WorkflowTemplate) -> str:
    """Where the job's inputs go in the workflow, in one line."""
    m = template.mapping
    parts = [f"prompt → {m.positive}" if m.positive else "no prompt input found"]
    if m.negative:
        parts.append(f"negative → {m.negative}")
    if m.seed:
        parts.append(f"seed → {m.seed}")
    if m.width and m.height:
        parts.append(f"size → {m.width}, {m.height}")
    if m.checkpoint:
        parts.append(f"model → {m.checkpoint}")
    return "; ".join(parts)


def _workflow_changed(old: AppSettings, new: AppSettings) -> bool:
    return (
        new.workflow_path != old.workflow_path
        or new.prompt_input_override != old.prompt_input_override
        or new.workflow_values != old.workflow_values
    )


class SettingsService:
    """The current settings, and their re-apply at run time."""

    def __init__(
        self,
        settings: AppSettings,
        *,
        write: Callable[[AppSettings], None],
        load_workflow: Callable[[AppSettings], WorkflowTemplate],
        load_templates: Callable[[AppSettings], Mapping[str, ProductTemplate]],
        orchestrator: Orchestrator,
        publishing: PublishService,
        servers: ComfyUIServers,
        platforms: PlatformRegistry,
    ) -> None:
        self.settings = settings
        self._write = write
        self._load_workflow = load_workflow
        self._load_templates = load_templates
        self._orchestrator = orchestrator
        self._publishing = publishing
        self._servers = servers
        self._platforms = platforms
        # the platforms are built once the engine connects; before, a save only records
        self.platforms_live = False

    async def save(self, settings: AppSettings) -> None:
        """Save, then apply what changed."""
        template = None
        if _workflow_changed(self.settings, settings):  # refused before saving
            template = await asyncio.to_thread(self._load_workflow, settings)
        await asyncio.to_thread(self._write, settings)
        old, self.settings = self.settings, settings
        if template is not None:
            self._orchestrator.set_template(template)
        if settings.product_templates != old.product_templates:
            self._publishing.templates = dict(self._load_templates(settings))
        if settings.comfyui_process != old.comfyui_process and self._servers.connected:
            await self._servers.configure_local()
        if settings.comfyui_servers != old.comfyui_servers:
            await self._servers.settings_servers(settings.comfyui_servers)
        if self.platforms_live:
            await self._platforms.apply(old, settings)

    async def open_workflow(self, path: str) -> WorkflowReport:
        """Load the workflow at ``path``, check it against the first server, and keep it in
        the settings (a workflow that does not load is refused and nothing changes)."""
        settings = self.settings.with_changes(workflow_path=path)
        template = await asyncio.to_thread(self._load_workflow, settings)
        problems: list[str] = []
        if self._servers.generators:
            try:
                info = await self._servers.generators[0].object_info()
                problems = template.preflight(info)
            except PodStudioError as exc:
                problems = [f"could not check against the server: {user_message(exc)}"]
        await self.save(settings)
        return WorkflowReport(
            template.name or Path(path).name, workflow_summary(template), problems
        )

    async def check_workflow(self) -> WorkflowReport:
        """The current workflow checked against the first server (nothing is saved)."""
        template = self._orchestrator.template
        if not self._servers.generators:
            return WorkflowReport(template.name or "workflow", workflow_summary(template), [])
        info = await self._servers.generators[0].object_info()
        return WorkflowReport(
            template.name or "built-in workflow",
            workflow_summary(template),
            template.preflight(info),
        )
