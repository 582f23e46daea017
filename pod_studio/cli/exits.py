"""CLI layer: the one exit-code policy of every ``pod-studio`` command (also in ``--help``)."""

from __future__ import annotations

from collections.abc import Iterable

from pod_studio.domain.errors import exit_class

OK = 0  # everything asked for was done
FAILED = 1  # some work failed or is left unfinished (it stays in the queue: `pod-studio queue`)
USAGE = 2  # a usage error or bad input: nothing was started
UNREACHABLE = 3  # a server that is needed cannot be reached (or is not what was expected)
INTERRUPTED = 130  # Ctrl-C: work in flight stays in the queue and resumes next time

POLICY = (
    "exit status: 0 done; 1 some work failed or is unfinished (it stays in the queue); "
    "2 usage error or bad input; 3 a needed server cannot be reached; 130 interrupted"
)


def for_error(exc: BaseException) -> int:
    """The exit status of a command that ends on ``exc``: from the error's type (its
    ``exit_class``), never from its words."""
    return int(exit_class(exc))


def for_failures(failed: Iterable[int], *, unfinished: bool) -> int:
    """The exit status of a run whose jobs ``failed`` with these exit classes: 0 when none
    failed and none is left; the failures' one class when they share it (every job refused
    as bad input: 2; every server unreachable: 3); else 1."""
    classes = set(failed)
    if unfinished or len(classes) > 1:
        return FAILED
    return classes.pop() if classes else OK
