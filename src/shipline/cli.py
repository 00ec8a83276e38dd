"""The `shipline` command: parses options, builds a Context, calls the core. No deploy logic lives here."""

from __future__ import annotations

import functools
import json
import os
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
    from .cancel import Cancel
    from .executors.base import Executor
    from .plan import DeployPlan, HostTarget
    from .project import Project
    from .reporter import Reporter
    from .secrets import Masker

app = typer.Typer(add_completion=False, no_args_is_help=True, pretty_exceptions_enable=False,
                  help="From git push to production on servers you own.")
lock_app = typer.Typer(no_args_is_help=True, help="Inspect or release the deploy lock on the hosts.")
app.add_typer(lock_app, name="lock")
swarm_app = typer.Typer(no_args_is_help=True, help="Docker Swarm on the configured hosts.")
app.add_typer(swarm_app, name="swarm")

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
VerboseOpt = Annotated[bool, typer.Option("--verbose", "-v", help="Print every line of every build, test and deploy command.")]
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


def cancel(cli: typer.Context) -> Cancel:
    """This run's cancel flag: `main` hands it to the command as the context object (Ctrl-C and SIGTERM set it)."""
    from .cancel import Cancel

    return cli.obj if isinstance(cli.obj, Cancel) else Cancel()


def ssh_connector(masker: Masker, stop: Cancel) -> pipeline.Connect:
    from .executors.ssh import SSHExecutor

    def connect(index: int, target: HostTarget) -> Executor:
        host = target.host
        return SSHExecutor(address=host.address, hostname=host.hostname, port=host.port, user=host.user,
                           key_path=Path(target.key_path) if target.key_path else None, pinned=host.host_key,
                           index=index, masker=masker, cancel=stop)
    return connect


def reporter(masker: Masker, verbose: bool = False) -> Reporter:
    """Live progress on a terminal; timestamped lines in CI (`CI` set, as every CI service does) and in logs."""
    from .reporter import Reporter

    out = console()
    live = out.is_terminal and not out.is_dumb_terminal and not os.environ.get("CI")
    return Reporter(out, masker, live=live, verbose=verbose)


def context(cli: typer.Context, verbose: bool = False) -> pipeline.Context:
    from . import pipeline
    from .secrets import Masker

    masker, stop = Masker(), cancel(cli)
    return pipeline.Context(env=os.environ, report=reporter(masker, verbose), connect=ssh_connector(masker, stop),
                            masker=masker, cancel=stop)


SourceOpt = Annotated[str, typer.Option("--source", help="What triggered the deploy (cli, git-push, webhook:github, ...).")]
ActorOpt = Annotated[str | None, typer.Option("--actor", help="Who triggered it (default: CI's actor or the OS user).")]


def committed_project(config: Path, ref: str | None) -> Project:
    """shipline.yml and the Compose files as the commit to deploy has them (the deploy branch's head by
    default): what is planned and deployed is what is committed, whatever the working tree holds."""
    from . import gitrepo
    from .errors import NotFound
    from .project import branch_hint, find_repo_root, load_project

    repo = find_repo_root(config.parent)
    try:
        sha = gitrepo.resolve(repo, ref or gitrepo.default_ref(repo, branch_hint(config)))
    except NotFound:
        load_project(config)  # a broken shipline.yml is the first thing to fix
        raise
    return load_project(config, commit=sha)


@app.command()
@handled
def deploy(cli: typer.Context, config: ConfigOpt = Path("shipline.yml"), ref: RefOpt = None,
           no_build: Annotated[bool, typer.Option("--no-build", help="Deploy images already published for this commit.")] = False,
           source: SourceOpt = "cli", actor: ActorOpt = None, rebuild: RebuildOpt = False, build_cache: CacheOpt = None,
           verbose: VerboseOpt = False) -> None:
    """Build, test, publish and deploy a commit (default: head of the deploy branch)."""
    from . import pipeline

    project = committed_project(config, ref)
    ctx = context(cli, verbose)
    plan, executors = pipeline.compile_connected(ctx, project, pipeline.make_trigger(project, ref, source, actor),
                                                 rebuild=rebuild, build_cache=build_cache.value if build_cache else None)
    pipeline.deploy(ctx, plan, build=not no_build, executors=executors)


