"""Domain layer: value objects for generation (requests, jobs, images, server info)."""

from __future__ import annotations

import random
import re
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator

MAX_PROMPT_CHARS = 4000
MAX_PROMPTS_PER_BATCH = 1000
MAX_SEED = 2**53 - 1  # ComfyUI accepts up to 0xffffffffffffffff; JSON-safe ints are enough


class Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class JobState(StrEnum):
    QUEUED = "queued"
    RUNNING = "running"
    DONE = "done"
    FAILED = "failed"
    CANCELLED = "cancelled"

    @property
    def is_terminal(self) -> bool:
        return self in (JobState.DONE, JobState.FAILED, JobState.CANCELLED)


class ConnectionState(StrEnum):
    CONNECTING = "connecting"
    CONNECTED = "connected"
    RECONNECTING = "reconnecting"
    OFFLINE = "offline"


class ServerProblem(StrEnum):
    """Why a ComfyUI server cannot be used, told apart (status bar, health dock, doctor)."""

    NONE = ""
    OFFLINE = "offline"  # nothing answers at that address
    NOT_COMFYUI = "not_comfyui"  # something answers, but it is not ComfyUI
    WRONG_VERSION = "wrong_version"  # ComfyUI, but too old for POD Studio
    BUSY = "busy"  # ComfyUI, but it does not answer in time


# C0 and C1 control characters but tab and line breaks (a pasted multi-line prompt stays one
# prompt per line in the editor; the command line keeps what it was given)
_CONTROL_CHARS = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]")


class GenerationRequest(Frozen):
    """What the seller asked for in the prompt editor (or on the command line)."""

    prompts: list[str]
    negative: str = ""
    variations: int = Field(default=1, ge=1, le=64)
    seed: int | None = Field(default=None, ge=0, le=MAX_SEED)
    width: int | None = Field(default=None, ge=64, le=8192)
    height: int | None = Field(default=None, ge=64, le=8192)
    checkpoint: str | None = None
    # "node_id.input_name" -> value; applied last, so it wins over detected inputs.
    overrides: dict[str, Any] = Field(default_factory=dict)

    @field_validator("prompts")
    @classmethod
    def _clean_prompts(cls, prompts: list[str]) -> list[str]:
        cleaned = [p.strip() for p in prompts if p.strip()]
        if not cleaned:
            raise ValueError("write at least one prompt (one per line)")
        if len(cleaned) > MAX_PROMPTS_PER_BATCH:
            raise ValueError(
                f"{len(cleaned)} prompts in one batch; the limit is {MAX_PROMPTS_PER_BATCH}"
            )
        too_long = [i + 1 for i, p in enumerate(cleaned) if len(p) > MAX_PROMPT_CHARS]
        if too_long:
            raise ValueError(f"prompt line(s) {too_long[:5]} exceed {MAX_PROMPT_CHARS} characters")
        controls = [i + 1 for i, p in enumerate(cleaned) if _CONTROL_CHARS.search(p)]
        if controls:
            raise ValueError(
                f"prompt line(s) {controls[:5]} contain control characters (such as NUL); "
                "a prompt is plain text: remove them"
            )
        return cleaned

    @field_validator("negative")
    @classmethod
    def _clean_negative(cls, negative: str) -> str:
        if _CONTROL_CHARS.search(negative):
            raise ValueError("the negative prompt contains control characters (such as NUL)")
        return negative


class JobSpec(Frozen):
    """One unit of generation work: one prompt with one seed (one ComfyUI prompt)."""

    job_id: str
    prompt: str
    negative: str = ""
    seed: int
    width: int | None = None
    height: int | None = None
    checkpoint: str | None = None
    overrides: dict[str, Any] = Field(default_factory=dict)
    batch_id: str = ""


class ImageRef(Frozen):
    """An output image as ComfyUI names it (to be fetched with /view). Never a local path."""

    filename: str
    subfolder: str = ""
    type: str = "output"
    node_id: str = ""


