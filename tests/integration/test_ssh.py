"""SSH to the test sshd with pinned host keys: known_hosts lines, several pins during a rotation, wrong types."""

from __future__ import annotations

import subprocess
import sys
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import paramiko
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from shipline.config import Host
from shipline.errors import HostKeyError
from shipline.executors.ssh import SSHExecutor

from .stack import read_testenv

pytestmark = pytest.mark.integration


def connect(host_key: str | list[str]) -> SSHExecutor:
    env = read_testenv()
    host = Host(address=env["SHIPLINE_TEST_SSH_ADDRESS"], host_key=host_key)  # validated as shipline.yml is
    return SSHExecutor(address=host.address, hostname=host.hostname, port=host.port, user=host.user,
                       key_path=Path(env["SHIPLINE_SSH_KEY"]), pinned=host.host_key)


def keyscan(*flags: str) -> str:
    host = Host(address=read_testenv()["SHIPLINE_TEST_SSH_ADDRESS"])
    out = subprocess.run(["ssh-keyscan", *flags, "-t", "ed25519", "-p", str(host.port), host.hostname],
                         capture_output=True, text=True, check=True).stdout
    return next(line for line in out.splitlines() if line and not line.startswith("#"))


def other_ed25519() -> str:
    return Ed25519PrivateKey.generate().public_key().public_bytes(Encoding.OpenSSH, PublicFormat.OpenSSH).decode()


@pytest.mark.parametrize("flags", [(), ("-H",)], ids=["known_hosts", "hashed"])
def test_a_line_from_ssh_keyscan_pins_the_server(flags: tuple[str, ...]) -> None:
    line = keyscan(*flags)
    assert line.startswith("[127.0.0.1]:" if not flags else "|1|")
    ex = connect(line + " copied from known_hosts")
    try:
        assert ex.run(["echo", "pinned"]).output == "pinned\n"
    finally:
        ex.close()


def test_during_a_rotation_old_and_new_keys_are_both_accepted() -> None:
    real = read_testenv()["SHIPLINE_HOST_KEY"]
    for pins in ([other_ed25519(), real], [real, other_ed25519()], f"{other_ed25519()}\n{real}\n"):
        ex = connect(pins)
        try:
            assert ex.run(["true"]).ok
        finally:
            ex.close()


def test_keys_the_server_does_not_hold_are_refused() -> None:
    with pytest.raises(HostKeyError, match="does not match the pinned one"):
        connect([other_ed25519(), other_ed25519()])
    ecdsa = paramiko.ECDSAKey.generate()
    with pytest.raises(HostKeyError, match="offers no host key of the pinned type"):
        connect(f"{ecdsa.get_name()} {ecdsa.get_base64()}")


def test_one_connection_uploads_and_reads_from_many_threads() -> None:
    """Services of a wave write their route files in parallel threads through one connection's SFTP session;
    without one request at a time, a thread's answer goes to another thread and a put waits forever."""
    ex = connect(read_testenv()["SHIPLINE_HOST_KEY"])
    home = ex.query(["pwd"]).strip()
    directory = f"{home}/shipline-sftp-threads-{uuid.uuid4().hex[:8]}"
    ex.run(["mkdir", "-p", directory]).check("mkdir")

    def roundtrip(i: int) -> bytes | None:
        data = f"file {i}\n".encode() * (i + 1) * 500
        ex.put(f"{directory}/f{i}", data, mode=0o600)
        return ex.read(f"{directory}/f{i}")

    pool = ThreadPoolExecutor(max_workers=8)
    try:
        results = list(pool.map(roundtrip, range(32), timeout=30))  # a lost answer: TimeoutError, not a hang
        assert results == [f"file {i}\n".encode() * (i + 1) * 500 for i in range(32)]
    finally:
        pool.shutdown(wait=False, cancel_futures=True)
        ex.run(["rm", "-rf", directory])
        ex.close()  # ends a put still waiting


def test_a_refused_tunnel_is_an_error_and_not_a_line_on_stderr() -> None:
    """paramiko logs a refused channel at ERROR; without a handler Python would print it on stderr for every
    retry (dozens of lines while a proxy API is unreachable). In a fresh interpreter, as the CLI runs."""
    env = read_testenv()
    script = (
        "import sys\n"
        "from pathlib import Path\n"
        "from shipline.config import Host\n"
        "from shipline.executors.ssh import SSHExecutor\n"
        f"host = Host(address={env['SHIPLINE_TEST_SSH_ADDRESS']!r}, host_key={env['SHIPLINE_HOST_KEY']!r})\n"
        "ex = SSHExecutor(address=host.address, hostname=host.hostname, port=host.port, user=host.user,\n"
        f"                 key_path=Path({env['SHIPLINE_SSH_KEY']!r}), pinned=host.host_key)\n"
        "try:\n"
        "    ex.open_tcp('127.0.0.1', 1)\n"
        "except OSError as exc:\n"
        "    print(exc)\n"
        "ex.close()\n"
    )
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)
    assert "cannot reach 127.0.0.1:1 through SSH" in proc.stdout, proc.stdout + proc.stderr
    assert proc.stderr == "", proc.stderr


def test_appends_from_two_connections_are_never_interleaved() -> None:
    """The ledger is appended to by whoever holds a host's lock and, when it finishes, by each deploy: records
    written at the same time by two connections each arrive whole, at the end of the file."""
    key = read_testenv()["SHIPLINE_HOST_KEY"]
    first, second = connect(key), connect(key)
    path = f"{first.query(['pwd']).strip()}/shipline-append-{uuid.uuid4().hex[:8]}.jsonl"
    records = {ex: [f'{{"by": {n}, "i": {i}, "pad": "{"x" * (i * 97 % 3000)}"}}\n'.encode() for i in range(60)]
               for n, ex in enumerate((first, second))}
    try:
        with ThreadPoolExecutor(max_workers=2) as pool:
            list(pool.map(lambda ex: [ex.append(path, r) for r in records[ex]], records, timeout=60))
        lines = (first.read(path) or b"").splitlines(keepends=True)
        assert sorted(lines) == sorted(r for rs in records.values() for r in rs)
        for rs in records.values():  # each connection's records in the order it wrote them
            assert [line for line in lines if line in rs] == rs
    finally:
        first.run(["rm", "-f", path])
        first.close()
        second.close()


def test_a_directory_is_listed_without_running_a_command() -> None:
    ex = connect(read_testenv()["SHIPLINE_HOST_KEY"])
    directory = f"{ex.query(['pwd']).strip()}/shipline-listdir-{uuid.uuid4().hex[:8]}"
    try:
        assert ex.listdir(directory) is None
        ex.run(["mkdir", "-p", f"{directory}/7", f"{directory}/12"]).check("mkdir")
        ex.put(f"{directory}/7/release.json", b"{}")
        assert sorted(ex.listdir(directory) or []) == ["12", "7"]
        assert ex.listdir(f"{directory}/7") == ["release.json"]
    finally:
        ex.run(["rm", "-rf", directory])
        ex.close()
