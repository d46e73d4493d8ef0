#!/usr/bin/env python3
"""Run humanparse on one machine, offline: ``python local_runner.py`` (serve), ``parse``, ``download``."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent / "function"))

from humanparse.entries.cli import main  # noqa: E402

if __name__ == "__main__":
    raise SystemExit(main())
