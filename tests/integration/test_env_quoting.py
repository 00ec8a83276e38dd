"""The env file shipline writes, read back by the real `docker compose` (no engine needed for `config`)."""

import json
import subprocess
from pathlib import Path

import pytest

from shipline.release_files import env_file

pytestmark = pytest.mark.integration

VALUES = ["ab\\", "a\\b", "a'b", 'a"b', "a$b", "a${X}b", "a$$b", "tab\there", "new\nline", "back\\nslash", "ends'",
          "#hash", "sp ace ", " lead", "a\\'b", 'x\\"y', "\\$", "a`b", "é", "=eq=", "p$ss word"]


def test_compose_reads_back_every_value_unchanged(tmp_path: Path) -> None:
    env = {f"V{i}": v for i, v in enumerate(VALUES)}
    (tmp_path / "compose.yml").write_text(
        "services:\n  a:\n    image: busybox:1.35\n    environment:\n"
        + "".join(f"      {k}: ${{{k}}}\n" for k in env))
    (tmp_path / "release.env").write_text(env_file("quoting", "/srv/proxy", {}, env))
    resolved = subprocess.run(["docker", "compose", "--project-directory", str(tmp_path), "--env-file", str(tmp_path / "release.env"),
                               "--file", str(tmp_path / "compose.yml"), "config", "--format", "json"],
                              capture_output=True, text=True, check=True)
    got = json.loads(resolved.stdout)["services"]["a"]["environment"]
    # `config` prints a literal `$` as `$$` (escaped for a Compose file); undo that to compare values.
    assert {k: v.replace("$$", "$") for k, v in got.items()} == env
