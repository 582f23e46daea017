"""Adapters layer: the one place that knows where POD Studio keeps its files.

Only this module calls platformdirs. Setting ``POD_STUDIO_HOME`` puts every folder under
that directory instead (tests, portable installs, demo runs).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import platformdirs

from pod_studio.domain.errors import ValidationError

APP_DIR_NAME = "pod-studio"
APP_AUTHOR = "pod-studio"


@dataclass(frozen=True)
class AppPaths:
    config_dir: Path
    data_dir: Path
    cache_dir: Path
    log_dir: Path

    @property
    def settings_file(self) -> Path:
        return self.config_dir / "settings.json"

    @property
    def seller_costs_file(self) -> Path:
        """The seller's own provider costs per template and size (Settings → Products)."""
        return self.config_dir / "seller_costs.json"

    @property
    def images_dir(self) -> Path:
        return self.data_dir / "images"

    @property
    def ledger_file(self) -> Path:
        return self.data_dir / "jobs.sqlite3"

    @property
    def stats_file(self) -> Path:
        return self.data_dir / "stats.json"

    @property
    def catalog_cache_dir(self) -> Path:
        return self.cache_dir / "catalog"

    @property
    def thumbnails_dir(self) -> Path:
        return self.cache_dir / "thumbnails"

    @property
    def log_file(self) -> Path:
        return self.log_dir / "pod-studio.log"

    @property
    def metrics_file(self) -> Path:
        return self.data_dir / "metrics.prom"

    @property
    def export_dir(self) -> Path:
        return self.data_dir / "export"

    def ensure(self) -> AppPaths:
        """Make the folders; a ``DataFolderError`` names the one that cannot be used (a file
        where a folder should be, no permission, a read-only or full disk)."""
        for d in (self.config_dir, self.data_dir, self.cache_dir, self.log_dir):
            blocker = next((p for p in (d, *d.parents) if p.exists() and not p.is_dir()), None)
            if blocker is not None:
                raise DataFolderError(blocker, "it is a file, not a folder")
            try:
                d.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                raise DataFolderError(d, exc.strerror or type(exc).__name__) from None
            if _read_only(d):
                raise DataFolderError(d, "it is read-only")
        return self


def _read_only(folder: Path) -> bool:
    """No permission to write, or a file system mounted read-only (which the permission
    check misses for root)."""
    if not os.access(folder, os.W_OK | os.X_OK):
        return True
    statvfs = getattr(os, "statvfs", None)  # not on Windows
    return statvfs is not None and bool(statvfs(folder).f_flag & getattr(os, "ST_RDONLY", 1))


class DataFolderError(ValidationError):
    """A folder POD Studio keeps its files in cannot be used. Nothing was started."""

    def __init__(self, folder: Path, reason: str) -> None:
        super().__init__(
            f"cannot use {folder}: {reason}",
            service="settings",
            user_message=f"POD Studio cannot use its folder {folder}: {reason}. Fix it, or "
            "point POD_STUDIO_HOME at a folder you can write to.",
        )
        self.folder = folder


def app_paths(home: str | os.PathLike[str] | None = None) -> AppPaths:
    """The app's folders: under ``home`` / ``$POD_STUDIO_HOME`` if given, else platformdirs."""
    root = home if home is not None else os.environ.get("POD_STUDIO_HOME")
    if root:
        base = Path(root)
        return AppPaths(base / "config", base / "data", base / "cache", base / "logs")
    return AppPaths(
        Path(platformdirs.user_config_dir(APP_DIR_NAME, APP_AUTHOR)),
        Path(platformdirs.user_data_dir(APP_DIR_NAME, APP_AUTHOR)),
        Path(platformdirs.user_cache_dir(APP_DIR_NAME, APP_AUTHOR)),
        Path(platformdirs.user_log_dir(APP_DIR_NAME, APP_AUTHOR)),
    )
