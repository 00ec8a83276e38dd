"""The `shipline` command: parses options, builds a Context, calls the core. No deploy logic lives here."""

from __future__ import annotations

import functools
import json
import os
import signal
import sys
from collections.abc import Callable
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, TypeVar

import typer

from .errors import ShiplineError

# Everything heavier (pydantic, paramiko, rich, the pipeline) is imported by the commands that use it, so
# `shipline --help` starts in a fraction of a second (`python -X importtime -m shipline --help`).
if TYPE_CHECKING:
    from rich.console import Console

    from . import pipeline
    from .config import Host, Project
    from .executors.base import Executor
    from .secrets import Masker

app = typer.Typer(add_completion=False, no_args_is_help=True, pretty_exceptions_enable=False,
                  help="From git push to production on servers you own.")
lock_app = typer.Typer(no_args_is_help=True, help="Inspect or release the deploy lock on the hosts.")
app.add_typer(lock_app, name="lock")

ConfigOpt = Annotated[Path, typer.Option("--config", "-c", help="Path of shipline.yml.")]
JsonOpt = Annotated[bool, typer.Option("--json", help="Machine-readable output.")]
RebuildOpt = Annotated[bool, typer.Option("--rebuild", help="Build every image, even those whose build inputs "
                                          "match an image already in the registry.")]


class CacheType(StrEnum):
    registry = "registry"
    inline = "inline"
    off = "off"


CacheOpt = Annotated[CacheType | None, typer.Option(
    "--build-cache",
    help="Override shipline.yml's build_cache.type: keep BuildKit's layer cache in the registry for fresh CI runners.")]
RefOpt = Annotated[str | None, typer.Option("--ref", help="Branch, tag or SHA to deploy (default: head of the deploy branch).")]
F = TypeVar("F", bound=Callable[..., Any])


def handled(fn: F) -> F:
    """Turn expected failures into one message and a named exit status, never a traceback."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except ShiplineError as exc:
            from rich.text import Text
            errors().print(Text.assemble(("error:", "bold red"), " ", exc.message))
            raise typer.Exit(int(exc.exit_code)) from None
        except KeyboardInterrupt:
            from rich.text import Text
            errors().print(Text("interrupted", "bold red"))
            raise typer.Exit(130) from None

    return wrapper  # type: ignore[return-value]


def console() -> Console:
    """Standard output. Markup is off: what is printed (reasons, command output, paths) is shown as written,
    so `[word]` stays and `[/x]` cannot raise; styles are given as `Text`."""
    from rich.console import Console

    # Logs and CI have no terminal width; 80 columns would fold tables and paths.
    return Console(soft_wrap=True, width=None if sys.stdout.isatty() else 160, markup=False, highlight=False)


def errors() -> Console:
    from rich.console import Console

    return Console(stderr=True, soft_wrap=True, markup=False, highlight=False)


def ssh_connector(project: Project, masker: Masker) -> pipeline.Connect:
    from .config import resolve_key_path
    from .executors.ssh import SSHExecutor

    def connect(index: int, host: Host) -> Executor:
        return SSHExecutor(address=host.address, hostname=host.hostname, port=host.port, user=host.user,
                           key_path=resolve_key_path(project, host), pinned=host.host_key, index=index, masker=masker)
    return connect


def context(config: Path) -> pipeline.Context:
    from . import pipeline
    from .config import load_project
    from .history import History
    from .reporter import Reporter
    from .secrets import Masker

    project = load_project(config)
    masker = Masker()
    return pipeline.Context(project=project, env=os.environ, report=Reporter(console(), masker),
                            history=History(project.state_dir / "history.db"), connect=ssh_connector(project, masker),
                            masker=masker)


@app.command()
@handled
def deploy(config: ConfigOpt = Path("shipline.yml"), ref: RefOpt = None,
           no_build: Annotated[bool, typer.Option("--no-build", help="Deploy images already published for this commit.")] = False,
           source: Annotated[str, typer.Option("--source", help="What triggered the deploy (cli, git-push, webhook:github, ...).")] = "cli",
           actor: Annotated[str | None, typer.Option("--actor", help="Who triggered it (default: CI's actor or the OS user).")] = None,
           rebuild: RebuildOpt = False, build_cache: CacheOpt = None) -> None:
    """Build, test, publish and deploy a commit (default: head of the deploy branch)."""
    from . import pipeline

    ctx = context(config)
    pipeline.deploy(ctx, pipeline.make_trigger(ctx, ref, source, actor), build=not no_build, rebuild=rebuild,
                    build_cache=build_cache.value if build_cache else None)


@app.command()
@handled
def publish(config: ConfigOpt = Path("shipline.yml"), ref: RefOpt = None,
            only: Annotated[list[str] | None, typer.Option("--only", help="Only this service (repeatable).")] = None,
            rebuild: RebuildOpt = False, build_cache: CacheOpt = None) -> None:
    """Build, test and push images without deploying (for CI build jobs)."""
    from . import pipeline

    ctx = context(config)
    pipeline.publish_only(ctx, pipeline.make_trigger(ctx, ref), set(only) if only else None, rebuild=rebuild,
                          build_cache=build_cache.value if build_cache else None)


@app.command()
@handled
def plan(config: ConfigOpt = Path("shipline.yml"), ref: RefOpt = None, rebuild: RebuildOpt = False,
         build_cache: CacheOpt = None) -> None:
    """Print what `deploy` would do (which images are reused or built, and why), touching nothing."""
    from . import pipeline

    ctx = context(config)
    plan = pipeline.preview(ctx, pipeline.make_trigger(ctx, ref), rebuild=rebuild,
                            build_cache=build_cache.value if build_cache else None)
    console().print(plan.render())


@app.command()
@handled
def rollback(release: Annotated[int | None, typer.Argument(help="Release number (default: the one before the current).")] = None,
             config: ConfigOpt = Path("shipline.yml")) -> None:
    """Redeploy an earlier release's images and configuration."""
    from . import pipeline

    ctx = context(config)
    number = pipeline.rollback(ctx, release)
    console().print(f"rolled back: release {number} is live")


