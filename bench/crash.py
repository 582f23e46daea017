"""Benchmark: the long kill -9 crash run of real ``pod-studio`` processes, and its control.

``pod-studio generate``, ``publish``, ``resume`` and the app's queue (the headless worker in
``tests/e2e/crash_worker.py``: ``build_core`` + ``start`` + ``run_queue``) run against a
sandbox ComfyUI server, the export folder and the Printify sandbox (``pod-studio sandbox
printify``, a subprocess). They are SIGKILLed at seeded random points (a random delay after
start, right after a progress line, right after a product create landed on Printify) and
the documented commands finish the work (the same ``generate`` / ``publish`` again, then
``pod-studio resume``). Prints lost and duplicate images and listings per design × product.
Then the control: the queue worker with reconciliation off, killed right after creates
landed, which must show duplicate listings (proof that the count can fail).

    .venv/bin/python -m bench.crash [--kills 50] [--control-kills 6] [--seed 1]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

from pod_studio.sandbox.comfyui import ComfyUISandbox
from pod_studio.sandbox.threaded import ServerThread
from tests.e2e.crash_worker import supervise, supervise_control


def main() -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--kills", type=int, default=50)
    parser.add_argument("--per-round", type=int, default=16, help="kills per batch")
    parser.add_argument("--control-kills", type=int, default=6)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="pod-crash-") as tmp:
        with ServerThread(ComfyUISandbox(seconds_per_job=0.2)) as comfy:
            print(f"== reconciling: {args.kills} SIGKILLs, seed {args.seed}", flush=True)
            report = supervise(
                Path(tmp) / "main",
                comfy.url,
                kills=args.kills,
                seed=args.seed,
                per_round=args.per_round,
            )
            for line in report.lines():
                print("  " + line)
            print(f"== control, reconciliation off: {args.control_kills} SIGKILLs", flush=True)
            control = supervise_control(
                Path(tmp) / "control", comfy.url, kills=args.control_kills, seed=args.seed
            )
            for line in control.lines():
                print("  " + line)
    ok = report.total_kills >= args.kills and report.final.startswith("done")
    ok &= report.lost_images == 0 and report.duplicate_images == 0
    ok &= report.lost_listings() == 0 and report.duplicate_listings() == 0
    ok &= control.duplicate_listings() > 0
    print(
        f"RESULT kills {report.total_kills}: lost images {report.lost_images}, duplicate images "
        f"{report.duplicate_images}, lost listings {report.lost_listings()}, duplicate listings "
        f"{report.duplicate_listings()} (control: {control.duplicate_listings()} duplicate "
        f"listings): {'PASS' if ok else 'FAIL'}"
    )
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
