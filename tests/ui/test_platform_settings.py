"""Settings → ComfyUI server, Shopify and Etsy against the real engine (``build_core``) and
the sandbox Shopify and Etsy servers: validation in words, tokens to the secret store (never
the settings file), test connection, the Etsy consent flow (the URL handler plays the
browser) and the shop's lists in the drop-downs."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from PySide6.QtCore import QObject, QUrl, Slot
from PySide6.QtGui import QDesktopServices

from pod_studio.adapters.storage.secrets import MemorySecretStore
from pod_studio.app.app_controller import AppController
from pod_studio.bootstrap import compose_window
from pod_studio.composition.core import Core, build_core
from pod_studio.domain.settings import AppSettings, SecretName
from pod_studio.sandbox.etsy import EtsySandbox
from pod_studio.sandbox.shopify import ShopifySandbox
from pod_studio.sandbox.threaded import ServerThread
from pod_studio.ui.platform_settings import (
    ComfyUIServerSettingsTab,
    EtsySettingsTab,
    ShopifySettingsTab,
)
from tests.ui._helpers import run, shot, use_style

pytestmark = pytest.mark.timeout(120)
SHOP_TOKEN = "shpat_sandbox_token_1"


@pytest.fixture
def app(qtbot: Any, qloop: Any, qapp: Any) -> Iterator[tuple[AppController, Core]]:
    use_style(qapp)
    secrets = MemorySecretStore()
    core = build_core(settings=AppSettings(comfyui_servers=["http://127.0.0.1:9"]), secrets=secrets)
    run(qtbot, core.start())
    parts = compose_window(core, show=False)  # the window the app ships; the tabs are its own
    yield parts.controller, core
    run(qtbot, parts.aclose())


def test_shopify_domain_is_validated_then_saved_and_tested(
    qtbot: Any, app: tuple[AppController, Core]
) -> None:
    controller, core = app
    tab = ShopifySettingsTab(controller.shopify)
    qtbot.addWidget(tab)
    tab.resize(520, 320)
    tab.show()

    tab.domain_edit.setText("")
    assert not tab.save_and_test()
    assert "Enter the shop domain" in tab.result_label.text()
    tab.domain_edit.setText("shop.example.com")
    assert not tab.save_and_test()
    assert "is not a Shopify shop domain" in tab.result_label.text()
    assert tab.result_label.text().startswith("✗")
    tab.domain_edit.setText("my-shop.myshopify.com")
    tab.version_edit.setText("july")
    assert not tab.save_and_test()
    assert "is not a Shopify API version" in tab.result_label.text()
    shot(tab, "settings-shopify-invalid")
    assert core.settings.shopify.shop_domain == ""  # nothing saved

    sandbox = ShopifySandbox(tokens=(SHOP_TOKEN,))
    with ServerThread(sandbox) as server:
        core.config.settings = core.settings.with_changes(
            shopify={"base_url": server.url, "shop_domain": ""}
        )
        tab.domain_edit.setText("pod-studio-sandbox")  # completed to .myshopify.com
        tab.version_edit.setText("2026-07")
        tab.token_edit.setText("shpat_wrong")
        with qtbot.waitSignal(controller.shopify.sig_tested, timeout=20000) as wrong:
            assert tab.save_and_test()
        assert wrong.args[0] is False
        assert tab.result_label.text().startswith("✗")
        tab.token_edit.setText(SHOP_TOKEN)
        with qtbot.waitSignal(controller.shopify.sig_tested, timeout=20000) as right:
            assert tab.save_and_test()
        assert right.args[0] is True, right.args
        assert tab.result_label.text().startswith("✓")
        assert tab.token_edit.text() == ""
        shot(tab, "settings-shopify-ok")
    assert core.settings.shopify.shop_domain == "pod-studio-sandbox.myshopify.com"
    assert core.secrets.get(SecretName.SHOPIFY_TOKEN) == SHOP_TOKEN
    assert SHOP_TOKEN not in core.paths.settings_file.read_text(encoding="utf-8")


class FakeBrowser(QObject):
    """Plays the seller's browser for QDesktopServices: follows the consent page."""

    def __init__(self) -> None:
        super().__init__()
        self.opened: list[str] = []

    @Slot(QUrl)
    def open(self, url: QUrl) -> None:
        import asyncio

        self.opened.append(url.toString())

        async def visit() -> None:
            async with httpx.AsyncClient(follow_redirects=True) as browser:
                await browser.get(url.toString())

        asyncio.get_event_loop().create_task(visit())