@app.command()
@handled
def releases(config: ConfigOpt = Path("shipline.yml"), as_json: JsonOpt = False,
             limit: Annotated[int, typer.Option(help="How many, newest first.")] = 20) -> None:
    """Release history, newest first."""
    from rich.table import Table

    from .config import load_project
    from .history import History

    project = load_project(config, lenient=True)  # history needs no hosts: tolerate unset ${VAR}s
    rows = History(project.state_dir / "history.db").recent(limit)
    if as_json:
        print(json.dumps([r.as_dict() for r in rows], indent=2))
        return
    table = Table("#", "commit", "status", "source", "by", "started (UTC)", "took", "reason")
    for r in rows:
        took = f"{sum(r.stages.values()):.1f}s" if r.stages else ""
        reason = r.reason.splitlines()[0] if r.reason else ""
        table.add_row(str(r.number), r.short_sha, r.status, r.source, r.actor, r.started_at[:16].replace("T", " "),
                      took, reason[:70] + ("..." if len(reason) > 70 else ""))
    console().print(table)


@app.command()
@handled
def status(config: ConfigOpt = Path("shipline.yml"), as_json: JsonOpt = False) -> None:
    """The live release and, per host, each service's container state."""
    ctx = context(config)
    current = ctx.history.current()
    hosts: list[dict[str, Any]] = []
    for index, host in enumerate(ctx.project.config.hosts):
        entry: dict[str, Any] = {"address": host.address}
        try:
            ex = ctx.connect(index, host)
            try:
                layout = ctx.project.config.layout()
                raw = ex.read(layout.current_file)
                entry["release"] = int(raw) if raw and raw.strip().isdigit() else None
                res = ex.run(["docker", "compose", "--project-name", ctx.project.config.app, "ps", "--all", "--format", "json"])
                entry["services"] = _parse_ps(res.output) if res.ok else []
            finally:
                ex.close()
        except ShiplineError as exc:
            entry["error"] = exc.message
        hosts.append(entry)
    data = {"app": ctx.project.config.app, "current": current.as_dict() if current else None, "hosts": hosts}
    if as_json:
        print(json.dumps(data, indent=2))
        return
    out = console()
    if current:
        out.print(f"{data['app']}: release {current.number} ({current.short_sha}, {current.ref}) deployed {current.finished_at}")
    else:
        out.print(f"{data['app']}: no successful release yet")
    for h in hosts:
        out.print(f"  {h['address']}: " + (h.get("error") or f"release {h.get('release')}"))
        for s in h.get("services", []):
            out.print(f"    {s['service']:<12} {s['state']:<10} {s['health'] or '':<10} {s['image']}")


