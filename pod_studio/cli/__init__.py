"""CLI layer: ``pod-studio``'s headless commands (generate, publish, queue, retry, discard,
resume, doctor, stats, sandbox) on the same composition as the window, without Qt.

One parser (``main.build_parser``), one exit-code policy (``exits``), one progress printer
(``progress``); each command in its own module.
"""
