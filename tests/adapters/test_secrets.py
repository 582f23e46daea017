"""Tests for adapters/storage/secrets.py: stores, chain, and the log redactor."""

from __future__ import annotations

import io
import logging
from collections.abc import Iterator

import keyring.backend
import pytest

from pod_studio.adapters.storage.secrets import (
    ENV_VARS,
    ChainSecretStore,
    EnvSecretStore,
    MemorySecretStore,
    OsKeyringSecretStore,
    Redactor,
    SecretStoreError,
    default_secret_store,
)
from pod_studio.domain.errors import AuthenticationError, PodStudioError
from pod_studio.domain.settings import SecretName, SecretStorePort

SENTINEL = "shpat_SENTINEL_0123456789abcdef"


class DictKeyring(keyring.backend.KeyringBackend):
    """An in-memory keyring backend (stands in for a real OS keyring)."""

    priority = 1  # type: ignore[assignment]

    def __init__(self) -> None:
        super().__init__()
        self.values: dict[tuple[str, str], str] = {}

    def get_password(self, service: str, username: str) -> str | None:
        return self.values.get((service, username))

    def set_password(self, service: str, username: str, password: str) -> None:
        self.values[(service, username)] = password

    def delete_password(self, service: str, username: str) -> None:
        self.values.pop((service, username), None)


ALLOW_DICT = {f"{DictKeyring.__module__}.{DictKeyring.__qualname__}"}