def test_etsy_keys_connect_lists_and_disconnect(
    qtbot: Any, app: tuple[AppController, Core]
) -> None:
    controller, core = app
    tab = EtsySettingsTab(controller.etsy)
    qtbot.addWidget(tab)
    tab.resize(560, 480)
    tab.show()
    assert not controller.etsy.save_keys("", "")
    assert "Paste both" in tab.result_label.text()
    tab.keystring_edit.setText("bad key!")
    tab.secret_edit.setText("s3cret")
    tab.save_keys_button.click()
    assert "cannot have" in tab.result_label.text()
    with qtbot.waitSignal(controller.etsy.sig_tested, timeout=10000) as not_connected:
        tab.test_button.click()
    assert not_connected.args[0] is False
    shot(tab, "settings-etsy-not-connected")

    browser = FakeBrowser()
    QDesktopServices.setUrlHandler("http", browser, "open")
    sandbox = EtsySandbox(per_second=1000)
    try:
        run(qtbot, sandbox.__aenter__())
        base = sandbox.base_url
        run(
            qtbot,
            core.config.save(
                core.settings.with_changes(
                    etsy={
                        "base_url": base,
                        "auth_base_url": base,
                        "connect_url": f"{base}/oauth/connect",
                        "redirect_port": 0,
                    }
                )
            ),
        )
        tab.keystring_edit.setText("sandboxkeystring")
        tab.secret_edit.setText("sandboxsecret")
        with qtbot.waitSignal(controller.etsy.sig_keys_saved, timeout=10000):
            tab.save_keys_button.click()
        assert core.secrets.get(SecretName.ETSY_SHARED_SECRET) == "sandboxsecret"
        assert tab.secret_edit.text() == ""
        with qtbot.waitSignal(controller.etsy.sig_connected, timeout=30000) as connected:
            tab.connect_button.click()
        assert connected.args[0] is True, connected.args
        assert browser.opened and browser.opened[0].startswith(f"{base}/oauth/connect")
        with qtbot.waitSignal(controller.etsy.sig_choices_loaded, timeout=20000):
            tab.load_button.click()
        assert tab.combos["shipping_profiles"].count() >= 1
        assert tab.combos["shops"].count() >= 1
        with qtbot.waitSignal(controller.etsy.sig_choices_saved, timeout=10000) as saved:
            assert tab.save_choices()
        assert saved.args[0] is True
        assert core.settings.etsy.shipping_profile_id == int(
            tab.combos["shipping_profiles"].currentData()
        )
        with qtbot.waitSignal(controller.etsy.sig_tested, timeout=10000) as tested:
            tab.test_button.click()
        assert tested.args[0] is True, tested.args
        shot(tab, "settings-etsy-connected")
        with qtbot.waitSignal(controller.etsy.sig_disconnected, timeout=10000):
            tab.disconnect_button.click()
        assert core.secrets.get(SecretName.ETSY_REFRESH_TOKEN) is None
        assert core.platforms.etsy is None
    finally:
        QDesktopServices.unsetUrlHandler("http")
        run(qtbot, sandbox.__aexit__(None, None, None))


def test_comfyui_server_section_validates_and_saves(
    qtbot: Any, app: tuple[AppController, Core], tmp_path: Any
) -> None:
    controller, core = app
    tab = ComfyUIServerSettingsTab(controller.settings)
    qtbot.addWidget(tab)
    tab.resize(520, 360)
    tab.show()
    tab.enabled_check.setChecked(True)
    tab.folder_edit.setText("")
    assert not tab.apply()
    assert "choose the ComfyUI folder" in tab.result_label.text()
    tab.folder_edit.setText(str(tmp_path))
    tab.args_edit.setText("--port 9999")
    assert not tab.apply()
    assert "choose the port in the port field" in tab.result_label.text()
    shot(tab, "settings-comfyui-invalid")
    tab.args_edit.setText("--lowvram")
    tab.port_spin.setValue(8190)
    tab.enabled_check.setChecked(False)  # saved but not started here
    with qtbot.waitSignal(controller.settings.sig_settings_saved, timeout=10000):
        assert tab.apply()
    assert core.settings.comfyui_process.extra_args == ["--lowvram"]
    assert core.settings.comfyui_process.port == 8190
    qtbot.waitUntil(lambda: tab.result_label.text() == "✓ saved", timeout=5000)