def _parse_ps(output: str) -> list[dict[str, str]]:
    """`docker compose ps --format json` prints one JSON object per line (or one array, on older versions)."""
    items: list[Any] = []
    for line in output.splitlines():
        line = line.strip()
        if line.startswith("["):
            items += json.loads(line)
        elif line.startswith("{"):
            items.append(json.loads(line))
    return [{"service": i.get("Service", ""), "state": i.get("State", ""), "health": i.get("Health", ""),
             "image": i.get("Image", "")} for i in items]


@app.command()
@handled
def serve(config: Annotated[Path, typer.Option("--config", "-c", help="Path of serve.yml.")] = Path("serve.yml"),
          listen: Annotated[str | None, typer.Option("--listen", help="HOST:PORT (default: serve.yml's listen).")] = None) -> None:
    """Run the deploy server: webhooks, `git push`, a run queue and a dashboard (docs/serve.md)."""
    from .server.main import run_server
    run_server(config, listen)


@app.command()
@handled
def keyscan(address: Annotated[str, typer.Argument(help="user@host[:port]")]) -> None:
    """Print a server's host key line for `host_key:` (check its fingerprint on the server first)."""
    from .config import ADDRESS_RE
    from .executors.ssh import scan_host_key

    m = ADDRESS_RE.match(address)
    if not m:
        raise ShiplineError(f"{address!r} is not an SSH address; write it as user@host or user@host:port")
    try:
        key = scan_host_key(m.group("host").strip("[]"), int(m.group("port") or 22))
    except OSError as exc:
        raise ShiplineError(f"cannot reach {address}: {exc}") from None
    errors().print(f"{address} offers {key.key_type} {key.fingerprint}; compare with "
                   f"`ssh-keygen -lf /etc/ssh/ssh_host_*_key.pub` on the server.")
    print(key.line)


@app.command()
@handled
def init(directory: Annotated[Path, typer.Argument(help="Project directory.")] = Path("."),
         force: Annotated[bool, typer.Option(help="Overwrite existing files.")] = False) -> None:
    """Write a starter shipline.yml and a GitHub Actions workflow that deploys with shipline."""
    from .init_cmd import write_starter
    for path in write_starter(directory, force=force):
        console().print(f"wrote {path}")


@lock_app.command("status")
@handled
def lock_status(config: ConfigOpt = Path("shipline.yml"), as_json: JsonOpt = False) -> None:
    """Who holds the deploy lock on each host."""
    from . import lock as locks

    ctx = context(config)
    layout = ctx.project.config.layout()
    result = []
    for index, host in enumerate(ctx.project.config.hosts):
        ex = ctx.connect(index, host)
        try:
            info = locks.read(ex, layout)
        finally:
            ex.close()
        result.append({"address": host.address, "lock": info.__dict__ if info else None})
        if not as_json:
            console().print(f"{host.address}: {info.describe() if info else 'unlocked'}")
    if as_json:
        print(json.dumps(result, indent=2))


@lock_app.command("release")
@handled
def lock_release(config: ConfigOpt = Path("shipline.yml")) -> None:
    """Break the deploy lock (only when its holder is known to be dead)."""
    from . import lock as locks

    ctx = context(config)
    layout = ctx.project.config.layout()
    for index, host in enumerate(ctx.project.config.hosts):
        ex = ctx.connect(index, host)
        try:
            locks.release(ex, layout)
        finally:
            ex.close()
        console().print(f"{host.address}: lock released")


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt  # a killed deploy unwinds like Ctrl-C: switch back, release the lock, record it


def main(argv: list[str] | None = None) -> int:
    """Entry point; returns the exit status so tests can call it in-process."""
    signal.signal(signal.SIGTERM, _interrupt)
    try:
        app(args=argv if argv is not None else sys.argv[1:], prog_name="shipline")
    except SystemExit as exc:  # typer exits with the command's status, or 2 for a usage error
        return exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
