"""Reuse instead of rebuild: images whose build inputs did not change get the new commit's tag, registry-side.

Before building, each service's build inputs are hashed from the commit (`inputs.py`) and the registry is asked
(one HEAD each, in parallel) for the tag `inputs-<hash>`, which only an image built and tested from exactly
those inputs carries. After the tests pass, reused images get the commit's short-SHA tag and freshly built
ones their `inputs-` tag, both by copying a manifest (`registry.py`): no layer moves.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING

from . import docker_commands as dc
from .errors import ConfigError, ShiplineError
from .inputs import INPUTS_LABEL, commit_inputs, definitions
from .plan import ImageSource, Plan, Trigger, image_sources
from .registry import Registry, split_image

if TYPE_CHECKING:
    from .executors.base import Executor
    from .project import Project
    from .reporter import Reporter
    from .secrets import Secret

OCI_REVISION = "org.opencontainers.image.revision"


def engine_platform(local: Executor) -> str:
    """The platform the local engine builds for (`linux/amd64`): an input of every image it builds."""
    res = local.run(dc.engine_platform())
    platform = res.output.strip().splitlines()[-1] if res.ok and res.output.strip() else ""
    if not res.ok or "/" not in platform:
        raise ShiplineError(f"cannot ask the Docker engine for its platform (`docker version`): {res.tail(3)}")
    return platform


def open_registry(project: Project, password: Secret | None) -> Registry:
    cfg = project.config.registry
    return Registry(cfg.url.split("/")[0], cfg.username, password)


def repository(image: str) -> str:
    """`host[:port]/path/name[:tag]` -> `path/name`, the repository in the registry's API."""
    name, colon, tag = image.rpartition(":")
    return split_image(name if colon and "/" not in tag else image)[1]


def decide(project: Project, trigger: Trigger, registry: Registry, platform: str, *,
           rebuild: bool = False) -> dict[str, ImageSource]:
    """Reuse or build for every built service; a registry that cannot answer means build (and say why)."""
    digests = {svc: i.digest for svc, i in
               commit_inputs(project.repo_root, trigger.sha, definitions(project), project.config.app, platform).items()}
    found: dict[str, bool | str] = {}
    if not rebuild and digests:
        def ask(svc: str) -> tuple[str, bool | str]:
            try:
                return svc, registry.exists(repository(project.config.image_name(svc)), f"inputs-{digests[svc]}")
            except ShiplineError as exc:
                return svc, exc.message

        with ThreadPoolExecutor(max_workers=min(8, len(digests))) as pool:
            found = dict(pool.map(ask, digests))
    return image_sources(digests, found, rebuild=rebuild)


def pushed_digest(push_output: str) -> str | None:
    """The manifest digest `docker push` reports (`<tag>: digest: sha256:... size: N`)."""
    found = re.findall(r"digest: (sha256:[0-9a-f]{64})", push_output)
    return found[-1] if found else None


def tag_reused(registry: Registry, plan: Plan, report: Reporter, platform: str, only: set[str] | None = None) -> None:
    """After the tests: reused images get this commit's tag (manifest copies). Nothing of theirs is pushed, so
    this runs beside the pushes of the built ones."""
    for src in plan.sources:
        if (only is not None and src.service not in only) or not src.inputs or not src.reuse:
            continue
        ref = plan.images[src.service]
        repo = repository(ref)
        manifest = registry.retag(repo, src.inputs_tag, ref.rsplit(":", 1)[1])
        labels = registry.labels(repo, manifest, platform)
        built_from = labels.get(OCI_REVISION, "")[:12] or "an earlier commit"
        report.info(f"{src.service}: not rebuilt: tagged {ref} from the image built from {built_from} "
                    f"(same build inputs, {manifest.digest[:19]}), no layer uploaded")
        if labels.get(INPUTS_LABEL) not in (None, src.inputs):
            report.warn(f"{src.service}: the image tagged {src.inputs_tag} says its inputs are "
                        f"{labels[INPUTS_LABEL][:12]}; it was tagged by something other than shipline")


def tag_built(registry: Registry, plan: Plan, pushed: Mapping[str, str], only: set[str] | None = None) -> None:
    """After the pushes: built images get their inputs tag (manifest copies), for the next commit to reuse.

    A built image is tagged by the digest this run pushed, not by its tag, which a concurrent run of the same
    commit may have moved to its own build in the meantime.
    """
    for src in plan.sources:
        if (only is not None and src.service not in only) or not src.inputs or src.reuse:
            continue
        ref = plan.images[src.service]
        registry.retag(repository(ref), pushed.get(src.service, ref.rsplit(":", 1)[1]), src.inputs_tag)
    if plan.build_cache == "inline":  # the cache travels inside the image: point the cache tag at the newest
        for b in plan.builds:
            if only is None or b.service in only:
                registry.retag(repository(b.ref), b.ref.rsplit(":", 1)[1], plan.cache_refs[b.service].rsplit(":", 1)[1])


def check_cache_builder(local: Executor, plan: Plan) -> None:
    """A registry cache export needs a builder other than BuildKit's `docker` driver: say so before building."""
    if plan.build_cache != "registry" or not plan.builds:
        return
    res = local.run(dc.builder_driver())
    driver = next((line.split(":", 1)[1].strip() for line in res.output.splitlines() if line.startswith("Driver:")), "")
    if driver == "docker":
        raise ConfigError([
            "build_cache.type: registry exports every stage's layers to the registry, which the current buildx "
            "builder (driver `docker`) cannot do. Create one that can (`docker buildx create --use`; on GitHub "
            "Actions, docker/setup-buildx-action), turn on Docker's containerd image store, or use `type: inline`, "
            "which works with any builder."])


def reused_note(sources: Mapping[str, ImageSource]) -> str:
    reused = sorted(svc for svc, s in sources.items() if s.reuse)
    return f"not rebuilt (same build inputs as an image in the registry): {', '.join(reused)}" if reused else ""