@app.command()
@handled
def publish(cli: typer.Context, config: ConfigOpt = Path("shipline.yml"), ref: RefOpt = None,
            only: Annotated[list[str] | None, typer.Option("--only", help="Only this service (repeatable).")] = None,
            rebuild: RebuildOpt = False, build_cache: CacheOpt = None, verbose: VerboseOpt = False) -> None:
    """Build, test and push images without deploying (for CI build jobs)."""
    from . import pipeline

    project = committed_project(config, ref)
    ctx = context(cli, verbose)
    plan = pipeline.compile_for(ctx, project, pipeline.make_trigger(project, ref), rebuild=rebuild,
                                build_cache=build_cache.value if build_cache else None)
    pipeline.publish_only(ctx, plan, set(only) if only else None)


@app.command()
@handled
def plan(cli: typer.Context, config: ConfigOpt = Path("shipline.yml"), ref: RefOpt = None, rebuild: RebuildOpt = False,
         build_cache: CacheOpt = None) -> None:
    """Print what `deploy` would do for a commit, read from that commit (which images are reused or built, each
    service's strategy, and why), changing nothing: no file is written and no host is contacted."""
    from . import pipeline
    from .secrets import resolve_secrets

    project = committed_project(config, ref)
    ctx = context(cli)
    compiled = pipeline.compile_for(ctx, project, pipeline.make_trigger(project, ref), rebuild=rebuild,
                                    build_cache=build_cache.value if build_cache else None)
    # Values interpolated into args or env may be secrets: mask those that can be resolved (none is required).
    d = compiled.deploy
    for secret in resolve_secrets(d.secret_names, ctx.env, Path(d.secrets_file), ctx.report.warn, required=False).values():
        ctx.masker.add(secret)
    console().print(ctx.masker(compiled.render()))


@app.command()
@handled
def rollback(cli: typer.Context, release: Annotated[int | None, typer.Argument(help="Release number (default: the one before the current).")] = None,
             config: ConfigOpt = Path("shipline.yml"), verbose: VerboseOpt = False) -> None:
    """Redeploy an earlier release's images and configuration."""
    from . import pipeline
    from .plan import deploy_plan
    from .project import load_project

    number = pipeline.rollback(context(cli, verbose), deploy_plan(load_project(config)), release)
    console().print(f"rolled back: release {number} is live")


def read_hosts(cli: typer.Context, config: Path, each: Callable[[Executor, HostTarget], dict[str, Any]],
               dplan: DeployPlan | None = None) -> tuple[DeployPlan, list[dict[str, Any]]]:
    """`each` on every host, in parallel; a host that cannot be reached gets an `error` entry instead."""
    from concurrent.futures import ThreadPoolExecutor

    from .errors import HostKeyError
    from .plan import deploy_plan
    from .project import load_project
    from .secrets import Masker

    dplan = dplan or deploy_plan(load_project(config))
    connect = ssh_connector(Masker(), cancel(cli))

    def one(index: int, target: HostTarget) -> dict[str, Any]:
        entry: dict[str, Any] = {"address": target.host.address}
        try:
            ex = connect(index, target)
            try:
                entry |= each(ex, target)
            finally:
                ex.close()
        except ShiplineError as exc:
            if isinstance(exc, HostKeyError):
                raise
            entry["error"] = exc.message
        return entry

    with ThreadPoolExecutor(max_workers=max(1, len(dplan.targets))) as pool:
        return dplan, list(pool.map(one, range(len(dplan.targets)), dplan.targets))


def _ledger(ex: Executor, target: HostTarget) -> dict[str, Any]:
    from . import ledger

    return {"ledger": ledger.decode(ex.read(target.layout.ledger))}


