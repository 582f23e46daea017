"""Benchmark: the long kill -9 crash run of the durable orchestrator, and its control.

Runs the headless worker (``tests/e2e/crash_worker.py``) against a sandbox ComfyUI server,
SIGKILLs it at seeded random points (random delays, mid-download, mid-save, mid-create, right
after a create landed), restarts it until the batch is done, and counts images per job and
listings per idempotency key. Then the control: the same with reconciliation disabled, which
must show duplicate listings (proof that the test can fail).

    .venv/bin/python bench/crash.py [--jobs 30] [--kills 50] [--control-kills 20] [--seed 1]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from pod_studio.sandbox.comfyui import ComfyUISandbox  # noqa: E402
from pod_studio.sandbox.threaded import ServerThread  # noqa: E402
from tests.e2e.crash_worker import supervise  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=30)
    parser.add_argument("--kills", type=int, default=50)
    parser.add_argument("--control-kills", type=int, default=20)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    ok = True
    with tempfile.TemporaryDirectory(prefix="pod-crash-") as tmp:
        with ServerThread(ComfyUISandbox(seconds_per_job=0.05)) as comfy:
            print(
                f"== reconciling worker: {args.jobs} jobs, {args.kills} SIGKILLs, seed {args.seed}"
            )
            report = supervise(
                Path(tmp) / "main", [comfy.url], jobs=args.jobs, kills=args.kills, seed=args.seed
            )
            for line in report.lines():
                print("  " + line)
            ok &= report.duplicate_listings == 0 and report.duplicate_images == 0
            ok &= report.lost_images == 0 and report.listings_total == report.expected_listings()
            print(f"== control, reconciliation disabled: {args.control_kills} SIGKILLs")
            control = supervise(
                Path(tmp) / "control",
                [comfy.url],
                jobs=max(4, args.jobs // 3),
                kills=args.control_kills,
                seed=args.seed,
                reconcile=False,
            )
            for line in control.lines():
                print("  " + line)
            ok &= control.duplicate_listings > 0
    print(
        f"RESULT duplicates {report.duplicate_listings} (control {control.duplicate_listings}), "
        f"lost images {report.lost_images}, kills {report.kills}: {'PASS' if ok else 'FAIL'}"
    )
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
