"""Entry point of ``pod-studio``: a subcommand runs headless (cli), none opens the app (bootstrap).

The GUI is imported only when it is needed, so the headless commands never load Qt.
"""

from __future__ import annotations

import sys

from pod_studio import cli


def main(argv: list[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if cli.wants_cli(args):
        return cli.main(args)
    from pod_studio import bootstrap

    return bootstrap.main(args)


if __name__ == "__main__":
    sys.exit(main())