@app.command()
@handled
def releases(cli: typer.Context, config: ConfigOpt = Path("shipline.yml"), as_json: JsonOpt = False,
             limit: Annotated[int, typer.Option(help="How many, newest first.")] = 20) -> None:
    """Release history, newest first, as the hosts record it (the same from any checkout)."""
    from rich.table import Table
    from rich.text import Text

    from . import ledger
    from .errors import ConnectionLost

    _, hosts = read_hosts(cli, config, _ledger)
    unreachable = [h for h in hosts if "error" in h]
    if len(unreachable) == len(hosts):
        raise ConnectionLost("no host could be reached: " + "; ".join(h["error"] for h in unreachable))
    rows = ledger.merge({h["address"]: h["ledger"] for h in hosts if "ledger" in h})[:limit]
    if as_json:
        print(json.dumps([r.as_dict() for r in rows], indent=2))
        return
    out = console()
    for h in unreachable:
        out.print(Text(f"warning: {h['address']}: {h['error']}", style="yellow"))
    table = Table("#", "commit", "status", "source", "by", "started (UTC)", "took", "reason")
    for m in rows:
        r = m.record
        took = f"{sum(r.stages.values()):.1f}s" if r.stages else ""
        reason = r.reason.splitlines()[0] if r.reason else ""
        table.add_row(str(r.number), r.short_sha, m.status, r.source, r.actor, r.started_at[:16].replace("T", " "),
                      took, reason[:70] + ("..." if len(reason) > 70 else ""))
    out.print(table)


def _status(ex: Executor, target: HostTarget, swarm: str | None = None) -> dict[str, Any]:
    """A host's live release and services; `swarm`: the host is a node of that app's swarm, not its manager."""
    from . import ledger
    from . import lock as locks
    from .swarm_commands import service_list
    from .swarm_stack import APP_LABEL

    held = {"lock": info.as_dict() if (info := locks.read(ex, target.layout)) and info.alive else None}
    if swarm == "node":
        return {"node": "its Traefik is switched with each release; the manager keeps the history", **held}
    records = ledger.decode(ex.read(target.layout.ledger))
    live = ledger.live(records)
    argv = service_list(APP_LABEL, target.layout.app) if swarm else ["docker", "compose", "--project-name", target.layout.app,
                                                            "ps", "--all", "--format", "json"]
    res = ex.run(argv)
    return {"release": live.as_dict() if live else None, "services": _parse_ps(res.output) if res.ok else [], **held}


@app.command()
@handled
def status(cli: typer.Context, config: ConfigOpt = Path("shipline.yml"), as_json: JsonOpt = False) -> None:
    """The live release on every host (and whether they differ), each service's state, and any deploy under way."""
    from rich.text import Text

    from . import lock as locks
    from .plan import deploy_plan
    from .project import load_project

    dplan = deploy_plan(load_project(config))
    manager = dplan.targets[0]

    def each(ex: Executor, target: HostTarget) -> dict[str, Any]:
        return _status(ex, target, None if not dplan.swarm else "manager" if target is manager else "node")

    _, hosts = read_hosts(cli, config, each, dplan)
    keepers = hosts[:len(dplan.ledger_targets())]  # a swarm's nodes keep no history of their own
    numbers = {h["release"]["number"] if h.get("release") else None for h in keepers if "error" not in h}
    data = {"app": dplan.app, "drift": len(numbers) > 1, "hosts": hosts}
    if as_json:
        print(json.dumps(data, indent=2))
        return
    out = console()
    if data["drift"]:
        out.print(Text("hosts run different releases (drift): the next deploy or rollback brings them together", style="yellow"))
    for h in hosts:
        rel = h.get("release")
        line = h.get("error") or h.get("node") or (
            f"release {rel['number']} ({rel['short_sha']}, {rel['ref']}) by {rel['actor']}, finished {rel['finished_at']}"
            if rel else "no successful release yet")
        out.print(f"{h['address']}: {line}")
        if h.get("lock"):
            out.print(f"  deploy under way: {locks.LockInfo(**h['lock']).describe()}")
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
    # Compose's fields, or `docker service ls`'s for a swarm (name, tasks running/desired, mode).
    return [{"service": i.get("Service", i.get("Name", "")), "state": i.get("State", i.get("Replicas", "")),
             "health": i.get("Health", i.get("Mode", "")), "image": i.get("Image", "")} for i in items]


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
         compose: Annotated[list[str] | None, typer.Option(
             "--compose", help="The production Compose file, relative to the directory; repeat for a base file "
                               "and its overrides (base first).")] = None,
         force: Annotated[bool, typer.Option(help="Overwrite shipline.yml and a workflow shipline wrote before.")] = False) -> None:
    """Write a starter shipline.yml and a GitHub Actions workflow that deploys with shipline."""
    from .init_cmd import write_starter

    def ask(question: str, options: list[str]) -> str:
        out = console()
        out.print(question)
        for i, option in enumerate(options, 1):
            out.print(f"  {i}. {option}")
        while True:
            choice = typer.prompt(f"Number (1-{len(options)})")
            if choice.strip().isdigit() and 1 <= int(choice) <= len(options):
                return options[int(choice) - 1]

    result = write_starter(directory, compose=compose or (), force=force, ask=ask if sys.stdin.isatty() else None)
    out = console()
    for path in result.written:
        out.print(f"wrote {path}")
    for note in result.notes:
        out.print(f"note: {note}")
    out.print("\nFound in the Compose file(s):")
    for line in result.summary:
        out.print(f"  - {line}")
    out.print("\nLeft for you to fill in before `shipline deploy`:")
    for line in ("export SHIPLINE_REGISTRY, SHIPLINE_HOST and SHIPLINE_HOST_KEY (or write them into shipline.yml)",
                 *result.todo, "check it with `shipline plan`"):
        out.print(f"  - {line}")


