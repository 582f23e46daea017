"""Adapters layer: files on this machine (settings, secrets, images, caches, job ledger)."""
