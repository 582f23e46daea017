"""GUI composition root (placeholder until the window lands)."""

from __future__ import annotations


def main(argv: list[str]) -> int:
    raise SystemExit("the desktop app is not available in this build")
