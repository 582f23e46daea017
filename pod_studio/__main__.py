"""Entry point of ``pod-studio``: a command runs headless (``cli``), none opens the app
(``bootstrap``).

The command line is parsed once, strictly, before anything else; the GUI (and so Qt) is
imported only when no command is given, and only after ``composition.startup`` found nothing
that would make Qt abort (no display, missing system libraries): that is reported in words.
"""

from __future__ import annotations

import sys

from pod_studio.cli import exits
from pod_studio.cli.main import parse_args, run
from pod_studio.domain.errors import PodStudioError, user_message


def _qt_platform() -> str:
    from pod_studio import bootstrap

    return bootstrap.qt_platform_name()


def main(argv: list[str] | None = None) -> int:
    args = parse_args(list(sys.argv[1:] if argv is None else argv))
    if args.command is not None:
        return run(args)
    from pod_studio.composition import startup

    if args.selftest:
        return startup.run_selftest(_qt_platform)
    problem = startup.gui_problem()
    if problem is not None:
        print(problem.message, file=sys.stderr)
        return exits.UNREACHABLE if problem.kind == "display" else exits.USAGE
    from pod_studio import bootstrap

    try:
        return bootstrap.main(args)
    except PodStudioError as exc:  # before the window opens: its folders cannot be used
        print(f"error: {user_message(exc)}", file=sys.stderr)
        return exits.for_error(exc)


if __name__ == "__main__":
    sys.exit(main())
