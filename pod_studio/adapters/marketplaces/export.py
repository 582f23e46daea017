"""Adapters layer: a local folder as a marketplace (name "export").

``create_listing`` writes one folder per listing, ``<root>/<idem_key>/``, holding a copy of
the print file, ``listing.json`` and ``listing.csv``. The folder is built under a temporary
name (``.tmp-...``) and renamed into place in one step, so a listing folder is either complete
or absent. Temporary folders left by a crash are removed by the next call; a listing folder
without a readable ``listing.json`` is moved aside (``<name>.corrupt-<time>``) and treated as
absent. Creating the same ``idem_key`` twice returns the first listing: never two folders.

One app instance owns a root folder; two processes writing to the same root are not
coordinated beyond the atomic rename.
"""

from __future__ import annotations

import asyncio
import csv
import hashlib
import io
import json
import logging
import os
import re
import shutil
import tempfile
import time
import unicodedata
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from pod_studio.adapters.storage.atomic import atomic_write_text
from pod_studio.domain.errors import APIError, ValidationError
from pod_studio.domain.marketplace import ListingSpec, ListingStatus, RemoteListing

log = logging.getLogger(__name__)

SERVICE = "export"
LISTING_JSON = "listing.json"
LISTING_CSV = "listing.csv"
LISTING_SCHEMA_VERSION = 1
TMP_PREFIX = ".tmp-"
_SAFE_RE = re.compile(r"[^A-Za-z0-9._-]")
_MAX_SLUG = 80
_MAX_TITLE_SLUG = 60
_CSV_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")
# Names Windows refuses as files or folders.
_RESERVED = frozenset(
    {"con", "prn", "aux", "nul"}
    | {f"com{i}" for i in range(1, 10)}
    | {f"lpt{i}" for i in range(1, 10)}
)


def folder_name(idem_key: str) -> str:
    """A portable folder name for ``idem_key``; the key itself when it is already safe.

    Unsafe or long keys become ``<slug>-<hash12>``, so two keys never share a folder.
    """
    slug = _SAFE_RE.sub("_", idem_key).strip("._") or "listing"
    if slug == idem_key and len(slug) <= _MAX_SLUG and slug.lower() not in _RESERVED:
        return slug
    return f"{slug[:_MAX_SLUG]}-{_key_digest(idem_key)}"


def _key_digest(idem_key: str) -> str:
    return hashlib.sha256(idem_key.encode("utf-8")).hexdigest()[:12]


def readable_folder_name(title: str, idem_key: str) -> str:
    """``Retro Sunset T-Shirt`` -> ``retro-sunset-t-shirt-<hash12 of the key>``: a folder the
    seller can find by its listing's title, still one per idempotency key."""
    words = unicodedata.normalize("NFKD", title).encode("ascii", "ignore").decode("ascii")
    slug = re.sub(r"[^a-z0-9]+", "-", words.lower()).strip("-")[:_MAX_TITLE_SLUG].rstrip("-")
    return f"{slug or 'listing'}-{_key_digest(idem_key)}"


def _csv_cell(value: str) -> str:
    """Neutralise text a spreadsheet would run as a formula."""
    return "'" + value if value.startswith(_CSV_FORMULA_START) else value


def _fsync_dir(path: Path) -> None:
    if os.name != "posix":
        return
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _write_file(path: Path, data: bytes) -> None:
    with open(path, "wb") as fh:
        fh.write(data)
        fh.flush()
        os.fsync(fh.fileno())


def _copy_verified(src: Path, dst: Path, expected_sha256: str) -> None:
    digest = hashlib.sha256()
    try:
        with open(src, "rb") as fin, open(dst, "wb") as fout:
            while chunk := fin.read(1024 * 1024):
                digest.update(chunk)
                fout.write(chunk)
            fout.flush()
            os.fsync(fout.fileno())
    except FileNotFoundError:
        raise ValidationError(
            f"design file {src} does not exist",
            service=SERVICE,
            user_message=f"The design file {src.name} is missing; prepare it again.",
        ) from None
    if digest.hexdigest() != expected_sha256:
        raise ValidationError(
            f"design file {src.name} does not match its sha256 (changed since it was prepared)",
            service=SERVICE,
            user_message=f"The design file {src.name} changed since it was prepared; "
            "prepare it again.",
        )


