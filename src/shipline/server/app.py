"""The ASGI app: webhook endpoints, the hook API, the dashboard (HTML + SSE) and the same data as JSON.

Handlers only authenticate, validate and call the queue or the store; no git or Docker work happens in a request
except where the operator asks for it (the dashboard's "deploy branch head" resolves the head first).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

from jinja2 import Environment, PackageLoader, select_autoescape
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, RedirectResponse, Response, StreamingResponse
from starlette.routing import Route

from ..errors import ShiplineError
from ..secrets import Masker, Secret, read_env_file
from . import webhooks
from .auth import COOKIE, SESSION_HOURS, Auth, address, bearer, same
from .events import Hub
from .masking import mask_all
from .queue import Queue
from .repos import GitFailed, Repos
from .runner import Runner
from .settings import Settings
from .store import Run, Store

KEEPALIVE = 15.0  # seconds between SSE comments, so proxies keep an idle live log open


class Server:
    """Everything one `shipline serve` process holds, passed explicitly (no globals)."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        settings.data_path.mkdir(parents=True, exist_ok=True)
        os.chmod(settings.data_path, 0o700)
        self.store = Store(settings.data_path / "serve.db")
        self.hub = Hub()
        self.repos = Repos(settings)
        self.hook_tokens = {app: self.store.hook_token(app) for app in settings.apps}
        self._wakeups: dict[str, asyncio.Event] = {}
        self.queue = Queue(self.store, self._wake)
        self.auth = Auth(self.store, settings.operator_token, settings.secure_cookies)
        self.runner = Runner(settings, self.store, self.hub, self.repos, self.app_secrets, self.server_secrets)
        self._tasks: list[asyncio.Task[None]] = []
        self._masker: tuple[float, Masker] = (-1e9, Masker())

    def app_secrets(self, app: str) -> dict[str, str]:
        """The app's secrets file, read at each run (an edit needs no restart)."""
        path = self.settings.apps[app].secrets_file
        return read_env_file(Path(os.path.expanduser(path))) if path else {}

    def server_secrets(self) -> list[str]:
        hooks = [w for a in self.settings.apps.values() for w in (a.webhooks.github, a.webhooks.gitea, a.webhooks.gitlab) if w]
        return [self.settings.operator_token, *hooks, *self.hook_tokens.values()]

    def all_secrets(self) -> list[str]:
        return [*self.server_secrets(), *(v for app in self.settings.apps for v in self.app_secrets(app).values())]

    def masker(self) -> Masker:
        """The current secrets, the secrets files read again at most once a second (an edit needs no restart)."""
        now = time.monotonic()
        if now - self._masker[0] > 1:
            self._masker = (now, Masker([Secret(str(i), v) for i, v in enumerate(self.all_secrets())]))
        return self._masker[1]

    def mask(self, text: str) -> str:
        return self.masker()(text)

    def masked(self, value: Any) -> Any:
        """Every string in a response, masked: the last line of defence for pages and the JSON API."""
        return mask_all(value, self.masker())

    def _wake(self, app: str) -> None:
        event = self._wakeups.get(app)
        if event:
            event.set()
        self.hub.notify()

    def prepare(self) -> None:
        """Bare repositories, hooks and checkouts in place, before the server listens."""
        for app in self.settings.apps:
            try:
                self.repos.setup(app, self.hook_tokens[app])
            except (GitFailed, OSError) as exc:
                raise ShiplineError(f"cannot set up app {app}'s repositories under {self.settings.git_path} and "
                                    f"{self.settings.data_path}: {exc}. Check that they are writable.") from None

    async def start(self) -> None:
        """Serve at once (webhooks keep being accepted); runs start after what a previous server left is settled."""
        for app in self.settings.apps:
            self._wakeups[app] = asyncio.Event()
        self._tasks.append(asyncio.create_task(self._boot(), name="boot"))

    async def _boot(self) -> None:
        await self.runner.recover()
        for app in self.settings.apps:
            self._tasks.append(asyncio.create_task(self._worker(app), name=f"worker {app}"))

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def _worker(self, app: str) -> None:
        """One run at a time per app, in queue order."""
        wake = self._wakeups[app]
        while True:
            run = self.queue.next(app)
            if run is None:
                await wake.wait()
                wake.clear()
                continue
            await self.runner.execute(run)


