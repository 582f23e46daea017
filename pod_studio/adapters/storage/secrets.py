"""Adapters layer: where tokens live (implements ``domain.settings.SecretStorePort``), and the
log redactor.

Resolution order (``ChainSecretStore``): environment variables (read-only, for CI and headless
use) → the OS keyring, but only a real OS backend (macOS Keychain, Windows Credential Locker,
Secret Service, KWallet), never a plaintext file backend. With no writable store, saving a
token fails with a message that says how to fix it; nothing is ever written in plaintext.
Keyring calls may block (D-Bus prompts): call these stores through ``asyncio.to_thread``.
"""

from __future__ import annotations

import logging
import os
import re
import threading
from collections.abc import Collection, Iterable, Mapping, Sequence

from pod_studio.domain.errors import AuthenticationError
from pod_studio.domain.redaction import SecretMask
from pod_studio.domain.settings import SecretName, SecretStorePort

log = logging.getLogger(__name__)

KEYRING_SERVICE = "pod-studio"
ENV_PREFIX = "POD_"

ENV_VARS: dict[str, str] = {name.value: ENV_PREFIX + name.value.upper() for name in SecretName}
"""Secret name -> environment variable (``printify_token`` -> ``POD_PRINTIFY_TOKEN``)."""

ALLOWED_KEYRING_BACKENDS: frozenset[str] = frozenset(
    {
        "keyring.backends.macOS.Keyring",
        "keyring.backends.Windows.WinVaultKeyring",
        "keyring.backends.SecretService.Keyring",
        "keyring.backends.libsecret.Keyring",
        "keyring.backends.kwallet.DBusKeyring",
        "keyring.backends.kwallet.DBusKeyringKWallet4",
    }
)
"""Keyring backends that store secrets in the operating system's encrypted vault."""

KEYRING_HELP = (
    "No secure OS keyring is available. Start a keyring service (GNOME Keyring or KWallet on "
    "Linux; macOS and Windows have one built in), or provide the tokens as environment "
    "variables: " + ", ".join(sorted(ENV_VARS.values())) + "."
)


def _env_name(name: str) -> str:
    return ENV_VARS.get(name, ENV_PREFIX + re.sub(r"[^A-Za-z0-9]+", "_", name).upper())


class SecretStoreError(AuthenticationError):
    """A secret cannot be stored or read (no keyring, read-only store)."""

    def __init__(self, message: str, *, user_message: str | None = None) -> None:
        super().__init__(message, service="secrets", user_message=user_message)


class MemorySecretStore:
    """Secrets in a dict (tests, demo mode)."""

    def __init__(self, initial: Mapping[str, str] | None = None, *, writable: bool = True) -> None:
        self._values: dict[str, str] = dict(initial or {})
        self._writable = writable
        self._lock = threading.Lock()

    @property
    def writable(self) -> bool:
        return self._writable

    def get(self, name: str) -> str | None:
        with self._lock:
            return self._values.get(name)

    def set(self, name: str, value: str) -> None:
        if not self._writable:
            raise SecretStoreError("the in-memory secret store is read-only")
        with self._lock:
            self._values[name] = value

    def delete(self, name: str) -> None:
        if not self._writable:
            raise SecretStoreError("the in-memory secret store is read-only")
        with self._lock:
            self._values.pop(name, None)

    def describe(self) -> str:
        return "in-memory (not persisted)"


class EnvSecretStore:
    """Read-only secrets from environment variables (``POD_PRINTIFY_TOKEN``, ...)."""

    def __init__(self, environ: Mapping[str, str] | None = None) -> None:
        self._environ = os.environ if environ is None else environ

    @property
    def writable(self) -> bool:
        return False

    def get(self, name: str) -> str | None:
        value = self._environ.get(_env_name(name), "").strip()
        return value or None

    def set(self, name: str, value: str) -> None:
        raise SecretStoreError(
            f"environment variables are read-only; set {_env_name(name)} before starting"
        )

    def delete(self, name: str) -> None:
        raise SecretStoreError(
            f"environment variables are read-only; unset {_env_name(name)} before starting"
        )

    def present(self) -> list[str]:
        """The environment variables that are set (names only)."""
        return [var for var in sorted(set(ENV_VARS.values())) if self._environ.get(var)]

    def describe(self) -> str:
        found = self.present()
        if found:
            return "environment variables (" + ", ".join(found) + ")"
        return "environment variables (none set)"


def backend_name(backend: object) -> str:
    cls = type(backend)
    return f"{cls.__module__}.{cls.__qualname__}"


