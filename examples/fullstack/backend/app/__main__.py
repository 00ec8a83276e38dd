"""Run the API server: python -m app"""

from __future__ import annotations

import logging
import signal
import sys
import threading

from .config import Settings
from .db import Database
from .web import App, make_server

GRACE_SECONDS = 25.0  # below compose's default stop timeout of shipline (30 s)


def main() -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s", stream=sys.stdout)
    settings = Settings.from_env()
    server = make_server(App(Database(settings), settings.version), port=settings.port)

    # docker stop sends SIGTERM to PID 1 (us): stop accepting, let requests in flight finish, then exit.
    # (shutdown() must run outside the serving thread, hence the helper thread.)
    def on_sigterm(signum: int, frame: object) -> None:
        threading.Thread(target=server.shutdown, daemon=True).start()

    signal.signal(signal.SIGTERM, on_sigterm)
    logging.getLogger("app").info("listening on :%d, version %s", settings.port, settings.version)
    sys.stdout.flush()
    try:
        server.serve_forever(poll_interval=0.2)
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
        drained = server.RequestHandlerClass.in_flight.wait_idle(timeout=GRACE_SECONDS)  # type: ignore[attr-defined]
        logging.getLogger("app").info("stopped (%s)", "drained" if drained else "requests still running at exit")


if __name__ == "__main__":
    main()
