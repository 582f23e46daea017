"""Entry point of ``pod-studio``: a command runs headless (``cli``), none opens the app
(``bootstrap``).

The command line is parsed once, strictly, before anything else; the GUI (and so Qt) is
imported only when no command is given.
"""

from __future__ import annotations

import sys

from pod_studio.cli.main import parse_args, run


def main(argv: list[str] | None = None) -> int:
    args = parse_args(list(sys.argv[1:] if argv is None else argv))
    if args.command is not None:
        return run(args)
    from pod_studio import bootstrap

    return bootstrap.main(args)


if __name__ == "__main__":
    sys.exit(main())
