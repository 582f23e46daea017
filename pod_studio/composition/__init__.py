"""Composition layer (Qt-free): the only place adapters are built and injected into services.

- ``core``: ``build_core`` — THE engine (durable orchestrator, gallery, publishing, resilience)
  from the seller's settings, for the window, every command, the tests and the benchmarks.
- ``publishing``: product templates, the Printify client, the export folder, the PublishService.
- ``headless``: the engine started for a command; generate and publish runs on it.
- ``diagnostics``: doctor, statistics, logging set-up, the self test.
- ``demo``: the sandbox servers demo mode runs on.
"""