def test_env_store_reads_pod_variables(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("POD_PRINTIFY_TOKEN", "  printify-env-token  ")
    store = EnvSecretStore()
    assert isinstance(store, SecretStorePort)
    assert store.get(SecretName.PRINTIFY_TOKEN) == "printify-env-token"
    assert store.get(SecretName.SHOPIFY_TOKEN) is None
    assert not store.writable
    assert "POD_PRINTIFY_TOKEN" in store.describe()
    assert "printify-env-token" not in store.describe()
    with pytest.raises(SecretStoreError, match="POD_SHOPIFY_TOKEN"):
        store.set(SecretName.SHOPIFY_TOKEN, "x")
    assert ENV_VARS["etsy_keystring"] == "POD_ETSY_KEYSTRING"
    assert EnvSecretStore({"POD_ETSY_TOKEN": "t0ken-value"}).get("etsy_token") == "t0ken-value"


def test_fail_backend_is_unavailable_with_an_explanation(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("PYTHON_KEYRING_BACKEND", "keyring.backends.fail.Keyring")
    store = OsKeyringSecretStore()
    assert not store.available and not store.writable
    text = store.describe()
    assert "keyring.backends.fail.Keyring" in text
    assert "not a secure OS keyring" in text and "POD_PRINTIFY_TOKEN" in text
    assert store.get("printify_token") is None
    with pytest.raises(AuthenticationError):
        store.set("printify_token", SENTINEL)


def test_the_keyring_backend_is_chosen_on_first_use_only(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Choosing the backend takes a while: opening the window does not wait for it."""
    chosen: list[object] = []

    def get_keyring() -> object:
        chosen.append(DictKeyring())
        return chosen[-1]

    monkeypatch.delenv("PYTHON_KEYRING_BACKEND", raising=False)
    monkeypatch.setattr(keyring, "get_keyring", get_keyring)
    store = OsKeyringSecretStore(allowed=ALLOW_DICT)
    assert chosen == []
    assert store.available and store.get("printify_token") is None
    store.set("printify_token", SENTINEL)
    assert store.get("printify_token") == SENTINEL and len(chosen) == 1


def test_plaintext_like_backend_is_refused() -> None:
    store = OsKeyringSecretStore(backend=DictKeyring())  # not in the default allow-list
    assert not store.available
    assert "DictKeyring" in store.describe()


def test_allow_listed_backend_round_trip() -> None:
    backend = DictKeyring()
    store = OsKeyringSecretStore(backend=backend, allowed=ALLOW_DICT)
    assert store.available and store.writable
    store.set("shopify_token", SENTINEL)
    assert backend.values == {("pod-studio", "shopify_token"): SENTINEL}
    assert store.get("shopify_token") == SENTINEL
    store.delete("shopify_token")
    store.delete("shopify_token")  # deleting twice is fine
    assert store.get("shopify_token") is None
    assert "OS keyring (" in store.describe()


def test_chainer_backend_uses_only_allow_listed_members() -> None:
    class FakeChainer:
        pass

    FakeChainer.__module__ = "keyring.backends.chainer"
    FakeChainer.__qualname__ = "ChainerBackend"
    chainer = FakeChainer()
    good = DictKeyring()
    chainer.backends = [object(), good]  # type: ignore[attr-defined]
    store = OsKeyringSecretStore(backend=chainer, allowed=ALLOW_DICT)
    assert store.available
    store.set("etsy_token", "abcdefgh")
    assert good.values[("pod-studio", "etsy_token")] == "abcdefgh"


def test_chain_prefers_env_and_writes_to_first_writable() -> None:
    redactor = Redactor()
    env = EnvSecretStore({"POD_PRINTIFY_TOKEN": "env-token-123"})
    memory = MemorySecretStore({"printify_token": "stored-token", "etsy_token": "etsy-stored"})
    chain = ChainSecretStore([env, memory], redactor=redactor)
    assert chain.writable
    assert chain.get("printify_token") == "env-token-123"
    assert chain.get("etsy_token") == "etsy-stored"
    assert chain.get("shopify_token") is None
    chain.set("shopify_token", SENTINEL)
    assert memory.get("shopify_token") == SENTINEL
    assert chain.source_of("printify_token") == env.describe()
    assert redactor.redact(f"x {SENTINEL} env-token-123 etsy-stored") == "x *** *** ***"
    chain.delete("shopify_token")
    assert chain.get("shopify_token") is None


def test_chain_without_writable_store_refuses_with_help(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PYTHON_KEYRING_BACKEND", "keyring.backends.fail.Keyring")
    chain = default_secret_store(environ={})
    assert not chain.writable
    with pytest.raises(PodStudioError) as info:
        chain.set("printify_token", SENTINEL)
    err = info.value
    assert isinstance(err, AuthenticationError)
    assert "GNOME Keyring" in err.user_message and "POD_PRINTIFY_TOKEN" in err.user_message
    assert SENTINEL not in str(err) and SENTINEL not in err.user_message


@pytest.mark.parametrize(
    "text,expected",
    [
        ("Authorization: Bearer abc.def-123", "Authorization: Bearer ***"),
        ("{'authorization': 'Bearer tok123456'}", "{'authorization': 'Bearer ***'}"),
        ('"X-Shopify-Access-Token": "shpat_1"', '"X-Shopify-Access-Token": "***"'),
        ("x-api-key=KEYSTRING99 rest", "x-api-key=*** rest"),
        ("GET /v1?access_token=secret123&x=1", "GET /v1?access_token=***&x=1"),
        ("nothing to hide here", "nothing to hide here"),
    ],
)
def test_redact_patterns(text: str, expected: str) -> None:
    assert Redactor().redact(text) == expected


def test_short_values_are_not_registered() -> None:
    r = Redactor(["abc"])
    assert r.redact("abc abcdef") == "abc abcdef"


@pytest.fixture
def captured() -> Iterator[tuple[logging.Logger, io.StringIO, Redactor]]:
    redactor = Redactor([SENTINEL])
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(logging.Formatter("%(levelname)s %(message)s"))
    handler.addFilter(redactor)
    logger = logging.getLogger("test_secrets.sentinel")
    logger.addHandler(handler)
    logger.setLevel(logging.DEBUG)
    logger.propagate = False
    yield logger, stream, redactor
    logger.removeHandler(handler)


def test_sentinel_never_reaches_formatted_log_output(
    captured: tuple[logging.Logger, io.StringIO, Redactor],
) -> None:
    logger, stream, _ = captured
    logger.info("token is %s", SENTINEL)
    logger.info("headers %s", {"Authorization": f"Bearer {SENTINEL}"})
    logger.warning("plain %s", "value", extra={"detail": f"sent {SENTINEL}"})
    try:
        raise RuntimeError(f"failed with {SENTINEL}")
    except RuntimeError:
        logger.exception("boom")
    logger.info("stack", stack_info=True)
    out = stream.getvalue()
    assert SENTINEL not in out
    assert out.count("***") >= 3
    assert "RuntimeError: failed with ***" in out