def create_app(settings: Settings) -> Starlette:
    server = Server(settings)
    env = Environment(loader=PackageLoader("shipline.server", "templates"), autoescape=select_autoescape())

    def page(request: Request, name: str, status: int = 200, **ctx: Any) -> HTMLResponse:
        found = server.auth.session(request)
        html = env.get_template(name).render(csrf=found[1] if found else "", logged_in=bool(found),
                                             apps=list(settings.apps), **server.masked(ctx))
        return HTMLResponse(html, status)

    def api(data: Any, status: int = 200, headers: dict[str, str] | None = None) -> JSONResponse:
        return JSONResponse(server.masked(data), status, headers=headers)

    def refused(request: Request) -> Response:
        if request.method == "GET" and not request.url.path.startswith("/api/") and "text/html" in request.headers.get("accept", ""):
            return RedirectResponse(f"/login?next={request.url.path}", 303)
        return api({"error": "log in first, or send the operator token as `Authorization: Bearer ...`"}, 401)

    Handler = Callable[[Request], Awaitable[Response]]

    def operator(handler: Handler) -> Handler:
        async def wrapped(request: Request) -> Response:
            addr = address(request)
            wait = server.auth.limiter.retry_after(addr)
            if wait:
                return api({"error": "too many failed attempts; wait"}, 429, {"Retry-After": str(int(wait))})
            if not server.auth.operator(request):
                if bearer(request) is not None:
                    server.auth.limiter.fail(addr)
                return refused(request)
            if request.method == "POST":
                form = await request.form() if "form" in request.headers.get("content-type", "") else {}
                given = str(form.get("csrf") or request.headers.get("x-csrf-token") or "")
                if not server.auth.csrf_ok(request, given):
                    return api({"error": "missing or wrong CSRF token; reload the page"}, 403)
            return await handler(request)
        return wrapped

    def app_or_404(request: Request) -> str | None:
        name = request.path_params["app"]
        return name if name in settings.apps else None

    def run_or_none(request: Request) -> Run | None:
        return server.store.run(int(request.path_params["run"]))

    # --- webhooks -------------------------------------------------------------------------------------------
    async def webhook(request: Request) -> Response:
        addr = address(request)
        wait = server.auth.limiter.retry_after(addr)
        if wait:
            return api({"error": "too many rejected deliveries from this address"}, 429, {"Retry-After": str(int(wait))})
        name, forge = request.path_params["app"], request.path_params["forge"]
        app = settings.apps.get(name)
        secret = app.webhooks.secret(forge) if app and forge in webhooks.FORGES else None

        def reject(status: int, reason: str) -> Response:
            server.auth.limiter.fail(addr)
            return api({"error": reason}, status)

        if app is None or secret is None:
            return reject(404, f"no {forge} webhook is configured for app {name!r}")
        length = request.headers.get("content-length", "")
        if length.isdigit() and int(length) > settings.max_body:
            return reject(413, f"payload over {settings.max_body} bytes")
        body = bytearray()
        async for chunk in request.stream():
            body += chunk
            if len(body) > settings.max_body:
                return reject(413, f"payload over {settings.max_body} bytes")
        raw = bytes(body)
        headers = {k.lower(): v for k, v in request.headers.items()}
        try:
            webhooks.verify(forge, headers, raw, secret)
            event = webhooks.event(forge, headers)
            if not webhooks.is_push(forge, event):
                return api({"ignored": f"{event or 'unnamed'} events do not deploy" if event != "ping" else "pong"})
            push = webhooks.parse_push(forge, raw)
        except webhooks.Rejected as exc:
            return reject(exc.status, exc.reason)
        digest = webhooks.body_digest(raw)
        delivery = webhooks.delivery_id(forge, headers) or f"sha256:{digest}"
        why_not = webhooks.decide(push, app.branch)
        if why_not or push.sha is None:
            duplicate = server.queue.seen(forge, delivery, digest, name)
            return api({"ignored": why_not, "duplicate": duplicate})
        queued = server.queue.deploy(name, push.sha, push.ref, f"webhook:{forge}", push.actor,
                                     delivery=(forge, delivery, digest))
        if queued is None:
            return api({"ignored": "this delivery was seen before; nothing queued", "duplicate": True})
        return api({"run": queued.run.id, "created": queued.created, "status": queued.run.status,
                    "sha": push.sha}, 202)

    # --- git push hook ----------------------------------------------------------------------------------------
    def hook_or_operator(request: Request, app: str) -> bool:
        token = bearer(request)
        return bool(server.auth.operator(request) == "token" or
                    (token and app in server.hook_tokens and same(token, server.hook_tokens[app])))

    async def git_push(request: Request) -> Response:
        """Called by a bare repository's hook; with ?follow=1 the answer is the run's log as it is written."""
        name = app_or_404(request)
        if name is None or not hook_or_operator(request, name):
            server.auth.limiter.fail(address(request))
            return api({"error": "unknown app or wrong hook token"}, 401)
        data: Any = await request.form() if "form" in request.headers.get("content-type", "") else await request.json()
        ref, sha, actor = str(data.get("ref", "")), str(data.get("sha", "")), str(data.get("actor") or "git")
        if not webhooks.SHA_RE.match(sha):
            return api({"error": "sha must be a full commit id"}, 400)
        push = webhooks.Push(ref=ref, sha=None if sha == webhooks.ZERO_SHA else sha, actor=actor, repository=name)
        why_not = webhooks.decide(push, settings.apps[name].branch)
        queued = None if why_not else server.queue.deploy(name, sha, ref, "git-push", actor)
        if request.query_params.get("follow") not in ("1", "true"):
            if queued is None:
                return api({"ignored": why_not})
            return api({"run": queued.run.id, "created": queued.created, "status": queued.run.status}, 202)

        async def lines() -> AsyncIterator[str]:
            if queued is None:
                yield f"shipline: {why_not}; nothing deployed\n"
                return
            run = queued.run
            note = "queued" if queued.created else "was already queued or running for this commit"
            yield f"shipline: run #{run.id} {note} for {sha[:7]}; following its log (Ctrl-C stops following, not the run)\n"
            async for text in follow_text(run.id):
                yield text
        return StreamingResponse(lines(), media_type="text/plain; charset=utf-8", headers={"Cache-Control": "no-cache"})

    async def follow_text(run_id: int) -> AsyncIterator[str]:
        """A run's log lines as they come; a run that ended without running (superseded, cancelled) says so."""
        shown = False
        async for kind, _, text in stream(run_id, 0, True):
            if kind == "line":
                shown = True
                yield text + "\n"
            elif kind == "end" and not shown:
                run = server.store.run(run_id)
                assert run
                yield server.mask(f"==> run #{run.id} {run.status}" + (f": {run.reason}" if run.reason else "") + "\n")

    async def follow_log(request: Request) -> Response:
        """The run's log as plain text lines, following it until the run ends (the hook streams this)."""
        run = run_or_none(request)
        if run is None or not hook_or_operator(request, run.app):
            return api({"error": "unknown run, or not allowed"}, 401 if run else 404)
        follow = request.query_params.get("follow") in ("1", "true")

        if follow:
            return StreamingResponse(follow_text(run.id), media_type="text/plain; charset=utf-8",
                                     headers={"Cache-Control": "no-cache"})
        return Response("".join(f"{line}\n" for _, line in server.store.log(run.id)), media_type="text/plain; charset=utf-8")

    async def stream(run_id: int, after: int, follow: bool) -> AsyncIterator[tuple[str, int, str]]:
        """(kind, seq, text): log lines after `after`, status changes, keep-alives, then ("end", 0, status)."""
        status = ""
        while True:
            lines = server.store.log(run_id, after)
            for seq, line in lines:
                yield "line", seq, server.mask(line)
                after = seq
            run = server.store.run(run_id)
            assert run
            if run.status != status:
                status = run.status
                yield "status", 0, status
            if run.finished and not server.store.log(run_id, after):
                yield "end", 0, run.status
                return
            if not follow:
                return
            if not lines and not await server.hub.wait(KEEPALIVE):
                yield "keepalive", 0, ""

    # --- login ------------------------------------------------------------------------------------------------
    async def login_page(request: Request) -> Response:
        return page(request, "login.html", next=_safe_next(request.query_params.get("next")), error="")

    async def login(request: Request) -> Response:
        addr = address(request)
        wait = server.auth.limiter.retry_after(addr)
        form = await request.form()
        nxt = _safe_next(str(form.get("next") or ""))
        if wait:
            return page(request, "login.html", 429, next=nxt, error=f"Too many failed attempts; wait {int(wait)} s.")
        if not server.auth.check_token(str(form.get("token") or "")):
            server.auth.limiter.fail(addr)
            return page(request, "login.html", 401, next=nxt, error="Wrong token.")
        sid, _ = server.auth.login()
        resp = RedirectResponse(nxt, 303)
        resp.set_cookie(COOKIE, sid, max_age=SESSION_HOURS * 3600, httponly=True, samesite="strict",
                        secure=server.auth.secure, path="/")
        return resp

    @operator
    async def logout(request: Request) -> Response:
        found = server.auth.session(request)
        if found:
            server.store.delete_session(found[0])
        resp = RedirectResponse("/login", 303)
        resp.delete_cookie(COOKIE, path="/")
        return resp

    # --- dashboard --------------------------------------------------------------------------------------------
    def overview() -> list[dict[str, Any]]:
        out = []
        for name, app in settings.apps.items():
            runs = server.store.runs(name, limit=1)
            out.append({"name": name, "branch": app.branch, "repository": app.repository or "",
                        "push_url": str(server.repos.bare(name)), "last": runs[0].as_dict() if runs else None,
                        "webhooks": [f for f in webhooks.FORGES if app.webhooks.secret(f)]})
        return out

    @operator
    async def index(request: Request) -> Response:
        return page(request, "index.html", overview=overview())

    async def releases_of(name: str) -> tuple[list[dict[str, Any]], str]:
        """`shipline releases --json` in the app's checkout: the hosts' ledgers say what is deployed."""
        if not server.repos.has_checkout(name):
            return [], "No checkout yet: the first run fetches the app."
        env = server.runner.env(name)
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "shipline", "releases", "--json", "--config", str(server.repos.config_path(name)),
            cwd=str(server.repos.config_path(name).parent), env=env, stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE)
        try:
            out, err = await asyncio.wait_for(proc.communicate(), 60)
        except TimeoutError:
            proc.kill()
            return [], "`shipline releases` did not answer within 60 s"
        if proc.returncode != 0:
            return [], err.decode(errors="replace").strip() or f"`shipline releases` failed ({proc.returncode})"
        try:
            data = json.loads(out)
        except ValueError:
            return [], "`shipline releases --json` printed no JSON"
        return (data if isinstance(data, list) else []), ""

    @operator
    async def app_page(request: Request) -> Response:
        name = app_or_404(request)
        if name is None:
            return page(request, "error.html", 404, message="No such app.")
        releases, problem = await releases_of(name)
        runs = [r.as_dict() for r in server.store.runs(name, limit=50)]
        by_host: dict[str, list[dict[str, Any]]] = {}
        for release in releases:
            for host in release.get("hosts") or ["(hosts not recorded)"]:
                by_host.setdefault(str(host), []).append(release)
        current = next((r.get("number") for r in releases if r.get("status") == "succeeded"), None)
        return page(request, "app.html", app=name, settings=settings.apps[name].model_dump(include={"branch", "repository", "config"}),
                    runs=runs, releases_by_host=by_host, current=current, releases_problem=problem,
                    push_url=str(server.repos.bare(name)))

    @operator
    async def run_page(request: Request) -> Response:
        run = run_or_none(request)
        if run is None:
            return page(request, "error.html", 404, message="No such run.")
        return page(request, "run.html", run=run.as_dict(), log=[line for _, line in server.store.log(run.id)])

    @operator
    async def run_events(request: Request) -> Response:
        run = run_or_none(request)
        if run is None:
            return api({"error": "no such run"}, 404)
        after = int(request.headers.get("last-event-id") or request.query_params.get("after") or 0)

        async def events() -> AsyncIterator[str]:
            yield "retry: 2000\n\n"
            async for kind, seq, text in stream(run.id, after, True):
                if kind == "line":
                    yield f"id: {seq}\ndata: {json.dumps(text)}\n\n"
                elif kind == "keepalive":
                    yield ": keep-alive\n\n"
                else:
                    current = server.store.run(run.id)
                    assert current
                    yield f"event: {kind}\ndata: {json.dumps(server.masked(current.as_dict()))}\n\n"
        return StreamingResponse(events(), media_type="text/event-stream",
                                 headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})

    @operator
    async def deploy_head(request: Request) -> Response:
        name = app_or_404(request)
        if name is None:
            return api({"error": "no such app"}, 404)
        try:
            sha = await server.repos.branch_head(name)
        except GitFailed as exc:
            return respond(request, {"error": str(exc)}, 409)
        queued = server.queue.deploy(name, sha, f"refs/heads/{settings.apps[name].branch}", "dashboard", "operator")
        assert queued
        return respond(request, {"run": queued.run.id, "created": queued.created}, 202, f"/runs/{queued.run.id}")

    @operator
    async def rollback(request: Request) -> Response:
        name = app_or_404(request)
        if name is None:
            return api({"error": "no such app"}, 404)
        data: Any = await request.form() if "form" in request.headers.get("content-type", "") else await request.json()
        try:
            release = int(data.get("release"))
        except (TypeError, ValueError):
            return respond(request, {"error": "give the release number to roll back to"}, 400)
        run = server.queue.rollback(name, release, "dashboard", "operator")
        return respond(request, {"run": run.id}, 202, f"/runs/{run.id}")

    @operator
    async def cancel(request: Request) -> Response:
        run = run_or_none(request)
        if run is None:
            return api({"error": "no such run"}, 404)
        if run.finished:
            return respond(request, {"error": f"run {run.id} has already ended ({run.status})"}, 409, f"/runs/{run.id}")
        updated = server.queue.cancel(run.id, "operator")
        assert updated
        return respond(request, {"run": run.id, "status": updated.status, "cancel": updated.cancel}, 202, f"/runs/{run.id}")

    def respond(request: Request, data: dict[str, Any], status: int, redirect: str | None = None) -> Response:
        """Forms get a page (or a redirect after success); API clients get JSON."""
        if "form" in request.headers.get("content-type", ""):
            if redirect and status < 400:
                return RedirectResponse(redirect, 303)
            return page(request, "error.html", status, message=data.get("error", ""))
        return api(data, status)

    # --- JSON API ---------------------------------------------------------------------------------------------
    @operator
    async def api_apps(request: Request) -> Response:
        return api(overview())

    @operator
    async def api_runs(request: Request) -> Response:
        name = app_or_404(request)
        if name is None:
            return api({"error": "no such app"}, 404)
        limit = min(int(request.query_params.get("limit", "50")), 500)
        return api([r.as_dict() for r in server.store.runs(name, limit=limit)])

    @operator
    async def api_run(request: Request) -> Response:
        run = run_or_none(request)
        if run is None:
            return api({"error": "no such run"}, 404)
        return api({**run.as_dict(), "log": [line for _, line in server.store.log(run.id)]})

    @operator
    async def api_releases(request: Request) -> Response:
        name = app_or_404(request)
        if name is None:
            return api({"error": "no such app"}, 404)
        releases, problem = await releases_of(name)
        return api({"releases": releases, "error": problem or None})

    async def healthz(request: Request) -> Response:
        return api({"ok": True})

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        await server.start()
        try:
            yield
        finally:
            await server.stop()

    routes = [
        Route("/webhooks/{app}/{forge}", webhook, methods=["POST"]),
        Route("/api/apps/{app}/push", git_push, methods=["POST"]),
        Route("/api/runs/{run:int}/log", follow_log),
        Route("/login", login_page), Route("/login", login, methods=["POST"]),
        Route("/logout", logout, methods=["POST"]),
        Route("/", index), Route("/apps/{app}", app_page), Route("/runs/{run:int}", run_page),
        Route("/runs/{run:int}/events", run_events),
        Route("/apps/{app}/deploy", deploy_head, methods=["POST"]),
        Route("/apps/{app}/rollback", rollback, methods=["POST"]),
        Route("/runs/{run:int}/cancel", cancel, methods=["POST"]),
        Route("/api/apps", api_apps), Route("/api/apps/{app}/runs", api_runs), Route("/api/runs/{run:int}", api_run),
        Route("/api/apps/{app}/releases", api_releases),
        Route("/api/apps/{app}/deploy", deploy_head, methods=["POST"]),
        Route("/api/apps/{app}/rollback", rollback, methods=["POST"]),
        Route("/api/runs/{run:int}/cancel", cancel, methods=["POST"]),
        Route("/healthz", healthz),
    ]
    app = Starlette(routes=routes, lifespan=lifespan)
    app.state.server = server
    return app


def _safe_next(value: str | None) -> str:
    """Only a local path: a login link cannot send the operator elsewhere."""
    return value if value and value.startswith("/") and not value.startswith("//") and "\\" not in value else "/"
