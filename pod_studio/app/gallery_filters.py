"""App layer: what a gallery card is in the seller's words (its state) and which filter shows it.

Pure functions over ``GeneratedImage`` values and the publish lines the ``GalleryController``
keeps per design (platform -> text); the grid view and its proxy model call them.
"""

from __future__ import annotations

from collections.abc import Mapping
from enum import StrEnum

from pod_studio.domain.models import GeneratedImage


class GalleryFilter(StrEnum):
    ALL = "all"
    TO_REVIEW = "to_review"
    APPROVED = "approved"
    REJECTED = "rejected"
    PUBLISHED = "published"


FILTER_LABELS: dict[GalleryFilter, str] = {
    GalleryFilter.ALL: "All",
    GalleryFilter.TO_REVIEW: "To review",
    GalleryFilter.APPROVED: "Approved",
    GalleryFilter.REJECTED: "Rejected",
    GalleryFilter.PUBLISHED: "Published",
}


class CardState(StrEnum):
    QUEUED = "queued"
    RUNNING = "running"
    WAITING = "waiting"
    DONE = "done"  # finished, not reviewed yet
    APPROVED = "approved"
    REJECTED = "rejected"
    PUBLISHED = "published"


STATE_WORDS: dict[CardState, str] = {
    CardState.QUEUED: "Queued",
    CardState.RUNNING: "Generating",
    CardState.WAITING: "Waiting",
    CardState.DONE: "To review",
    CardState.APPROVED: "Approved",
    CardState.REJECTED: "Rejected",
    CardState.PUBLISHED: "Published",
}


def published_platforms(lines: Mapping[str, str]) -> list[str]:
    """The platforms where the design is live (or a draft exists), in the book's order."""
    return [p for p, text in lines.items() if text.startswith(("published", "draft created"))]


def image_state(image: GeneratedImage, lines: Mapping[str, str]) -> CardState:
    if published_platforms(lines):
        return CardState.PUBLISHED
    if image.approved is True:
        return CardState.APPROVED
    if image.approved is False:
        return CardState.REJECTED
    return CardState.DONE


def job_state(status: str) -> CardState:
    """The card state of a generation job of the queue (``JobStatus`` values)."""
    if status == "running":
        return CardState.RUNNING
    if status == "retry_wait":
        return CardState.WAITING
    return CardState.QUEUED


def matches(which: GalleryFilter, state: CardState) -> bool:
    """Does a card in ``state`` show under the filter ``which``? Jobs still generating show
    under "All" and "To review" (they are on their way to being reviewed)."""
    if which is GalleryFilter.ALL:
        return True
    if which is GalleryFilter.TO_REVIEW:
        return state in (CardState.QUEUED, CardState.RUNNING, CardState.WAITING, CardState.DONE)
    if which is GalleryFilter.APPROVED:
        return state in (CardState.APPROVED, CardState.PUBLISHED)
    if which is GalleryFilter.REJECTED:
        return state is CardState.REJECTED
    return state is CardState.PUBLISHED