class OsKeyringSecretStore:
    """The OS keyring through ``keyring``, restricted to real OS backends.

    If the active backend is anything else (the ``fail`` backend on a headless machine, a
    plaintext file backend from ``keyrings.alt``...), the store is unavailable and
    ``describe()`` explains why; it never falls back silently.
    """

    def __init__(
        self,
        service: str = KEYRING_SERVICE,
        *,
        allowed: Collection[str] = ALLOWED_KEYRING_BACKENDS,
        backend: object | None = None,
    ) -> None:
        self.service = service
        self._allowed = frozenset(allowed)
        self._given = backend
        self._detected = False
        self._found: object | None = None
        self._reason = ""

    @property
    def _backend(self) -> object | None:
        """The allow-listed backend, looked up on first use: importing keyring and letting it
        choose a backend takes about 0.1 s, which opening the window need not wait for."""
        if not self._detected:
            self._detected = True
            self._detect(self._given)
        return self._found

    @property
    def reason(self) -> str:
        """Why the OS keyring is unavailable ("" when it is available)."""
        return "" if self._backend is not None else self._reason

    def _detect(self, backend: object | None) -> None:
        import keyring
        import keyring.core
        import keyring.errors

        if backend is None:
            try:
                backend = keyring.core.load_env() or keyring.get_keyring()
            except (ImportError, AttributeError, RuntimeError, ValueError) as exc:
                self._reason = f"the keyring backend could not be loaded ({exc}). {KEYRING_HELP}"
                return
            except keyring.errors.KeyringError as exc:
                self._reason = f"the keyring failed to start ({exc}). {KEYRING_HELP}"
                return
        candidates: list[object] = [backend]
        inner = getattr(backend, "backends", None)
        if backend_name(backend).endswith("chainer.ChainerBackend") and inner:
            candidates = list(inner)
        for candidate in candidates:
            if backend_name(candidate) in self._allowed:
                self._found = candidate
                return
        names = ", ".join(backend_name(c) for c in candidates) or "none"
        self._reason = f"the keyring backend ({names}) is not a secure OS keyring. {KEYRING_HELP}"
        log.info("OS keyring unavailable: backend %s is not allow-listed", names)

    @property
    def available(self) -> bool:
        return self._backend is not None

    @property
    def writable(self) -> bool:
        return self._backend is not None

    def _require(self) -> object:
        backend = self._backend
        if backend is None:
            raise SecretStoreError(
                f"OS keyring unavailable: {self.reason}", user_message=self.reason
            )
        return backend

    def get(self, name: str) -> str | None:
        import keyring.errors

        backend = self._backend
        if backend is None:
            return None
        try:
            value = backend.get_password(self.service, name)  # type: ignore[attr-defined]
        except keyring.errors.KeyringError as exc:
            log.warning("reading %s from the OS keyring failed: %s", name, type(exc).__name__)
            return None
        return value if isinstance(value, str) and value else None

    def set(self, name: str, value: str) -> None:
        import keyring.errors

        backend = self._require()
        try:
            backend.set_password(self.service, name, value)  # type: ignore[attr-defined]
        except keyring.errors.KeyringError as exc:
            raise SecretStoreError(
                f"the OS keyring refused to store {name}: {type(exc).__name__}",
                user_message="The OS keyring refused to store the token (is it locked?). "
                "Unlock it and try again.",
            ) from None

    def delete(self, name: str) -> None:
        import keyring.errors

        backend = self._require()
        try:
            backend.delete_password(self.service, name)  # type: ignore[attr-defined]
        except keyring.errors.PasswordDeleteError:
            return
        except keyring.errors.KeyringError as exc:
            raise SecretStoreError(
                f"the OS keyring refused to delete {name}: {type(exc).__name__}"
            ) from None

    def describe(self) -> str:
        backend = self._backend
        if backend is None:
            return f"OS keyring unavailable: {self.reason}"
        return f"OS keyring ({backend_name(backend)})"


class ChainSecretStore:
    """Reads from the first store that has a value; writes to the first writable store.

    Values read or written are registered with ``redactor`` (if given) so they never reach logs.
    """

    def __init__(
        self, stores: Sequence[SecretStorePort], *, redactor: Redactor | None = None
    ) -> None:
        self.stores = list(stores)
        self._redactor = redactor

    @property
    def writable(self) -> bool:
        return any(s.writable for s in self.stores)

    def get(self, name: str) -> str | None:
        for store in self.stores:
            value = store.get(name)
            if value:
                if self._redactor is not None:
                    self._redactor.register_secret(value)
                return value
        return None

    def set(self, name: str, value: str) -> None:
        if self._redactor is not None:
            self._redactor.register_secret(value)
        for store in self.stores:
            if store.writable:
                store.set(name, value)
                return
        details = "; ".join(s.describe() for s in self.stores) or "no secret store configured"
        raise SecretStoreError(
            f"no writable secret store ({details})",
            user_message=f"POD Studio cannot save the token securely. {KEYRING_HELP}",
        )

    def delete(self, name: str) -> None:
        for store in self.stores:
            if store.writable:
                store.delete(name)

    def source_of(self, name: str) -> str | None:
        """``describe()`` of the store that provides ``name``, or None."""
        for store in self.stores:
            if store.get(name):
                return store.describe()
        return None

    def describe(self) -> str:
        return " → ".join(s.describe() for s in self.stores) or "no secret store"


def default_secret_store(
    *, redactor: Redactor | None = None, environ: Mapping[str, str] | None = None
) -> ChainSecretStore:
    """Env vars first, then the OS keyring (if it is a real one)."""
    return ChainSecretStore([EnvSecretStore(environ), OsKeyringSecretStore()], redactor=redactor)


# --- redaction -------------------------------------------------------------------------------


class Redactor(logging.Filter):
    """A logging filter (attach it to handlers) that masks credentials in log records.

    Masks through ``domain.redaction.SecretMask``: the values of ``Authorization``,
    ``X-Shopify-Access-Token`` and ``x-api-key`` headers, token-like query/JSON fields, and
    every secret value registered with ``register_secret``.
    """

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        super().__init__()
        self._mask = SecretMask(secrets)

    def register_secret(self, value: str | None) -> None:
        self._mask.add(value)

    def redact(self, text: str) -> str:
        return self._mask.redact(text)

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except (TypeError, ValueError):
            message = str(record.msg)
        record.msg = self.redact(message)
        record.args = None
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = self.redact(record.exc_text)
        if record.stack_info:
            record.stack_info = self.redact(record.stack_info)
        for key, value in list(vars(record).items()):
            if key not in _STANDARD_ATTRS and isinstance(value, str):
                setattr(record, key, self.redact(value))
        return True


_STANDARD_ATTRS = frozenset(vars(logging.LogRecord("x", 0, "x", 0, "x", None, None))) | {
    "message",
    "asctime",
}
