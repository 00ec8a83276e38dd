"""Create or update the schema: python -m app.migrate (run once per deploy, before the new app starts)."""

from __future__ import annotations

import sys

from .config import Settings
from .db import Database


def main() -> int:
    Database(Settings.from_env()).migrate()
    print("migrations applied", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