class ExportMarketplace:
    """Writes listings into folders under ``root_dir`` (implements ``Marketplace``)."""

    name = "export"

    def __init__(self, root_dir: Path) -> None:
        self.root_dir = Path(root_dir)
        self._lock = asyncio.Lock()
        self._active_tmp: set[str] = set()

    # --- Marketplace port ---------------------------------------------------------------------

    async def find_existing(self, idem_key: str) -> RemoteListing | None:
        async with self._lock:
            return await asyncio.to_thread(self._find_sync, idem_key)

    async def create_listing(self, spec: ListingSpec) -> RemoteListing:
        async with self._lock:
            existing = await asyncio.to_thread(self._find_sync, spec.idem_key)
            if existing is not None:
                log.info("export listing %s already exists; not creating it again", spec.idem_key)
                return existing
            return await asyncio.to_thread(self._create_sync, spec)

    async def publish(self, listing: RemoteListing) -> RemoteListing:
        async with self._lock:
            return await asyncio.to_thread(self._publish_sync, listing.remote_id)

    async def get_listing(self, remote_id: str) -> RemoteListing:
        async with self._lock:
            return await asyncio.to_thread(self._get_sync, remote_id)

    async def health_check(self) -> tuple[bool, str]:
        return await asyncio.to_thread(self._health_sync)

    async def aclose(self) -> None:
        return None

    # --- synchronous work (worker threads) ----------------------------------------------------

    def _recover(self) -> None:
        """Remove temporary folders a crashed write left behind."""
        if not self.root_dir.is_dir():
            return
        for entry in os.scandir(self.root_dir):
            if not entry.name.startswith(TMP_PREFIX) or entry.name in self._active_tmp:
                continue
            log.warning("removing an incomplete export folder left by a crash: %s", entry.name)
            if entry.is_dir(follow_symlinks=False):
                shutil.rmtree(entry.path, ignore_errors=True)
            else:
                Path(entry.path).unlink(missing_ok=True)

    def _read_listing(self, folder: Path) -> dict[str, Any] | None:
        """The folder's listing.json, or None (a damaged folder is moved aside)."""
        if not folder.is_dir():
            return None
        try:
            data = json.loads((folder / LISTING_JSON).read_text(encoding="utf-8"))
            if not isinstance(data, dict) or not isinstance(data.get("idem_key"), str):
                raise ValueError("listing.json has no idem_key")
            ListingStatus(data.get("status", ListingStatus.DRAFT.value))
            return data
        except (OSError, ValueError) as exc:
            stamp = time.strftime("%Y%m%d-%H%M%S")
            target = folder.with_name(f"{folder.name}.corrupt-{stamp}-{uuid.uuid4().hex[:6]}")
            folder.replace(target)
            log.warning("moved damaged export folder %s aside to %s: %s", folder, target, exc)
            return None

    def _folder_for_key(self, idem_key: str) -> Path:
        """The folder of ``idem_key``'s listing: named by its title (``<title>-<hash12>``), or
        by the key alone (folders written before titles named them)."""
        legacy = self.root_dir / folder_name(idem_key)
        if legacy.is_dir() or not self.root_dir.is_dir():
            return legacy
        suffix = f"-{_key_digest(idem_key)}"
        for entry in os.scandir(self.root_dir):
            if entry.name.endswith(suffix) and not entry.name.startswith(TMP_PREFIX):
                return Path(entry.path)
        return legacy

    def _find_sync(self, idem_key: str) -> RemoteListing | None:
        self._recover()
        folder = self._folder_for_key(idem_key)
        data = self._read_listing(folder)
        if data is None:
            return None
        if data["idem_key"] != idem_key:
            raise ValidationError(
                f"export folder {folder.name} belongs to another listing",
                service=SERVICE,
            )
        return self._remote(folder, data)

    def _remote(self, folder: Path, data: dict[str, Any]) -> RemoteListing:
        created = data.get("created_at")
        return RemoteListing(
            platform=self.name,
            remote_id=folder.name,
            status=ListingStatus(data.get("status", ListingStatus.DRAFT)),
            title=str(data.get("title", "")),
            url=folder.resolve().as_uri(),
            external_ids={"idem_key": str(data["idem_key"])},
            created_at=datetime.fromisoformat(created) if isinstance(created, str) else None,
        )

    def _create_sync(self, spec: ListingSpec) -> RemoteListing:
        try:
            self.root_dir.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise APIError(
                f"cannot create the export folder {self.root_dir}: {exc.strerror or exc}",
                service=SERVICE,
                retryable=False,
            ) from exc
        name = readable_folder_name(spec.title, spec.idem_key)
        final = self.root_dir / name
        tmp = Path(tempfile.mkdtemp(prefix=f"{TMP_PREFIX}{name[:40]}-", dir=self.root_dir))
        self._active_tmp.add(tmp.name)
        try:
            design_name = "design" + (spec.design_path.suffix.lower() or ".png")
            _copy_verified(spec.design_path, tmp / design_name, spec.design_sha256)
            data = self._listing_payload(spec, name, design_name)
            _write_file(
                tmp / LISTING_JSON,
                (json.dumps(data, indent=2, ensure_ascii=False) + "\n").encode("utf-8"),
            )
            _write_file(tmp / LISTING_CSV, self._listing_csv(spec, design_name).encode("utf-8"))
            _fsync_dir(tmp)
            try:
                tmp.rename(final)
            except OSError:
                if (self.root_dir / name / LISTING_JSON).is_file():
                    existing = self._find_sync(spec.idem_key)
                    if existing is not None:
                        return existing
                raise
            _fsync_dir(self.root_dir)
        except OSError as exc:
            raise APIError(
                f"cannot write export listing {name}: {exc.strerror or exc}",
                service=SERVICE,
                retryable=False,
            ) from exc
        finally:
            self._active_tmp.discard(tmp.name)
            if tmp.exists():
                shutil.rmtree(tmp, ignore_errors=True)
        log.info("exported listing %s to %s", spec.idem_key, final)
        return self._remote(final, data)

    @staticmethod
    def _listing_payload(spec: ListingSpec, name: str, design_name: str) -> dict[str, Any]:
        placement = spec.placement.model_dump(mode="json") if spec.placement else None
        return {
            "schema_version": LISTING_SCHEMA_VERSION,
            "platform": "export",
            "idem_key": spec.idem_key,
            "remote_id": name,
            "status": ListingStatus.DRAFT.value,
            "created_at": datetime.now(UTC).isoformat(),
            "published_at": None,
            "title": spec.title,
            "description": spec.description,
            "tags": list(spec.tags),
            "blueprint_id": spec.blueprint_id,
            "print_provider_id": spec.print_provider_id,
            "currency": spec.currency,
            "variants": [
                {
                    "variant_id": v.variant_id,
                    "color": v.options.get("Color", ""),
                    "size": v.options.get("Size", ""),
                    "price": str(v.price),
                    "enabled": v.enabled,
                }
                for v in spec.variants
            ],
            "print_position": spec.print_position,
            "placement": placement,
            "design": {"file": design_name, "sha256": spec.design_sha256},
        }

    @staticmethod
    def _listing_csv(spec: ListingSpec, design_name: str) -> str:
        out = io.StringIO()
        writer = csv.writer(out, lineterminator="\n")
        writer.writerow(
            [
                "idem_key",
                "title",
                "description",
                "tags",
                "variant_id",
                "color",
                "size",
                "price",
                "currency",
                "enabled",
                "blueprint_id",
                "print_provider_id",
                "design_file",
            ]
        )
        for v in spec.variants:
            writer.writerow(
                [
                    _csv_cell(spec.idem_key),
                    _csv_cell(spec.title),
                    _csv_cell(spec.description),
                    _csv_cell(", ".join(spec.tags)),
                    v.variant_id,
                    _csv_cell(v.options.get("Color", "")),
                    _csv_cell(v.options.get("Size", "")),
                    str(v.price),
                    spec.currency,
                    "true" if v.enabled else "false",
                    spec.blueprint_id,
                    spec.print_provider_id,
                    design_name,
                ]
            )
        return out.getvalue()

    def _folder_of(self, remote_id: str) -> Path:
        if not remote_id or _SAFE_RE.search(remote_id) or remote_id.startswith("."):
            raise ValidationError(f"{remote_id!r} is not an export listing id", service=SERVICE)
        return self.root_dir / remote_id

    def _existing_listing(self, remote_id: str) -> tuple[Path, dict[str, Any]]:
        """The folder and saved data of ``remote_id``; a 404 ``APIError`` when there is none."""
        self._recover()
        folder = self._folder_of(remote_id)
        data = self._read_listing(folder)
        if data is None:
            raise APIError(
                f"export listing {remote_id} does not exist",
                status_code=404,
                service=SERVICE,
                retryable=False,
            )
        return folder, data

    def _get_sync(self, remote_id: str) -> RemoteListing:
        folder, data = self._existing_listing(remote_id)
        return self._remote(folder, data)

    def _publish_sync(self, remote_id: str) -> RemoteListing:
        folder, data = self._existing_listing(remote_id)
        if data.get("status") != ListingStatus.PUBLISHED.value:
            data["status"] = ListingStatus.PUBLISHED.value
            data["published_at"] = datetime.now(UTC).isoformat()
            atomic_write_text(
                folder / LISTING_JSON, json.dumps(data, indent=2, ensure_ascii=False) + "\n"
            )
        return self._remote(folder, data)

    def _health_sync(self) -> tuple[bool, str]:
        try:
            self.root_dir.mkdir(parents=True, exist_ok=True)
            fd, probe = tempfile.mkstemp(prefix=".probe-", dir=self.root_dir)
            os.close(fd)
            Path(probe).unlink()
        except OSError as exc:
            return False, f"Export folder {self.root_dir} is not writable: {exc.strerror or exc}"
        return True, f"Export folder {self.root_dir} is writable"
