#!/usr/bin/env python3
"""How long `shipline plan` takes as a Compose file grows, next to just parsing that file's YAML.

For N services (each with ports, volumes, labels, variables, an env file and a `depends_on` on the next, a
chain as long as N), it times loading and cross-checking shipline.yml + the Compose file, compiling the plan
and printing it, and, in the same run, `yaml.load` of the Compose file alone with libyaml and the garbage collector
paused (the floor: any planner has to read the file). Linear planning keeps the ratio flat as N grows; the issue's bound is
10,000 services in under 5 s.

    .venv/bin/python bench/plan_scale.py [N ...]      (default: 1000 10000 40000)

Needs no Docker, registry or network.
"""

from __future__ import annotations

import gc
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime
from functools import partial
from pathlib import Path

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tests.unit.test_scaling builds the project

from shipline.plan import Trigger, compile_plan
from shipline.project import load_project
from tests.unit.test_scaling import big_project

TRIGGER = Trigger(ref="main", sha="a" * 40, short_sha="aaaaaaa")


def best(fn: Callable[[], object], rounds: int = 3) -> float:
    times = []
    for _ in range(rounds):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def plan(path: Path) -> None:
    compile_plan(load_project(path, {}), TRIGGER, datetime.now(UTC)).render()


def parse_only(text: bytes) -> None:
    """libyaml's parse of the file, with the garbage collector paused as shipline's loader pauses it."""
    gc.disable()
    try:
        yaml.load(text, Loader=yaml.CSafeLoader)
    finally:
        gc.enable()


def main(sizes: list[int]) -> None:
    print(f"{'services':>9} {'plan (s)':>9} {'yaml only (s)':>14} {'ratio':>6} {'per service (ms)':>17}")
    for n in sizes:
        with tempfile.TemporaryDirectory() as tmp:
            path = big_project(Path(tmp), n)
            text = (Path(tmp) / "compose.yaml").read_bytes()
            rounds = 3 if n <= 10_000 else 1
            floor = best(partial(parse_only, text), rounds)
            took = best(partial(plan, path), rounds)
            print(f"{n:>9} {took:>9.2f} {floor:>14.2f} {took / floor:>6.1f} {1000 * took / n:>17.3f}")


if __name__ == "__main__":
    main([int(a) for a in sys.argv[1:]] or [1000, 10_000, 40_000])
