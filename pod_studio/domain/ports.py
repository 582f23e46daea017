"""Domain layer: ports (Protocols) that services call and adapters implement."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, Protocol, TypeVar, runtime_checkable

from pydantic import BaseModel, ConfigDict

from pod_studio.domain.costs import SellerCosts
from pod_studio.domain.models import GeneratedImage, ImageRef, JobSpec, ListingCopy, ServerInfo

T = TypeVar("T")


class RunUpdate(BaseModel):
    """A live update from a running prompt, passed to ``ImageGenerator.run``'s callback.

    ``kind`` is one of: "submitted", "started", "executing", "progress", "preview",
    "cached", "resubmitted", "reconnecting", "finished" (the server is done with the prompt;
    its images are being fetched).
    """

    model_config = ConfigDict(frozen=True, extra="forbid")
    kind: str
    prompt_id: str = ""
    node: str = ""
    node_class: str = ""
    value: float = 0.0
    max: float = 0.0
    mime: str = ""
    data: bytes = b""
    detail: str = ""


class RunResult(BaseModel):
    """What a finished prompt produced: the image bytes, fetched from the server."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    prompt_id: str
    server: str
    images: list[tuple[ImageRef, bytes]]
    cached: bool = False
    seconds: float = 0.0


UpdateCallback = Callable[[RunUpdate], None]


@runtime_checkable
class ImageGenerator(Protocol):
    """A ComfyUI server (or anything that turns a prompt graph into images)."""

    @property
    def url(self) -> str: ...

    async def start(self) -> None:
        """Open the live channel (websocket) and start reporting connection changes."""

    async def aclose(self) -> None: ...

    async def system_info(self) -> ServerInfo: ...

    async def object_info(self) -> dict[str, Any]: ...

    async def checkpoints(self) -> list[str]: ...

    async def run(
        self, graph: dict[str, Any], *, prompt_id: str, on_update: UpdateCallback
    ) -> RunResult:
        """Submit ``graph`` as ``prompt_id``, follow it to the end, fetch its images.

        Raises ``ValidationError`` (rejected), ``ExecutionError`` (a node raised),
        ``JobInterruptedError``, or retryable ``ServiceError``/``TimeoutError``.
        A prompt lost to a server restart is resubmitted (``on_update`` kind "resubmitted").
        Cancelling the awaiting task removes the prompt from the queue or interrupts it.
        """

    async def cancel(self, prompt_id: str) -> None:
        """Delete ``prompt_id`` from the queue, or interrupt it if it is running."""


@runtime_checkable
class ImageUpscaler(Protocol):
    """A ComfyUI server that takes an uploaded design through an upscale graph."""

    @property
    def url(self) -> str: ...

    async def upscale_models(self) -> list[str]:
        """Upscale model files the server offers (empty: none, or no such node)."""

    async def upload_image(self, data: bytes, filename: str, *, subfolder: str = "") -> str:
        """Put ``data`` in the server's input folder; the name a ``LoadImage`` node takes."""

    async def run(
        self, graph: dict[str, Any], *, prompt_id: str, on_update: UpdateCallback
    ) -> RunResult: ...


class PrintFileStore(Protocol):
    """Where a design's upscaled print file is kept (beside the design, same id)."""

    async def set_print_file(self, image_id: str, data: bytes) -> GeneratedImage: ...


class ImageStore(Protocol):
    """Where finished images and their metadata live (the gallery, or a --out folder)."""

    async def save(
        self,
        job: JobSpec,
        data: bytes,
        *,
        ref: ImageRef,
        server: str,
        prompt_id: str,
        seconds: float,
    ) -> GeneratedImage: ...

    async def list_images(self) -> list[GeneratedImage]: ...

    async def set_approved(self, image_id: str, approved: bool | None) -> GeneratedImage: ...

    async def set_listing(self, image_id: str, listing: ListingCopy | None) -> GeneratedImage: ...


Clock = Callable[[], float]
Sleep = Callable[[float], Awaitable[None]]


class CallGuard(Protocol):
    """How an adapter runs one remote call under the service's resilience policy.

    Services provide the real one (retry with backoff + circuit breaker + rate budget,
    emitting ``RetryScheduled``/``BreakerChanged``); adapters receive it from the composition
    and wrap every request in it. ``idempotent=False`` marks calls that create something
    remotely: they are not retried blindly (the caller reconciles first).
    ``cost`` is the rate-budget weight; ``bucket`` names an extra budget (e.g. "catalog").
    """

    async def call(
        self,
        operation: str,
        fn: Callable[[], Awaitable[T]],
        *,
        idempotent: bool = True,
        cost: float = 1.0,
        bucket: str | None = None,
    ) -> T: ...


class PassthroughGuard:
    """A guard that just runs the call (for tests and tools that want no policy)."""

    async def call(
        self,
        operation: str,
        fn: Callable[[], Awaitable[T]],
        *,
        idempotent: bool = True,
        cost: float = 1.0,
        bucket: str | None = None,
    ) -> T:
        return await fn()


class SellerCostStore(Protocol):
    """Where the seller's own cost table is kept (blocking file I/O: call from a thread)."""

    def load(self) -> SellerCosts:
        """The saved table (empty when there is none; a corrupt file is moved aside)."""
        ...

    def save(self, costs: SellerCosts) -> None:
        """Write the table atomically."""
        ...
