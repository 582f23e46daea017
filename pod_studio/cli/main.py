"""CLI layer: the one parser of ``pod-studio`` and the dispatch to each command.

``pod-studio`` with no command opens the desktop window (``--demo`` on the sandbox servers);
a command runs headless and never imports Qt. Usage is strict: an unknown command or flag is
a usage error (exit 2) with a suggestion, never the window.
"""

from __future__ import annotations

import argparse
import asyncio
import difflib
import sys
import time
from collections.abc import Sequence
from typing import NoReturn

from pod_studio import __version__
from pod_studio.cli import comfyui, diagnose, etsy, exits, generate, publish, queue, sandbox
from pod_studio.domain.errors import PodStudioError, user_message

COMMANDS = ("generate", "publish", "doctor", "stats", "comfyui", "etsy", "sandbox", *queue.COMMANDS)


class StrictParser(argparse.ArgumentParser):
    """Usage errors say what was meant ("did you mean generate?") and exit 2."""

    def error(self, message: str) -> NoReturn:
        hint = ""
        if "invalid choice:" in message:
            word = message.split("invalid choice:", 1)[1].split("(")[0].strip().strip("'\"")
            choices = [c for c in COMMANDS if c]
            close = difflib.get_close_matches(word, choices, n=1, cutoff=0.6)
            if close:
                hint = f" (did you mean {close[0]}?)"
        elif "unrecognized arguments:" in message:
            flags = [a.option_strings for a in self._actions]
            known = [f for group in flags for f in group]
            word = message.split("unrecognized arguments:", 1)[1].split()[0]
            close = difflib.get_close_matches(word.split("=")[0], known, n=1, cutoff=0.6)
            if close:
                hint = f" (did you mean {close[0]}?)"
        self.print_usage(sys.stderr)
        self.exit(exits.USAGE, f"{self.prog}: error: {message}{hint}\n")


def build_parser() -> StrictParser:
    parser = StrictParser(
        prog="pod-studio",
        description="POD Studio: generate print-on-demand designs on ComfyUI and publish them. "
        "Without a command the desktop app opens.",
        epilog=exits.POLICY,
    )
    parser.add_argument("--version", action="version", version=f"pod-studio {__version__}")
    parser.add_argument(
        "--demo",
        action="store_true",
        help="open the app on the built-in sandbox servers (no GPU or accounts needed)",
    )
    parser.add_argument(
        "--server",
        action="append",
        metavar="URL",
        help="open the app on this ComfyUI server (repeatable; default from Settings)",
    )
    parser.add_argument(
        "--selftest",
        action="store_true",
        help="check this install (Qt, modules, database, keyring, images), then exit",
    )
    parser.add_argument("--screenshots", metavar="DIR", help=argparse.SUPPRESS)
    # print "painted" once the window has painted, then quit (the cold-start benchmark)
    parser.add_argument("--exit-after-paint", action="store_true", help=argparse.SUPPRESS)
    sub = parser.add_subparsers(
        dest="command", metavar="COMMAND", parser_class=StrictParser, title="commands"
    )
    generate.add_command(sub)
    publish.add_command(sub)
    queue.add_commands(sub)
    diagnose.add_commands(sub)
    comfyui.add_command(sub)
    etsy.add_command(sub)
    sandbox.add_command(sub)
    return parser


def _command_parser(parser: StrictParser, command: str | None) -> argparse.ArgumentParser:
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction) and command in action.choices:
            chosen: argparse.ArgumentParser = action.choices[command]
            return chosen
    return parser


def parse_args(argv: Sequence[str]) -> argparse.Namespace:
    """Parse ``argv`` (exits 2 with a message on a usage error)."""
    parser = build_parser()
    args, extra = parser.parse_known_args(list(argv))
    if extra:
        # reported by the command's own parser: its usage line and its flags for "did you mean"
        _command_parser(parser, args.command).error(f"unrecognized arguments: {' '.join(extra)}")
    gui_only = args.demo or args.selftest or args.screenshots or args.exit_after_paint
    if args.command is not None and gui_only:
        parser.error("--demo, --selftest and --screenshots go without a command")
    if args.command == "sandbox":
        problem = sandbox.check(args)
        if problem:
            parser.error(problem)
    return args


def run(args: argparse.Namespace) -> int:
    """Run the headless command ``args.command``; returns the exit status (see ``exits``)."""
    from pod_studio.composition.diagnostics import configure_logging, log_file, shutdown_logging

    started = time.monotonic()
    try:
        if args.command != "sandbox":
            configure_logging()  # makes the folders: one that cannot be used is said below
        if args.command == "generate":
            return asyncio.run(generate.run(args))
        if args.command == "publish":
            return asyncio.run(publish.run(args))
        if args.command in queue.COMMANDS:
            return asyncio.run(queue.run(args))
        if args.command == "doctor":
            return asyncio.run(diagnose.doctor(args))
        if args.command == "stats":
            return diagnose.stats(args)
        if args.command == "comfyui":
            return asyncio.run(comfyui.run(args))
        if args.command == "etsy":
            return asyncio.run(etsy.run(args))
        return sandbox.run(args)
    except PodStudioError as exc:
        print(f"error: {user_message(exc)}", file=sys.stderr)
        for line in getattr(exc, "details", None) or []:
            print(f"  - {line}", file=sys.stderr)
        if args.command != "sandbox" and log_file().is_file():
            print(f"  (details in the log: {log_file()})", file=sys.stderr)
        return exits.for_error(exc)
    except KeyboardInterrupt:
        print(
            f"interrupted after {time.monotonic() - started:.1f} s; unfinished work stays in the "
            "queue (run the same command again, or `pod-studio resume`)",
            file=sys.stderr,
        )
        return exits.INTERRUPTED
    finally:
        if args.command != "sandbox":
            shutdown_logging()


def main(argv: Sequence[str] | None = None) -> int:
    """Headless entry: ``argv`` must name a command (the window is ``pod_studio.__main__``)."""
    args = parse_args(sys.argv[1:] if argv is None else argv)
    if args.command is None:
        build_parser().print_help()
        return exits.USAGE
    return run(args)
