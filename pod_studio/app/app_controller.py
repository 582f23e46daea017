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
from pod_studio.domain.settings import AppSettings


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
        queue, designs, platforms = ctx.queue, ctx.designs, ctx.platforms
        comfyui, config = ctx.comfyui, ctx.settings

        def settings() -> AppSettings:
            return config.settings

        self.generation = GenerationController(
            ctx.runner, ctx.bridge, queue, list_checkpoints=comfyui.checkpoints, parent=self
        )
        self.gallery = GalleryController(
            ctx.runner,
            designs.store,
            designs.thumbnail,
            bridge=ctx.bridge,
            preflight=designs.preflight_design,
            list_templates=designs.product_templates,
            regenerate=self.generation.regenerate,
            orchestrator=queue,
            parent=self,
        )
        self.queue = QueueController(ctx.runner, ctx.bridge, queue, parent=self)
        self.publishing = PublishController(
            ctx.runner,
            queue,
            settings,
            list_templates=designs.product_templates,
            list_platforms=platforms.list_platforms,
            profit_preview=designs.profit_preview,
            thumbnail=designs.thumbnail,
            upscale=designs.upscale_design,
            platform_mockups=platforms.printify_mockups,
            bridge=ctx.bridge,
            parent=self,
        )
        self.publishing.sig_upscaled.connect(self.gallery.apply_updated)
        self.printify = PrintifyController(
            ctx.runner,
            save_secret=platforms.save_secret,
            describe=platforms.describe_secrets,
            list_shops=platforms.printify_shops,
            test=platforms.test_printify,
            parent=self,
        )
        self.notices = BatchNotices(ctx.bridge, self.publishing, parent=self)
        self.connection = ConnectionController(ctx.bridge, parent=self)
        self.resilience = ResilienceController(
            ctx.bridge,
            ctx.health.reset_breaker,
            ctx.health.check_health,
            runner=ctx.runner,
            parent=self,
        )
        self.stats = StatsController(ctx.bridge, parent=self)
        self.settings = SettingsController(
            settings,
            config.save,
            runner=ctx.runner,
            test_connection=comfyui.test,
            costs_getter=designs.seller_costs,
            costs_saver=designs.save_seller_costs,
            parent=self,
        )
        self.workflow = WorkflowController(ctx.runner, config.open_workflow, parent=self)
        self.comfyui_server = ComfyUIServerController(
            ctx.runner, ctx.bridge, comfyui.view, comfyui.control, parent=self
        )
        self.settings.sig_settings_saved.connect(self.comfyui_server.settings_changed)
        self.setup = SetupController(
            ctx.runner, settings, config.save, config.check_workflow, parent=self
        )
        self.shopify = ShopifyController(
            ctx.runner,
            settings,
            config.save,
            platforms.save_secret,
            platforms.test_shopify,
            parent=self,
        )
        self.etsy = EtsyController(
            ctx.runner,
            settings,
            config.save,
            platforms.save_secret,
            connect=platforms.connect_etsy,
            disconnect=platforms.disconnect_etsy,
            test=platforms.test_etsy,
            choices=platforms.etsy_choices,
            parent=self,
        )
        # saved servers apply at once (the engine switches): the status bar follows
        self.settings.sig_settings_saved.connect(
            lambda *_a: self.connection.set_servers(comfyui.urls)
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
