"""Run the API server: python -m app"""

from __future__ import annotations

import logging
import signal
import sys

from .config import Settings
from .db import Database
from .web import App, make_server


def main() -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s", stream=sys.stdout)
    settings = Settings.from_env()
    server = make_server(App(Database(settings), settings.version), port=settings.port)

    # docker stop sends SIGTERM to PID 1 (us): leave serve_forever at once so the container stops promptly.
    def on_sigterm(signum: int, frame: object) -> None:
        raise SystemExit(0)

    signal.signal(signal.SIGTERM, on_sigterm)
    logging.getLogger("app").info("listening on :%d, version %s", settings.port, settings.version)
    sys.stdout.flush()
    try:
        server.serve_forever(poll_interval=0.2)
    except (SystemExit, KeyboardInterrupt):
        pass
    finally:
        server.server_close()
        logging.getLogger("app").info("stopped")


if __name__ == "__main__":
    main()