class ListingCopy(Frozen):
    """The seller's own words for a design's listings; empty fields use the prompt.

    ``name`` replaces the title's ``{short_prompt}`` (a tee's title is then "<name> T-Shirt"),
    ``description`` replaces ``{prompt}`` in the description, and ``tags`` come before the
    template's tags instead of the words picked from the prompt. Platform limits are checked
    where the listing is made (``domain.products.listing_problems``), not here: a draft the
    seller is still typing must be storable.
    """

    name: str = Field(default="", max_length=500)
    description: str = Field(default="", max_length=50_000)
    tags: tuple[str, ...] = ()

    @field_validator("name")
    @classmethod
    def _one_line(cls, value: str) -> str:
        return " ".join(value.split())

    @field_validator("tags")
    @classmethod
    def _no_blank_tags(cls, tags: tuple[str, ...]) -> tuple[str, ...]:
        return tuple(t.strip() for t in tags if t.strip())

    @property
    def is_empty(self) -> bool:
        return not (self.name or self.description.strip() or self.tags)


class GeneratedImage(Frozen):
    """An image that exists on disk, with everything the gallery and the manifest need."""

    schema_version: int = 1
    image_id: str
    job_id: str
    prompt: str
    negative: str = ""
    seed: int
    width: int
    height: int
    file: str  # absolute path on this machine
    sha256: str
    server: str
    prompt_id: str
    seconds: float
    created_at: datetime = Field(default_factory=lambda: datetime.now(UTC))
    approved: bool | None = None
    listing: ListingCopy | None = None  # the seller's words, edited in the publish panel
    # An upscaled copy made for printing (absolute path) and its pixel size; the design keeps
    # its id, prompt and hash. Publishing prints this file when it is set.
    print_file: str | None = None
    print_width: int | None = None
    print_height: int | None = None

    @property
    def print_path(self) -> str:
        """The file a print is made from: the upscaled print file, else the design."""
        return self.print_file or self.file

    @property
    def print_size(self) -> tuple[int, int]:
        """The pixel size of :attr:`print_path`."""
        if self.print_file and self.print_width and self.print_height:
            return self.print_width, self.print_height
        return self.width, self.height


class DeviceInfo(Frozen):
    name: str
    type: str = ""
    vram_total: int = 0
    vram_free: int = 0


class ServerInfo(Frozen):
    """What /system_stats says about a ComfyUI server."""

    url: str
    comfyui_version: str = ""
    python_version: str = ""
    pytorch_version: str = ""
    os: str = ""
    devices: list[DeviceInfo] = Field(default_factory=list)
    queue_remaining: int | None = None

    @property
    def device_summary(self) -> str:
        if not self.devices:
            return "no device reported"
        d = self.devices[0]
        free_gb = d.vram_free / 1024**3
        return f"{d.name} · {free_gb:.1f} GB VRAM free"


def random_seed() -> int:
    return random.SystemRandom().randint(0, 2**32 - 1)


def plan_jobs(
    request: GenerationRequest,
    *,
    batch_id: str | None = None,
    seed_source: Callable[[], int] = random_seed,
) -> list[JobSpec]:
    """One job per prompt × variation; a fixed seed gives seed, seed+1, ... per prompt."""
    batch = batch_id or uuid.uuid4().hex[:12]
    jobs: list[JobSpec] = []
    for prompt in request.prompts:
        for v in range(request.variations):
            seed = (
                (request.seed + v) % (MAX_SEED + 1) if request.seed is not None else seed_source()
            )
            jobs.append(
                JobSpec(
                    job_id=uuid.uuid4().hex,
                    prompt=prompt,
                    negative=request.negative,
                    seed=seed,
                    width=request.width,
                    height=request.height,
                    checkpoint=request.checkpoint,
                    overrides=dict(request.overrides),
                    batch_id=batch,
                )
            )
    return jobs
