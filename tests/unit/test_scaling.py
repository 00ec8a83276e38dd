"""Planning grows linearly with the number of services: counted in executed lines, never timed."""

from __future__ import annotations

import re
import sys
from datetime import UTC, datetime
from pathlib import Path
from types import FrameType
from typing import Any

import pytest

from shipline import yamlload
from shipline.compose import load as compose_load
from shipline.plan import Trigger, compile_plan
from shipline.project import load_project

HOST_KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl"
TRIGGER = Trigger(ref="main", sha="a" * 40, short_sha="aaaaaaa")


def big_project(root: Path, n: int) -> Path:
    """n services in a dependency chain, each with ports, volumes, labels, variables and an env file."""
    root.mkdir(parents=True, exist_ok=True)
    lines = ["x-common: &common", "  restart: unless-stopped", "  labels: {team: web}", "services:"]
    for i in range(n):
        dep = f"    depends_on: {{s{i + 1}: {{condition: service_started}}}}\n" if i + 1 < n else ""
        lines.append(f"  s{i}:\n    <<: *common\n    image: registry.example/s{i}:${{TAG:-1}}\n"
                     f"    ports: ['{8000 + i}']\n    volumes: ['./conf/s{i % 10}.conf:/etc/s.conf:ro', './data/s{i}:/data']\n"
                     f"    environment: {{KEY: '${{SECRET_{i % 5}}}'}}\n    env_file: [app.env]\n" + dep)
    (root / "compose.yaml").write_text("\n".join(lines) + "\n")
    (root / "app.env").write_text("A=1\n")
    (root / "conf").mkdir(exist_ok=True)
    for i in range(10):
        (root / "conf" / f"s{i}.conf").write_text("x\n")
    (root / "shipline.yml").write_text(
        "app: big\ncompose: compose.yaml\nregistry: {url: 127.0.0.1:5000}\n"
        f"hosts: [{{address: deploy@203.0.113.10, host_key: '{HOST_KEY}'}}]\n"
        "secrets: [SECRET_0, SECRET_1, SECRET_2, SECRET_3, SECRET_4]\n")
    return root / "shipline.yml"


def plan_text(path: Path) -> str:
    return compile_plan(load_project(path, {}), TRIGGER, datetime(2026, 1, 1, tzinfo=UTC)).render()


def executed_lines(path: Path) -> int:
    """Python lines executed while loading, cross-checking, planning and printing the plan."""
    count = 0

    def trace(frame: FrameType, event: str, arg: Any) -> Any:
        nonlocal count
        if event == "line":
            count += 1
        return trace

    sys.settrace(trace)
    try:
        plan_text(path)
    finally:
        sys.settrace(None)
    return count


class CountingName(str):
    """A service name that counts how often it is hashed or compared: the work done per name in C code too
    (a membership test on a list, a set rebuilt in a loop), which executed lines do not show."""

    uses = 0

    def __hash__(self) -> int:
        CountingName.uses += 1
        return str.__hash__(self)

    def __eq__(self, other: object) -> bool:
        CountingName.uses += 1
        return str.__eq__(self, other)

    __ne__ = str.__ne__


def counting_names(value: Any) -> Any:
    if isinstance(value, str):
        return CountingName(value) if re.fullmatch(r"s\d+", value) else value
    if isinstance(value, dict):
        return {counting_names(k): counting_names(v) for k, v in value.items()}
    if isinstance(value, list):
        return [counting_names(v) for v in value]
    return value


def name_uses(path: Path, monkeypatch: pytest.MonkeyPatch) -> int:
    monkeypatch.setattr(compose_load, "load", lambda data: counting_names(yamlload.load(data)))
    CountingName.uses = 0
    plan_text(path)
    return CountingName.uses


# Linear work quadruples when the services do (plus a constant); quadratic work would grow 16 times.
LINEAR = 4.6


def test_plan_work_is_linear_in_services(tmp_path: Path) -> None:
    small = executed_lines(big_project(tmp_path / "small", 150))
    large = executed_lines(big_project(tmp_path / "large", 600))
    assert large < LINEAR * small, (small, large)


def test_uses_of_service_names_are_linear_in_services(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    small = name_uses(big_project(tmp_path / "small", 150), monkeypatch)
    large = name_uses(big_project(tmp_path / "large", 600), monkeypatch)
    assert small > 150 and large < LINEAR * small, (small, large)


def test_a_big_project_plans_every_service(tmp_path: Path) -> None:
    text = plan_text(big_project(tmp_path, 300))
    assert text.count("why: ") == 300
    assert text.count("data: services.s") == 300
    assert "conf/s9.conf (mode 0644)" in text and "app.env (mode 0600)" in text
