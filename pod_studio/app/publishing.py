"""App layer: publishing for the GUI — the publish panel's controller, the Printify settings
controller and the per-design publish status shown on gallery cards.

- ``PublishController``: product templates and platforms to offer, the price/profit preview
  (computed off the GUI thread), and ``publish`` → ``Orchestrator.enqueue_publish``.
- ``PrintifyController``: saves the API token through the secret store (never the settings
  file), says where it is stored, lists the shops and tests the connection.
- ``PublishStatusBook``: folds publish events into one short line per design and platform
  ("printify: published", "export: creating…", "printify: failed — reason").
"""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import TYPE_CHECKING, Any

import pydantic
from PySide6.QtCore import QBuffer, QIODevice, QObject, Qt, Signal, Slot
from PySide6.QtGui import QImage

from pod_studio.app.context import (
    DescribeSecrets,
    ListPlatforms,
    ListShops,
    ListTemplates,
    PlatformMockups,
    ProfitPreview,
    SaveSecret,
    SettingsGetter,
    TestPrintify,
    UpscaleDesign,
)
from pod_studio.app.mockups import MockupSpec, mockup_spec
from pod_studio.app.runner import TaskRunner
from pod_studio.domain.errors import PodStudioError, user_message
from pod_studio.domain.events import PublishStepChanged
from pod_studio.domain.jobs import JobStatus
from pod_studio.domain.models import GeneratedImage
from pod_studio.domain.orchestration import PublishJobChanged, QueueEntry
from pod_studio.domain.pricing import validate_price
from pod_studio.domain.products import ProductTemplate
from pod_studio.domain.settings import SecretName

if TYPE_CHECKING:
    from pod_studio.app.bridge import QtEventBridge
    from pod_studio.services.orchestrator import Orchestrator

log = logging.getLogger(__name__)

_STEP_WORDS = {
    "prepare": "preparing",
    "upload": "uploading",
    "create": "creating",
    "publish": "publishing",
}
_WAITING = frozenset({"queued", "retry_wait"})
_FAILED = frozenset({"dead", "partially_published"})


# --- publish status per design ---------------------------------------------------------------


@dataclass
class _Task:
    state: str = "queued"
    step: str = ""
    detail: str = ""
    published: bool = False


class PublishStatusBook:
    """Publish state per design × template × platform, and the card text per platform."""

    def __init__(self) -> None:
        self._tasks: dict[str, dict[tuple[str, str], _Task]] = {}

    def designs(self) -> list[str]:
        return list(self._tasks)

    def load_entries(self, entries: Iterable[QueueEntry]) -> set[str]:
        """Fill from a queue snapshot's publish jobs; returns the designs seen."""
        seen: set[str] = set()
        for e in entries:
            if e.kind.value != "publish" or not e.design_id:
                continue
            template = e.label.partition(" @ ")[0]
            task = self._task(e.design_id, template, e.platform)
            task.state = e.state.value
            task.detail = e.last_error
            task.published = any(s.name == "publish" and s.state == "done" for s in e.steps)
            seen.add(e.design_id)
        return seen

    def _task(self, design_id: str, template: str, platform: str) -> _Task:
        tasks = self._tasks.setdefault(design_id, {})
        return tasks.setdefault((template, platform), _Task())

    def apply_job(self, event: PublishJobChanged) -> str:
        task = self._task(event.design_id, event.template, event.platform)
        if event.state == "queued" and task.state in _FAILED | {"cancelled", "succeeded"}:
            task.published = False
        task.state = event.state
        task.detail = event.detail
        if event.state != "running":
            task.step = ""
        return event.design_id

    def apply_step(self, event: PublishStepChanged) -> str:
        task = self._task(event.design_id, event.product, event.platform)
        step, _sep, phase = event.state.partition(":")
        if phase in ("in_flight", "running"):
            task.step = step
            if task.state in _WAITING:
                task.state = "running"
        elif phase in ("done", "skipped") and step == "publish":
            task.published = True
        elif phase == "failed":
            task.detail = event.detail or task.detail
        return event.design_id

    def lines(self, design_id: str) -> dict[str, str]:
        """Platform -> short status text, for one design."""
        by_platform: dict[str, list[_Task]] = {}
        for (_template, platform), task in self._tasks.get(design_id, {}).items():
            by_platform.setdefault(platform, []).append(task)
        return {p: _platform_text(tasks) for p, tasks in sorted(by_platform.items())}


