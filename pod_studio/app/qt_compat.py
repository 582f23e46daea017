"""App layer: a guard against a reference-count bug in ``SignalInstance.emit`` (PySide6 6.12.0).

In PySide6 6.12.0 ``signal.emit(...)`` returns ``True``/``False`` without taking a reference,
so every emit from Python steals one reference to the bool; after a few thousand emits the
interpreter aborts with "Fatal Python error: bool_dealloc" (6.11.3 does not do this).

``install()`` probes the running PySide6 once: if an emit loses a reference, it wraps
``SignalInstance.emit`` so that the reference is given back; otherwise it changes nothing.
It is idempotent and is called when the app layer's bridge and runner modules are imported.
"""

from __future__ import annotations

import ctypes
import logging
import sys
from typing import Any

from PySide6.QtCore import QObject, Signal, SignalInstance

log = logging.getLogger(__name__)

_installed: bool | None = None


class _Probe(QObject):
    sig_probed = Signal(object)


def _leaks_bool_reference() -> bool:
    probe = _Probe()
    before = sys.getrefcount(True), sys.getrefcount(False)
    for _ in range(8):
        probe.sig_probed.emit(None)
    after = sys.getrefcount(True), sys.getrefcount(False)
    lost = (before[0] - after[0]) + (before[1] - after[1])
    if lost > 0:
        # Give back what the probe itself took.
        for _ in range(before[0] - after[0]):
            ctypes.pythonapi.Py_IncRef(ctypes.py_object(True))
        for _ in range(before[1] - after[1]):
            ctypes.pythonapi.Py_IncRef(ctypes.py_object(False))
    return lost > 0


def install() -> bool:
    """Apply the fix if this PySide6 needs it; returns True when ``emit`` was wrapped."""
    global _installed
    if _installed is not None:
        return _installed
    if not _leaks_bool_reference():
        _installed = False
        return False
    original = SignalInstance.emit
    incref = ctypes.pythonapi.Py_IncRef
    incref.argtypes = [ctypes.py_object]
    incref.restype = None

    def emit(self: SignalInstance, *args: Any) -> Any:
        result = original(self, *args)
        if result is True or result is False:
            incref(result)
        return result

    SignalInstance.emit = emit  # type: ignore[method-assign]
    log.debug("SignalInstance.emit wrapped (PySide6 bool reference bug)")
    _installed = True
    return True
