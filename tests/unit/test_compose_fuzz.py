"""No input makes shipline crash: random Compose and shipline.yml documents give problems, never a traceback."""

from __future__ import annotations

import contextlib
import random
from pathlib import Path
from typing import Any

import pytest
import yaml

from shipline.compose import ComposeCycle, load_project, release_inputs
from shipline.errors import ConfigError
from shipline.project import load_project as load_shipline_project
from shipline.traefik_labels import find_traefik

from .trees import MemoryTree

KEYS = ["image", "build", "ports", "volumes", "environment", "labels", "depends_on", "env_file", "secrets", "configs",
        "command", "healthcheck", "deploy", "profiles", "extends", "networks", "container_name", "network_mode",
        "restart", "expose", "scale"]
STRINGS = ["", "x", "./a", "../../b", "/abs", "~/h", "${A}", "${A:-./d}", "${", "$$", "a:b", "80:80", "1-2:3",
           "[::1]:80:80", "a=b", "=", "service_completed_successfully", "host", "./a:/b:ro", "traefik:v3",
           "--providers.docker=true", "traefik.http.routers.r.rule", "é", "\t", "0"]


def value(rng: random.Random, depth: int = 0) -> Any:
    kind = rng.randrange(8 if depth < 3 else 5)
    if kind == 0:
        return None
    if kind == 1:
        return rng.choice([True, False, 0, -1, 8080, 1.5])
    if kind in (2, 3, 4):
        return rng.choice(STRINGS)
    if kind in (5, 6):
        return [value(rng, depth + 1) for _ in range(rng.randrange(4))]
    return {rng.choice(STRINGS + KEYS + ["source", "target", "file", "service", "condition", "context", "args"]):
            value(rng, depth + 1) for _ in range(rng.randrange(4))}


def document(rng: random.Random) -> Any:
    if rng.random() < 0.05:
        return value(rng)
    services: Any = {rng.choice(["web", "db", "a b", "x;y", "traefik", "1"]):
                     {k: value(rng) for k in rng.sample(KEYS, rng.randrange(len(KEYS)))} if rng.random() < 0.95 else value(rng)
                     for _ in range(rng.randrange(1, 5))}
    doc: dict[str, Any] = {"services": services if rng.random() < 0.95 else value(rng)}
    for key in ("volumes", "secrets", "configs", "include", "networks"):
        if rng.random() < 0.3:
            doc[key] = value(rng)
    return doc


@pytest.mark.parametrize("seed", range(40))
def test_random_compose_files_never_crash(seed: int) -> None:
    rng = random.Random(seed)
    for _ in range(50):
        files = {"compose.yaml": yaml.safe_dump(document(rng)), "compose.prod.yaml": yaml.safe_dump(document(rng)),
                 "a": "x", "d/b": "y"}
        tree = MemoryTree(files)
        project = load_project(["compose.yaml", "compose.prod.yaml"], tree, {"A": "./x"}.get)
        active = project.active(["x"])
        release_inputs(project, tree, active)
        find_traefik(project, active)
        project.jobs(active)
        for svc in project.services.values():
            svc.singleton_reason()
        with contextlib.suppress(ComposeCycle):
            project.default_order()
        for problem in project.problems:
            assert "\n" not in str(problem)


@pytest.mark.parametrize("seed", range(10))
def test_random_projects_give_config_errors_only(tmp_path: Path, seed: int) -> None:
    rng = random.Random(seed)
    for i in range(20):
        root = tmp_path / str(i)
        root.mkdir()
        (root / "compose.yaml").write_text(yaml.safe_dump(document(rng)))
        config = {"app": "shop", "compose": rng.choice(["compose.yaml", ["compose.yaml"], [], 5, "../x.yml"]),
                  "registry": {"url": "r.example"}, "hosts": [{"address": "d@h"}],
                  "build": {rng.choice(["web", "db", "nope"]): {"context": rng.choice([".", "..", "/", "web"])}},
                  "deploy": {"profiles": value(rng), "services": {"web": {"strategy": rng.choice(["zero-downtime", "job", "x"])}}},
                  "secrets": value(rng), "env": value(rng)}
        (root / "shipline.yml").write_text(yaml.safe_dump(config))
        try:
            load_shipline_project(root / "shipline.yml", {})
        except ConfigError as exc:
            assert all("\n" not in p for p in exc.problems)