_FILE_PREFIX = re.compile(r"^[\w.-]+\.(?:png|jpe?g|webp|tiff?)\s+", re.IGNORECASE)


def short_reason(detail: str) -> str:
    """A failure reason fit for a card: without the leading file name."""
    return _FILE_PREFIX.sub("", detail.strip())


def _platform_text(tasks: Sequence[_Task]) -> str:
    running = [t for t in tasks if t.state == "running"]
    if running:
        step = next((t.step for t in running if t.step), "")
        return f"{_STEP_WORDS.get(step, 'working')}…"
    waiting = [t for t in tasks if t.state in _WAITING]
    if any(t.state == "retry_wait" for t in waiting):
        reason = next((t.detail for t in waiting if t.detail), "")
        return "will retry" + (f" — {reason}" if reason else "")
    if waiting:
        return "queued"
    failed = [t for t in tasks if t.state in _FAILED]
    if failed:
        reason = short_reason(next((t.detail for t in failed if t.detail), ""))
        return "failed" + (f" — {reason}" if reason else "")
    if all(t.state == "cancelled" for t in tasks):
        return "cancelled"
    done = [t for t in tasks if t.state == "succeeded"]
    if done and all(t.published for t in done):
        return "published"
    if done:
        return "draft created"
    return tasks[0].state.replace("_", " ")


# --- the publish panel -----------------------------------------------------------------------


@dataclass(frozen=True)
class PublishRequest:
    designs: list[GeneratedImage]
    templates: list[str]
    platforms: list[str]
    draft: bool


def check_publish(request: PublishRequest) -> list[str]:
    """Why ``request`` cannot be published ([] when it can)."""
    problems: list[str] = []
    if not request.designs:
        problems.append("select at least one approved design in the gallery")
    elif any(d.approved is not True for d in request.designs):
        problems.append("only approved designs can be published")
    if not request.templates:
        problems.append("choose at least one product")
    if not request.platforms:
        problems.append("choose at least one platform")
    return problems


MOCKUP_THUMB_PX = 480


def _thumbnail_bytes(images: Sequence[bytes]) -> list[bytes]:
    """Each image at most ``MOCKUP_THUMB_PX`` a side, as PNG; unreadable ones are left out.
    QImage is reentrant, so this runs in a worker thread."""
    out: list[bytes] = []
    for data in images:
        image = QImage.fromData(data)
        if image.isNull():
            continue
        if max(image.width(), image.height()) > MOCKUP_THUMB_PX:
            image = image.scaled(
                MOCKUP_THUMB_PX,
                MOCKUP_THUMB_PX,
                Qt.AspectRatioMode.KeepAspectRatio,
                Qt.TransformationMode.SmoothTransformation,
            )
        buffer = QBuffer()
        buffer.open(QIODevice.OpenModeFlag.WriteOnly)
        image.save(buffer, "PNG")  # type: ignore[call-overload]  # the stubs say bytes; PySide takes str
        out.append(bytes(buffer.data().data()))
    return out


