"""UI layer: what lets the main window fit a laptop screen (1280×800).

``scrollable`` puts a form in a scroll area so its minimum size no longer sets the window's;
``make_dock_shrinkable`` does the same for a dock's contents; ``JobsDock`` carries the job
table as a secondary dock beside the queue.
"""

from __future__ import annotations

from PySide6.QtCore import QSize, Qt
from PySide6.QtGui import QResizeEvent
from PySide6.QtWidgets import QDockWidget, QFrame, QLabel, QScrollArea, QWidget

from pod_studio.ui.job_list import JobListView, JobTableModel

# A dock may shrink to this; what does not fit scrolls.
DOCK_MIN_WIDTH = 160
DOCK_MIN_HEIGHT = 90


class _Holder(QWidget):
    """Holds one widget and gives it all its room. Written by hand because a scroll area
    sizes a widget whose layout has height-for-width (any word-wrapped label) by its
    *preferred* height, so it scrolls although everything fits; this holder has no layout:
    the area scrolls only below the child's minimum size."""

    def __init__(self, child: QWidget) -> None:
        super().__init__()
        self.child = child
        child.setParent(self)

    def sizeHint(self) -> QSize:
        return self.child.sizeHint()

    def minimumSizeHint(self) -> QSize:
        return self.child.minimumSizeHint()

    def resizeEvent(self, event: QResizeEvent) -> None:
        super().resizeEvent(event)
        self.child.setGeometry(0, 0, self.width(), self.height())


def scrollable(widget: QWidget, name: str) -> QScrollArea:
    """``widget`` inside a frameless, resizable scroll area called ``name``."""
    area = QScrollArea()
    area.setObjectName(name)
    area.setWidgetResizable(True)
    area.setFrameShape(QFrame.Shape.NoFrame)
    area.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAsNeeded)
    area.setWidget(_Holder(widget))
    area.setMinimumSize(DOCK_MIN_WIDTH, DOCK_MIN_HEIGHT)
    return area


def make_dock_shrinkable(dock: QDockWidget) -> None:
    """Wrap the dock's contents in a scroll area (once)."""
    inner = dock.widget()
    if inner is None or isinstance(inner, QScrollArea):  # already scrolls
        return
    dock.setWidget(scrollable(inner, f"{dock.objectName()}_scroll"))


class JobsDock(QDockWidget):
    """The generation jobs table (progress, preview, retry/cancel) as a dock."""

    def __init__(self, jobs: JobListView, parent: QWidget | None = None) -> None:
        super().__init__(self.tr("Jobs"), parent)
        self.setObjectName("jobs_dock")
        self.toggleViewAction().setObjectName("jobs_dock_toggle")
        self.jobs = jobs
        for label in jobs.findChildren(QLabel):
            if label.property("role") == "heading" and label.text() == self.tr("Jobs"):
                label.hide()  # the dock's title says it already
        # the gallery grid shows each job's live preview on its card: no second one here,
        # and the dock stays short enough for a laptop
        jobs.preview_label.hide()
        # room for "waiting — will retry at 14:05: <why>"
        jobs.table.setColumnWidth(JobTableModel.COL_STATE, 220)
        self.setWidget(jobs)
