"""App layer: AppController — builds every controller from an ``AppContext``.

The main window receives one ``AppController`` and passes each widget its own controller.
The composition root listens to ``sig_demo_requested`` (restart in demo mode) and awaits
``wait_closed()`` then ``aclose()`` to shut down in order.
"""

from __future__ import annotations

import asyncio

from PySide6.QtCore import QObject, Signal

from pod_studio.app.comfyui import ComfyUIServerController
from pod_studio.app.context import AppContext
from pod_studio.app.gallery import GalleryController
from pod_studio.app.generation import GenerationController
from pod_studio.app.notifications import BatchNotices
from pod_studio.app.platforms import EtsyController, ShopifyController
from pod_studio.app.publishing import PrintifyController, PublishController
from pod_studio.app.queue import QueueController
from pod_studio.app.settings import SettingsController, WorkflowController
from pod_studio.app.setup import SetupController
from pod_studio.app.status import ConnectionController, ResilienceController, StatsController


class AppController(QObject):
    """Signals:
    sig_demo_requested(): the seller asked for demo mode (the composition root handles it).
    sig_close_requested(): the main window was closed; the root shuts down.
    """

    sig_demo_requested = Signal()
    sig_close_requested = Signal()

    def __init__(self, ctx: AppContext, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.ctx = ctx
        self.runner = ctx.runner
        self.bridge = ctx.bridge
        self.demo = ctx.demo
        studio = ctx.studio
        self.generation = GenerationController(
            ctx.runner,
            ctx.bridge,
            studio.orchestrator,
            list_checkpoints=studio.list_checkpoints,
            parent=self,
        )
        self.gallery = GalleryController(
            ctx.runner,
            studio.store,
            studio.thumbnail,
            bridge=ctx.bridge,
            preflight=studio.preflight_design,
            list_templates=studio.product_templates,
            regenerate=self.generation.regenerate,
            orchestrator=studio.orchestrator,
            parent=self,
        )
        self.queue = QueueController(ctx.runner, ctx.bridge, studio.orchestrator, parent=self)
        self.publishing = PublishController(
            ctx.runner,
            studio.orchestrator,
            lambda: studio.settings,
            list_templates=studio.product_templates,
            list_platforms=studio.list_platforms,
            profit_preview=studio.profit_preview,
            thumbnail=studio.thumbnail,
            upscale=studio.upscale_design,
            platform_mockups=studio.printify_mockups,
            bridge=ctx.bridge,
            parent=self,
        )
        self.publishing.sig_upscaled.connect(self.gallery.apply_updated)
        self.printify = PrintifyController(
            ctx.runner,
            save_secret=studio.save_secret,
            describe=studio.describe_secrets,
            list_shops=studio.printify_shops,
            test=studio.test_printify,
            parent=self,
        )
        self.notices = BatchNotices(ctx.bridge, self.publishing, parent=self)
        self.connection = ConnectionController(ctx.bridge, parent=self)
        self.resilience = ResilienceController(
            ctx.bridge, studio.reset_breaker, studio.check_health, runner=ctx.runner, parent=self
        )
        self.stats = StatsController(ctx.bridge, parent=self)
        self.settings = SettingsController(
            lambda: studio.settings,
            studio.save_settings,
            runner=ctx.runner,
            test_connection=studio.test_comfyui,
            costs_getter=studio.seller_costs,
            costs_saver=studio.save_seller_costs,
            parent=self,
        )
        self.workflow = WorkflowController(ctx.runner, studio.open_workflow, parent=self)
        self.comfyui_server = ComfyUIServerController(
            ctx.runner, ctx.bridge, studio.comfyui_server_view, studio.control_comfyui, parent=self
        )
        self.settings.sig_settings_saved.connect(self.comfyui_server.settings_changed)
        self.setup = SetupController(
            ctx.runner,
            lambda: studio.settings,
            studio.save_settings,
            studio.check_workflow,
            parent=self,
        )
        self.shopify = ShopifyController(
            ctx.runner,
            lambda: studio.settings,
            studio.save_settings,
            studio.save_secret,
            studio.test_shopify,
            parent=self,
        )
        self.etsy = EtsyController(
            ctx.runner,
            lambda: studio.settings,
            studio.save_settings,
            studio.save_secret,
            connect=studio.connect_etsy,
            disconnect=studio.disconnect_etsy,
            test=studio.test_etsy,
            choices=studio.etsy_choices,
            parent=self,
        )
        # saved servers apply at once (the engine switches): the status bar follows
        self.settings.sig_settings_saved.connect(
            lambda *_a: self.connection.set_servers(studio.server_urls)
        )
        self._closed = asyncio.Event()

    def request_demo(self) -> None:
        self.sig_demo_requested.emit()

    def request_close(self) -> None:
        """Called by the main window's ``closeEvent``."""
        self._closed.set()
        self.sig_close_requested.emit()

    @property
    def close_requested(self) -> bool:
        return self._closed.is_set()

    async def wait_closed(self) -> None:
        await self._closed.wait()

    async def aclose(self) -> None:
        """Finish pending settings saves, then cancel every task still running."""
        await self.settings.flush()
        await self.runner.aclose()