class PublishController(QObject):
    """Signals:
    sig_platforms_loaded(list[PlatformChoice])
    sig_profit_loaded(str image_id, str template, list[ProfitLine])
    sig_profit_failed(str image_id, str template, str message)
    sig_publish_enqueued(list job_ids): the listings that will run (new or retried).
    sig_publish_message(str text): what the publish did, for the seller ("2 listing(s)
        queued; 1 failed listing(s) retried; 1 already published (nothing to do)").
    sig_publish_failed(str message)
    sig_design_image_ready(str image_id, bytes png): a downscaled copy of the design for the
        preview mockups (read and scaled off the GUI thread).
    sig_design_image_failed(str image_id, str message)
    sig_upscaled(GeneratedImage image): the design with its new upscaled print file.
    sig_upscale_failed(str message): why an upscale did not happen (the design is unchanged).
    sig_platform_mockups_loaded(str image_id, str template, list[bytes] images): Printify's own
        mockups of the design as that product (JPEG/PNG bytes), once its draft exists; asked
        for with ``load_platform_mockups`` and fetched again when the draft is created.
        Nothing is emitted while there are none (or on failure: logged).
    """

    sig_platforms_loaded = Signal(list)
    sig_profit_loaded = Signal(str, str, list)
    sig_profit_failed = Signal(str, str, str)
    sig_publish_enqueued = Signal(list)
    sig_publish_message = Signal(str)
    sig_publish_failed = Signal(str)
    sig_design_image_ready = Signal(str, bytes)
    sig_design_image_failed = Signal(str, str)
    sig_upscaled = Signal(object)
    sig_upscale_failed = Signal(str)
    sig_platform_mockups_loaded = Signal(str, str, list)

    def __init__(
        self,
        runner: TaskRunner,
        orchestrator: Orchestrator | None,
        settings_getter: SettingsGetter,
        *,
        list_templates: ListTemplates | None = None,
        list_platforms: ListPlatforms | None = None,
        profit_preview: ProfitPreview | None = None,
        thumbnail: Callable[[GeneratedImage], bytes] | None = None,
        upscale: UpscaleDesign | None = None,
        platform_mockups: PlatformMockups | None = None,
        bridge: QtEventBridge | None = None,
        parent: QObject | None = None,
    ) -> None:
        super().__init__(parent)
        self._platform_mockups = platform_mockups
        # (image id, template) -> the design, for the mockups asked for and not had yet
        self._mockups_wanted: dict[tuple[str, str], GeneratedImage] = {}
        self._mockups: dict[tuple[str, str], list[bytes]] = {}
        self._mockups_loading: set[tuple[str, str]] = set()
        self._mockups_again: set[tuple[str, str]] = set()  # the draft came during a fetch
        if bridge is not None:
            bridge.sig_publish_step_changed.connect(self._on_bridge_publish_step_changed)
        self._upscale = upscale
        self._upscaling: set[str] = set()
        self._thumbnail = thumbnail
        self._design_images: dict[str, bytes] = {}
        self._runner = runner
        self._orch = orchestrator
        self._settings = settings_getter
        self._list_templates = list_templates
        self._list_platforms = list_platforms
        self._profit = profit_preview

    @property
    def available(self) -> bool:
        return self._orch is not None

    @property
    def can_preview_profit(self) -> bool:
        return self._profit is not None

    def templates(self) -> list[ProductTemplate]:
        if self._list_templates is None:
            return []
        try:
            return list(self._list_templates())
        except PodStudioError as exc:
            log.warning("product templates unavailable: %s", exc)
            return []

    def default_draft(self) -> bool:
        """Draft unless the seller turned on auto-publish in the settings."""
        return not bool(getattr(self._settings(), "auto_publish", False))

    def load_platforms(self) -> bool:
        if self._list_platforms is None:
            self.sig_platforms_loaded.emit([])
            return False
        self._runner.spawn(self._load_platforms(self._list_platforms), name="list-platforms")
        return True

    async def _load_platforms(self, fetch: ListPlatforms) -> None:
        try:
            platforms = await fetch()
        except Exception as exc:  # noqa: BLE001 - the panel shows no platform and why
            log.warning("could not list platforms: %s", exc)
            self.sig_publish_failed.emit(user_message(exc))
            platforms = []
        self.sig_platforms_loaded.emit(list(platforms))

    def load_profit(self, image: GeneratedImage, templates: Sequence[str]) -> bool:
        """Price, cost and profit per variant of each template (``sig_profit_loaded``)."""
        if self._profit is None:
            for name in templates:
                self.sig_profit_failed.emit(image.image_id, name, "price preview not available")
            return False
        for name in templates:
            self._runner.spawn(
                self._load_profit(self._profit, image, name), name=f"profit-{name[:16]}"
            )
        return True

    async def _load_profit(self, preview: ProfitPreview, image: GeneratedImage, name: str) -> None:
        try:
            lines = await preview(image, name)
        except Exception as exc:  # noqa: BLE001 - shown in the price table
            log.info("no profit preview for %s: %s", name, exc)
            self.sig_profit_failed.emit(image.image_id, name, user_message(exc))
            return
        self.sig_profit_loaded.emit(image.image_id, name, list(lines))

    def mockups(self, image: GeneratedImage, templates: Sequence[str]) -> list[MockupSpec]:
        """How ``image`` sits on each of ``templates`` (no file read: sizes are known)."""
        by_name = {t.name: t for t in self.templates()}
        return [mockup_spec(image, by_name[n]) for n in templates if n in by_name]

    def load_design_image(self, image: GeneratedImage) -> bool:
        """A small PNG of the design for the mockups, made off the GUI thread
        (``sig_design_image_ready``; at once when already made)."""
        cached = self._design_images.get(image.image_id)
        if cached is not None:
            self.sig_design_image_ready.emit(image.image_id, cached)
            return True
        if self._thumbnail is None:
            self.sig_design_image_failed.emit(image.image_id, "no preview of the design here")
            return False
        self._runner.spawn(
            self._load_design_image(self._thumbnail, image),
            name=f"mockup-{image.image_id[:8]}",
        )
        return True

    async def _load_design_image(
        self, thumbnail: Callable[[GeneratedImage], bytes], image: GeneratedImage
    ) -> None:
        try:
            data = await asyncio.to_thread(thumbnail, image)
        except Exception as exc:  # noqa: BLE001 - the mockup shows the print area only
            log.info("no preview image of %s: %s", image.file, exc)
            self.sig_design_image_failed.emit(image.image_id, user_message(exc))
            return
        self._design_images[image.image_id] = data
        self.sig_design_image_ready.emit(image.image_id, data)

    def load_platform_mockups(self, image: GeneratedImage, templates: Sequence[str]) -> bool:
        """Printify's own mockups of ``image`` on each of ``templates``, fetched off the GUI
        thread (``sig_platform_mockups_loaded``, at once when already had). Those not made yet
        are fetched again when Printify's draft of them is created."""
        if self._platform_mockups is None:
            return False
        for name in templates:
            key = (image.image_id, name)
            cached = self._mockups.get(key)
            if cached:
                self.sig_platform_mockups_loaded.emit(image.image_id, name, list(cached))
                continue
            self._mockups_wanted[key] = image
            self._fetch_platform_mockups(key, image)
        return True

    def _fetch_platform_mockups(self, key: tuple[str, str], image: GeneratedImage) -> None:
        if self._platform_mockups is None:
            return
        if key in self._mockups_loading:
            self._mockups_again.add(key)
            return
        self._mockups_loading.add(key)
        self._runner.spawn(
            self._load_platform_mockups(self._platform_mockups, key, image),
            name=f"printify-mockups-{image.image_id[:8]}",
        )

    async def _load_platform_mockups(
        self, fetch: PlatformMockups, key: tuple[str, str], image: GeneratedImage
    ) -> None:
        images: list[bytes] = []
        try:
            # shrunk in a worker: a platform's full-size renders are not decoded on the GUI thread
            images = await asyncio.to_thread(_thumbnail_bytes, await fetch(image.sha256, key[1]))
        except Exception as exc:  # noqa: BLE001 - the card keeps saying they come later
            log.info("no Printify mockups of %s as %s: %s", image.image_id, key[1], exc)
        self._mockups_loading.discard(key)
        if images:
            self._mockups[key] = images
            self.sig_platform_mockups_loaded.emit(key[0], key[1], list(images))
        if key in self._mockups_again:
            self._mockups_again.discard(key)
            self._fetch_platform_mockups(key, image)

    @Slot(object)
    def _on_bridge_publish_step_changed(self, event: PublishStepChanged) -> None:
        if event.platform != "printify" or event.state not in ("create:done", "create:skipped"):
            return
        key = (event.design_id, event.product)
        self._mockups.pop(key, None)  # a new draft: its mockups are new
        image = self._mockups_wanted.get(key)
        if image is not None:
            self._fetch_platform_mockups(key, image)

    @property
    def can_upscale(self) -> bool:
        return self._upscale is not None

    def is_upscaling(self, image_id: str) -> bool:
        return image_id in self._upscaling

    def upscale(self, image: GeneratedImage, templates: Sequence[str]) -> bool:
        """Upscale ``image`` on ComfyUI for 300 DPI on the widest of ``templates``, off the GUI
        thread (``sig_upscaled`` / ``sig_upscale_failed``); False when it cannot start."""
        if self._upscale is None:
            self.sig_upscale_failed.emit("Upscaling needs a ComfyUI server; none is set up.")
            return False
        if image.image_id in self._upscaling:
            return False
        self._upscaling.add(image.image_id)
        self._runner.spawn(
            self._run_upscale(self._upscale, image, list(templates)),
            name=f"upscale-{image.image_id[:8]}",
        )
        return True

    async def _run_upscale(
        self, upscale: UpscaleDesign, image: GeneratedImage, templates: list[str]
    ) -> None:
        try:
            updated = await upscale(image, templates)
        except Exception as exc:  # noqa: BLE001 - shown in the panel; the design is unchanged
            log.warning("upscale of %s failed: %s", image.image_id, exc)
            self._upscaling.discard(image.image_id)
            self.sig_upscale_failed.emit(user_message(exc))
            return
        self._upscaling.discard(image.image_id)
        self.sig_upscaled.emit(updated)

    def publish(self, request: PublishRequest) -> list[str]:
        """Queue one publish job per design × template × platform; returns the problems."""
        problems = check_publish(request)
        if self._orch is None:
            problems.append("publishing is not available")
        if problems:
            self.sig_publish_failed.emit("; ".join(problems))
            return problems
        assert self._orch is not None
        self._runner.spawn(self._publish(self._orch, request), name="enqueue-publish")
        return []

    async def _publish(self, orch: Orchestrator, request: PublishRequest) -> None:
        try:
            before = {e.job_id: e.state for e in (await orch.snapshot()).entries}
            ids = await orch.enqueue_publish(
                request.designs, request.templates, request.platforms, draft=request.draft
            )
            # a listing that already has a job keeps it: a failed or cancelled one is
            # retried now; a published or still queued one is left as it is (and said so)
            outcome = PublishOutcome()
            for job_id in ids:
                state = before.get(job_id)
                if state is None:
                    outcome.queued.append(job_id)
                elif state in _RETRY_AGAIN:
                    await orch.retry_now(job_id)
                    outcome.retried.append(job_id)
                elif state is JobStatus.SUCCEEDED:
                    outcome.done.append(job_id)
                else:
                    outcome.waiting.append(job_id)
        except Exception as exc:  # noqa: BLE001 - shown in the panel
            log.warning("publishing could not be queued: %s", exc)
            self.sig_publish_failed.emit(user_message(exc))
            return
        self.sig_publish_message.emit(outcome.text(request.draft))
        self.sig_publish_enqueued.emit(outcome.queued + outcome.retried)


