"""Composition (Qt-free): the engine as the headless commands run it.

``open_core`` builds the same ``Core`` the window runs (``build_core``), starts it (instance
lock, job database, servers, crash recovery) and closes it after use. On top of it:

- ``run_generation``: a ``generate`` command is one batch of the durable queue. Its job ids
  derive from the request and the output folder, so the same command run again (after a
  crash, a kill, Ctrl-C) resumes the batch: finished jobs are not generated again. The output
  folder and its ``manifest.json`` are a view of the batch's finished jobs (``OutputFolder``).
- ``run_publish``: each design × template × platform is a publish job of the same queue
  (``Orchestrator.enqueue_publish``, keyed by idempotency key), run by the same
  ``PublishService`` the window uses. Waits (an open breaker, a rate budget) are waited out.
- ``read_manifest``: the designs a ``generate`` manifest lists.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import logging
import uuid
from collections.abc import AsyncIterator, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from pod_studio.adapters.storage.images import OutputFolder
from pod_studio.adapters.storage.ledger import SqliteJobLedger
from pod_studio.adapters.storage.paths import AppPaths, app_paths
from pod_studio.composition.core import Core, build_core
from pod_studio.composition.overrides import ComfyUIClientOverrides, ResilienceOverrides
from pod_studio.domain.errors import ExitClass, PodStudioError, ValidationError, user_message
from pod_studio.domain.events import EventSink
from pod_studio.domain.jobs import ErrorKind, JobStatus, StepStatus, idempotency_key
from pod_studio.domain.ledger_port import JobRecord
from pod_studio.domain.models import GeneratedImage, GenerationRequest, JobSpec, plan_jobs
from pod_studio.domain.orchestration import SAVE_STEP, PublishPayload, publish_job_id
from pod_studio.domain.settings import AppSettings, SecretStorePort
from pod_studio.domain.workflow import WorkflowTemplate, preflight_graph
from pod_studio.services.orchestrator import OrchestratorOptions

log = logging.getLogger(__name__)

DEFAULT_HORIZON = 300.0


@contextlib.asynccontextmanager
async def open_core(
    *,
    sinks: Iterable[EventSink] = (),
    servers: Sequence[str] | None = None,
    template: WorkflowTemplate | None = None,
    settings: AppSettings | None = None,
    connect: bool = True,
    paths: AppPaths | None = None,
    secrets: SecretStorePort | None = None,
    options: OrchestratorOptions | None = None,
    comfyui_client: ComfyUIClientOverrides | None = None,
    resilience: ResilienceOverrides | None = None,
) -> AsyncIterator[Core]:
    """The engine, started; closed (and the data folder released) on the way out.

    ``connect=False`` opens only the job database (queue commands that send nothing)."""
    core = build_core(
        paths=paths,
        settings=settings,
        servers=servers,
        template=template,
        sinks=sinks,
        secrets=secrets,
        options=options,
        comfyui_client=comfyui_client,
        resilience=resilience,
    )
    try:
        await core.start(connect=connect)
        for warning in [*core.settings_warnings, *core.ledger_warnings]:
            log.warning("%s", warning)
        yield core
    finally:
        await core.aclose()


@contextlib.asynccontextmanager
async def open_ledger(paths: AppPaths | None = None) -> AsyncIterator[SqliteJobLedger]:
    """The job database alone, for reading it (``pod-studio queue``) while the app may run."""
    paths = (paths or app_paths()).ensure()
    ledger = SqliteJobLedger(paths.ledger_file)
    try:
        for warning in await ledger.open():
            log.warning("job database: %s", warning)
        yield ledger
    finally:
        await ledger.aclose()


# --- generate --------------------------------------------------------------------------------


@dataclass
class GenerationOutcome:
    """What a ``generate`` run left: every job of the batch and the images in the folder."""

    batch_id: str
    jobs: list[JobRecord]
    images: list[GeneratedImage]
    manifest: Path
    resumed: int = 0
    failures: dict[str, str] = field(default_factory=dict)
    unfinished: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.failures and not self.unfinished


def batch_specs(
    request: GenerationRequest, template: WorkflowTemplate, out_dir: Path
) -> list[JobSpec]:
    """The batch's jobs, with ids that depend only on the request, the workflow and the
    output folder: the same command gives the same jobs (random seeds are drawn once, when a
    job is first recorded; a job already in the ledger keeps its own)."""
    material = json.dumps(
        {
            "request": request.model_dump(mode="json"),
            "workflow": template.name,
            "out": str(out_dir.resolve()),
        },
        sort_keys=True,
    )
    batch_id = hashlib.sha256(material.encode("utf-8")).hexdigest()[:16]
    specs = plan_jobs(request, batch_id=batch_id)
    return [
        spec.model_copy(update={"job_id": uuid.uuid5(uuid.NAMESPACE_URL, f"{batch_id}/{n}").hex})
        for n, spec in enumerate(specs)
    ]


@dataclass(frozen=True)
class ServerCheck:
    """One problem one server has with the graph a request sends, and its exit class."""

    url: str
    message: str
    exit_class: ExitClass

    def __str__(self) -> str:
        return f"{self.url}: {self.message}"


async def preflight_servers(core: Core, spec: JobSpec) -> list[ServerCheck]:
    """Problems per server for the graph this request sends (overrides applied): unreachable
    (the error's own exit class), missing node classes or model files (bad input)."""
    graph = core.template.build(spec, filename_prefix=core.orchestrator.options.filename_prefix)
    problems: list[ServerCheck] = []
    for gen in core.generators:
        try:
            info = await gen.object_info()
        except PodStudioError as exc:
            problems.append(ServerCheck(gen.url, user_message(exc), exc.exit_class))
            continue
        problems.extend(
            ServerCheck(gen.url, p, ExitClass.BAD_INPUT) for p in preflight_graph(graph, info)
        )
    return problems


def check_output_folder(out_dir: Path) -> None:
    """``--out`` checked before anything starts (``OutputFolder.check``): a folder, made when
    missing, writable, with no manifest link out of it."""
    OutputFolder(out_dir).check()


async def run_generation(
    core: Core, request: GenerationRequest, out_dir: Path, *, horizon: float = DEFAULT_HORIZON
) -> GenerationOutcome:
    """Run (or resume) the batch, then write the output folder from its finished jobs."""
    specs = batch_specs(request, core.template, out_dir)
    known = [s.job_id for s in specs if await core.ledger.get_job(s.job_id) is not None]
    ids = await core.orchestrator.enqueue_generation(specs)
    await core.orchestrator.run_until_done(ids, horizon=horizon)
    jobs = [rec for job_id in ids if (rec := await core.ledger.get_job(job_id)) is not None]
    image_ids: list[str] = []
    failures: dict[str, str] = {}
    unfinished: list[str] = []
    for rec in jobs:
        if rec.state is JobStatus.SUCCEEDED:
            save = rec.step(SAVE_STEP)
            refs = save.remote_ref if save is not None and save.remote_ref else ""
            image_ids.extend(r for r in refs.split(",") if r)
        elif rec.state.is_terminal:
            failures[rec.id] = rec.last_error or rec.state.value
        else:
            why = f" ({rec.last_error})" if rec.last_error else ""
            unfinished.append(f"{rec.id}: {rec.state.value}{why}")
    images = await core.store.get_many(image_ids)
    folder = OutputFolder(out_dir)
    await asyncio.to_thread(folder.write, images)
    return GenerationOutcome(
        batch_id=specs[0].batch_id if specs else "",
        jobs=jobs,
        images=images,
        manifest=folder.manifest_path,
        resumed=len(known),
        failures=failures,
        unfinished=unfinished,
        warnings=folder.warnings,
    )


# --- publish ---------------------------------------------------------------------------------


class ManifestError(ValidationError):
    """The manifest itself cannot be used (missing, unreadable, not a generate manifest)."""

    def __init__(self, message: str) -> None:
        super().__init__(message, service="manifest", user_message=message)


def _sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def read_manifest(path: Path) -> tuple[list[GeneratedImage], list[str]]:
    """(designs, problems with entries that name no usable file), blocking. A design listed
    twice (the same bytes) is one design. Raises ``ManifestError`` when the manifest itself
    is missing or unreadable. A missing or damaged image still becomes a design: it fails at
    ``prepare`` with its reason."""
    manifest = path / "manifest.json" if path.is_dir() else path
    try:
        data = json.loads(manifest.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ManifestError(
            f"no manifest at {manifest} (run `pod-studio generate --out DIR`)"
        ) from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ManifestError(f"cannot read manifest {manifest}: {exc}") from None
    if isinstance(data, dict) and isinstance(data.get("images"), list):
        data = data["images"]
    if not isinstance(data, list):
        raise ManifestError(f"{manifest} is not a generate manifest (expected a JSON list)")
    designs: dict[str, GeneratedImage] = {}
    problems: list[str] = []
    for i, entry in enumerate(data, start=1):
        if not isinstance(entry, dict) or not isinstance(entry.get("file"), str):
            problems.append(f"manifest entry {i}: no 'file'")
            continue
        file = manifest.parent / Path(entry["file"]).name
        prompt = str(entry.get("prompt") or "").strip() or file.stem.replace("-", " ")
        sha = str(entry.get("sha256") or "").lower()
        try:
            actual = _sha256_of(file)
        except OSError:
            actual = ""
        if actual:
            sha = actual  # the listing is keyed on the bytes that will be printed
        if len(sha) != 64:
            sha = hashlib.sha256(str(file.resolve()).encode("utf-8")).hexdigest()
        if sha in designs:
            continue
        design_id = str(entry.get("image_id") or uuid.uuid5(uuid.NAMESPACE_URL, str(file)).hex)
        seed = entry.get("seed")
        designs[sha] = GeneratedImage(
            image_id=design_id,
            job_id=str(entry.get("job_id") or ""),
            prompt=prompt,
            seed=seed if isinstance(seed, int) and seed >= 0 else 0,
            width=int(entry.get("width") or 0),
            height=int(entry.get("height") or 0),
            file=str(file.resolve()),
            sha256=sha,
            server=str(entry.get("server") or ""),
            prompt_id=str(entry.get("prompt_id") or ""),
            seconds=float(entry.get("seconds") or 0.0),
        )
    return list(designs.values()), problems


@dataclass(frozen=True)
class ListingResult:
    """One design × template × platform after a publish run."""

    design: GeneratedImage
    template: str
    platform: str
    ok: bool
    detail: str  # the remote id (and state) or the reason


async def run_publish(
    core: Core,
    designs: Sequence[GeneratedImage],
    templates: Sequence[str],
    platforms: Sequence[str],
    *,
    draft: bool,
    horizon: float = DEFAULT_HORIZON,
) -> list[ListingResult]:
    """Queue one publish job per design × template × platform (one per idempotency key,
    however often the input names it), run them until each is done, dead, or waiting past
    ``horizon``, and report each. A listing named again whose job waits, uncharged, for its
    platform (a refused credential, a platform not set up) is due at once: the seller asks for
    it now, so the fix is tried now (no ``retry`` by hand)."""
    ids = await core.orchestrator.enqueue_publish(designs, templates, platforms, draft=draft)
    unique = list(dict.fromkeys(ids))
    for job_id in unique:
        rec = await core.ledger.get_job(job_id)
        waiting = rec is not None and rec.state is JobStatus.RETRY_WAIT
        if waiting and rec is not None and rec.last_error_kind is ErrorKind.WAIT:
            await core.orchestrator.retry_now(job_id)
    await core.orchestrator.run_until_done(unique, horizon=horizon)
    results: list[ListingResult] = []
    seen: set[str] = set()
    for design in designs:
        for template in templates:
            for platform in platforms:
                job_id = publish_job_id(idempotency_key(design.sha256, template, platform))
                if job_id in seen:
                    continue
                seen.add(job_id)
                rec = await core.ledger.get_job(job_id)
                results.append(_listing_result(design, template, platform, rec))
    return results


PUBLISH_STEPS = ("prepare", "upload", "create", "publish")


def _failed_step(rec: JobRecord) -> str:
    """The step a publish job stopped at: its first step not done (steps run in order)."""
    task = PublishPayload.model_validate(rec.payload).task
    for name in PUBLISH_STEPS:
        if name == "publish" and task.draft:
            break
        step = rec.step(name)
        if step is None or step.state is not StepStatus.DONE:
            return name
    return ""


def _listing_result(
    design: GeneratedImage, template: str, platform: str, rec: JobRecord | None
) -> ListingResult:
    if rec is None:
        return ListingResult(design, template, platform, False, "not queued")
    if rec.state is JobStatus.SUCCEEDED:
        task = PublishPayload.model_validate(rec.payload).task
        step = rec.step("publish") if not task.draft else None
        created = rec.step("create")
        ref = (step.remote_ref if step is not None else None) or (
            created.remote_ref if created is not None else None
        )
        status = "draft" if task.draft else "published"
        return ListingResult(design, template, platform, True, f"{ref or 'done'} ({status})")
    if rec.state.is_terminal:
        reason = rec.last_error or rec.state.value
        failed_at = _failed_step(rec)
        if failed_at and rec.state is JobStatus.DEAD:
            reason = f"{failed_at}: {reason}"
        return ListingResult(design, template, platform, False, reason)
    why = rec.last_error or "not finished"
    return ListingResult(
        design, template, platform, False, f"still {rec.state.value} in the queue: {why}"
    )
