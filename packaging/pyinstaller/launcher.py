"""Entry script of the frozen app: PyInstaller starts a file, not ``python -m pod_studio``."""

import sys

from pod_studio.__main__ import main

if __name__ == "__main__":
    sys.exit(main())