_RETRY_AGAIN = frozenset({JobStatus.DEAD, JobStatus.CANCELLED, JobStatus.PARTIALLY_PUBLISHED})


@dataclass
class PublishOutcome:
    """What one "Publish" did with each listing (job ids)."""

    queued: list[str] = field(default_factory=list)  # new listings
    retried: list[str] = field(default_factory=list)  # failed or cancelled before: run again
    done: list[str] = field(default_factory=list)  # published (or drafted) already
    waiting: list[str] = field(default_factory=list)  # already in the queue or running

    def text(self, draft: bool = True) -> str:
        parts: list[str] = []
        if self.queued:
            parts.append(f"{len(self.queued)} listing(s) queued")
        if self.retried:
            parts.append(f"{len(self.retried)} failed listing(s) retried")
        if self.done:
            what = "created as draft(s)" if draft else "published"
            parts.append(f"{len(self.done)} already {what} (nothing to do)")
        if self.waiting:
            parts.append(f"{len(self.waiting)} already in the queue")
        text = "; ".join(parts) or "nothing to publish"
        if self.queued or self.retried:
            text += " — follow them on the gallery cards and in the Job queue."
        return text


# --- Printify settings -----------------------------------------------------------------------


class PrintifyController(QObject):
    """Signals:
    sig_token_saved(bool ok, str message)
    sig_store_described(str text)
    sig_shops_loaded(list[tuple[str, str]]) / sig_shops_failed(str message)
    sig_tested(bool ok, str message)
    """

    sig_token_saved = Signal(bool, str)
    sig_store_described = Signal(str)
    sig_shops_loaded = Signal(list)
    sig_shops_failed = Signal(str)
    sig_tested = Signal(bool, str)

    def __init__(
        self,
        runner: TaskRunner,
        *,
        save_secret: SaveSecret | None = None,
        describe: DescribeSecrets | None = None,
        list_shops: ListShops | None = None,
        test: TestPrintify | None = None,
        parent: QObject | None = None,
    ) -> None:
        super().__init__(parent)
        self._runner = runner
        self._save = save_secret
        self._describe = describe
        self._shops = list_shops
        self._test = test

    @property
    def can_save_token(self) -> bool:
        return self._save is not None

    @property
    def can_list_shops(self) -> bool:
        return self._shops is not None

    @property
    def can_test(self) -> bool:
        return self._test is not None

    def save_token(self, token: str) -> bool:
        token = token.strip()
        if not token:
            self.sig_token_saved.emit(False, "paste a token first")
            return False
        if self._save is None:
            self.sig_token_saved.emit(False, "tokens cannot be saved here")
            return False
        self._runner.spawn(self._save_token(self._save, token), name="save-token")
        return True

    async def _save_token(self, save: SaveSecret, token: str) -> None:
        try:
            await save(SecretName.PRINTIFY_TOKEN.value, token)
        except Exception as exc:  # noqa: BLE001 - reported without the token
            log.warning("the Printify token was not saved: %s", type(exc).__name__)
            self.sig_token_saved.emit(False, user_message(exc))
            return
        self.sig_token_saved.emit(True, "token saved")

    def describe_store(self) -> bool:
        if self._describe is None:
            self.sig_store_described.emit("no secret store is available")
            return False
        self._runner.spawn(self._describe_store(self._describe), name="describe-secrets")
        return True

    async def _describe_store(self, describe: DescribeSecrets) -> None:
        try:
            text = await asyncio.to_thread(describe)
        except Exception as exc:  # noqa: BLE001 - a label, not a crash
            text = f"secret store unavailable: {user_message(exc)}"
        self.sig_store_described.emit(text)

    def load_shops(self, base_url: str | None = None, token: str | None = None) -> bool:
        """List the account's shops, with the URL and token typed in the dialog if given."""
        if self._shops is None:
            self.sig_shops_failed.emit("Printify is not set up")
            return False
        self._runner.spawn(
            self._load_shops(self._shops, base_url, token or None), name="printify-shops"
        )
        return True

    async def _load_shops(self, fetch: ListShops, base_url: str | None, token: str | None) -> None:
        try:
            shops = await fetch(base_url, token)
        except Exception as exc:  # noqa: BLE001 - shown next to the shop picker
            self.sig_shops_failed.emit(user_message(exc))
            return
        self.sig_shops_loaded.emit([(str(i), str(t)) for i, t in shops])

    def test(self, base_url: str | None = None, token: str | None = None) -> bool:
        """Test the connection with what is typed in the dialog (default: what is saved)."""
        if self._test is None:
            self.sig_tested.emit(False, "Printify is not set up (save a token first)")
            return False
        self._runner.spawn(
            self._run_test(self._test, base_url, token or None), name="printify-test"
        )
        return True

    async def _run_test(self, test: TestPrintify, base_url: str | None, token: str | None) -> None:
        try:
            text = await test(base_url, token)
        except Exception as exc:  # noqa: BLE001 - the answer to the seller's question
            self.sig_tested.emit(False, user_message(exc))
            return
        self.sig_tested.emit(True, text)


def templates_with_prices(
    templates: Sequence[ProductTemplate], prices: dict[str, str]
) -> tuple[list[dict[str, Any]], list[str]]:
    """The templates as settings dicts with new base prices (``name -> "24.99"``), and the
    problems found (a price that is not a price, an override below the new base is kept)."""
    out: list[dict[str, Any]] = []
    problems: list[str] = []
    for template in templates:
        data = template.model_dump(mode="json")
        text = prices.get(template.name)
        if text is not None and text.strip():
            try:
                base: Decimal = validate_price(text.strip(), what=f"price of {template.name}")
            except PodStudioError as exc:
                problems.append(exc.user_message)
                continue
            data["price"]["base"] = str(base)
        try:
            ProductTemplate.model_validate(data)
        except pydantic.ValidationError as exc:
            problems.append(f"{template.name}: {exc.errors()[0].get('msg', 'invalid')}")
            continue
        out.append(data)
    return out, problems