@lock_app.command("status")
@handled
def lock_status(cli: typer.Context, config: ConfigOpt = Path("shipline.yml"), as_json: JsonOpt = False) -> None:
    """Who holds the deploy lock on each host, and whether that holder is still alive."""
    from . import lock as locks

    def each(ex: Executor, target: HostTarget) -> dict[str, Any]:
        info = locks.read(ex, target.layout)
        return {"lock": info.as_dict() if info else None}

    _, hosts = read_hosts(cli, config, each)
    if as_json:
        print(json.dumps(hosts, indent=2))
        return
    for h in hosts:
        info = h.get("lock")
        console().print(f"{h['address']}: {h.get('error') or (locks.LockInfo(**info).describe() if info else 'unlocked')}")


@lock_app.command("release")
@handled
def lock_release(cli: typer.Context, config: ConfigOpt = Path("shipline.yml")) -> None:
    """Stop a lock holder whose deploy is known to be dead (a killed or disconnected deploy frees it by itself)."""
    from . import lock as locks

    def each(ex: Executor, target: HostTarget) -> dict[str, Any]:
        info = locks.break_lock(ex, target.layout)
        return {"stopped": info.as_dict() if info and info.alive else None}

    _, hosts = read_hosts(cli, config, each)
    for h in hosts:
        text = h.get("error") or ("lock released" if h.get("stopped") else "no live holder; nothing to release")
        console().print(f"{h['address']}: {text}")


@swarm_app.command("init")
@handled
def swarm_init(cli: typer.Context, config: ConfigOpt = Path("shipline.yml"),
               managers: Annotated[int, typer.Option(help="How many hosts, from the first, are managers (odd).")] = 0) -> None:
    """Make the hosts one swarm: the first initialises it (or leads it already), the others join."""
    from . import pipeline, swarm
    from .plan import deploy_plan
    from .project import load_project

    dplan = deploy_plan(load_project(config))
    ctx = context(cli)
    hosts = [t.host for t in dplan.targets]
    count = managers or (3 if len(hosts) >= 3 else 1)
    with pipeline.connected(ctx, dplan) as deployers, ctx.report.stage("swarm", f"{len(hosts)} host(s), {count} manager(s)"):
        executors = [d.ex for d in deployers]
        swarm.apply(executors, hosts, count, ctx.report, ctx.masker)
        nodes = executors[0].run(swarm.nodes_argv()).check("docker node ls").output
    console().print(nodes.rstrip())


def main(argv: list[str] | None = None) -> int:
    """Entry point; returns the exit status so tests can call it in-process.

    Ctrl-C and SIGTERM (a cancelled CI job) stop a deploy at its next safe point, where it unwinds: switch back,
    release the lock, record the release as interrupted (shipline.cancel).
    """
    from .cancel import Cancel

    stop = Cancel()
    try:
        with stop.on_signals():
            app(args=argv if argv is not None else sys.argv[1:], prog_name="shipline", obj=stop)
    except SystemExit as exc:  # typer exits with the command's status, or 2 for a usage error
        return exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
