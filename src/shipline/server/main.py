"""`shipline serve`: load serve.yml, then run the ASGI app on uvicorn."""

from __future__ import annotations

from pathlib import Path

from .settings import load_settings


def run_server(config: Path, listen: str | None = None) -> None:
    import uvicorn

    from .app import create_app

    settings = load_settings(config)
    if listen:
        settings = settings.model_copy(update={"listen": listen})
    app = create_app(settings)
    server = app.state.server
    server.prepare()
    print(f"shipline serve: {settings.local_url()} (data in {settings.data_path})", flush=True)
    for name in settings.apps:
        print(f"  {name}: git push {server.repos.bare(name)}  ·  webhooks {settings.local_url()}/webhooks/{name}/<forge>",
              flush=True)
    uvicorn.run(app, host=settings.host, port=settings.port, log_level="warning", timeout_graceful_shutdown=3,
                proxy_headers=bool(settings.trusted_proxies), forwarded_allow_ips=settings.trusted_proxies or None)
