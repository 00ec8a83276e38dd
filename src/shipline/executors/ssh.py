"""Runs commands on a host over SSH (paramiko), after checking its host key against the pin."""

from __future__ import annotations

import base64
import shlex
import socket
from collections.abc import Sequence
from pathlib import Path

import paramiko

from ..errors import DeployFailed, HostKeyError
from ..hostkeys import PublicKey, changed_key_message, matches, unknown_key_message
from ..secrets import Masker
from .base import CommandResult, LineSink, collect


class _PinnedKeyPolicy(paramiko.MissingHostKeyPolicy):
    """Accepts exactly the pinned key; anything else is refused with a message that says how to pin."""

    def __init__(self, address: str, pinned: str | None, index: int) -> None:
        self.address, self.pinned, self.index = address, pinned, index

    def missing_host_key(self, client: paramiko.SSHClient, hostname: str, key: paramiko.PKey) -> None:
        offered = PublicKey(key.get_name(), key.get_base64())
        if self.pinned is None:
            raise HostKeyError(unknown_key_message(self.address, offered, self.index))
        if not matches(self.pinned, offered):
            raise HostKeyError(changed_key_message(self.address, self.pinned, offered, self.index))


def _known_name(hostname: str, port: int) -> str:
    return hostname if port == 22 else f"[{hostname}]:{port}"


class SSHExecutor:
    def __init__(
        self,
        *,
        address: str,
        hostname: str,
        port: int,
        user: str,
        key_path: Path | None,
        pinned: str | None,
        index: int = 0,
        masker: Masker | None = None,
        connect_timeout: float = 15,
    ) -> None:
        self.name = address
        self._mask = masker or Masker()
        self._client = paramiko.SSHClient()
        if pinned and not pinned.startswith("SHA256:"):
            # A known key makes paramiko negotiate that key type and raise BadHostKeyException on mismatch.
            pub = PublicKey.parse(pinned)
            self._client.get_host_keys().add(
                _known_name(hostname, port), pub.key_type, paramiko.PKey.from_type_string(pub.key_type, _b64(pub.blob_b64))
            )
        self._client.set_missing_host_key_policy(_PinnedKeyPolicy(address, pinned, index))
        try:
            self._client.connect(
                hostname,
                port=port,
                username=user,
                key_filename=str(key_path) if key_path else None,
                look_for_keys=key_path is None,
                allow_agent=key_path is None,
                timeout=connect_timeout,
                banner_timeout=connect_timeout,
            )
        except paramiko.BadHostKeyException as exc:
            offered = PublicKey(exc.key.get_name(), exc.key.get_base64())
            raise HostKeyError(changed_key_message(address, pinned or "", offered, index)) from None
        except paramiko.AuthenticationException as exc:
            raise DeployFailed(f"SSH login to {address} failed: {exc}. Check hosts[{index}].ssh_key and that its public key is in ~{user}/.ssh/authorized_keys there.") from None
        except (TimeoutError, OSError, paramiko.SSHException) as exc:
            raise DeployFailed(f"Cannot connect to {address}: {exc}.") from None
        self._sftp: paramiko.SFTPClient | None = None

    def run(
        self,
        argv: Sequence[str],
        *,
        stdin: bytes | None = None,
        on_line: LineSink | None = None,
        cwd: str | None = None,
    ) -> CommandResult:
        command = shlex.join(argv)
        if cwd:
            command = f"cd {shlex.quote(cwd)} && {command}"
        transport = self._client.get_transport()
        assert transport is not None
        chan = transport.open_session()
        chan.set_combine_stderr(True)
        chan.exec_command(command)
        if stdin is not None:
            chan.sendall(stdin)
        chan.shutdown_write()
        output = collect(chan.makefile("rb"), self._mask, on_line)
        returncode = chan.recv_exit_status()
        chan.close()
        return CommandResult(tuple(argv), returncode, output)

    def put(self, path: str, data: bytes, mode: int = 0o644) -> None:
        if self._sftp is None:
            self._sftp = self._client.open_sftp()
        with self._sftp.open(path, "wb") as f:
            f.chmod(mode)  # before any byte is written, so a secret is never readable by others
            f.write(data)

    def read(self, path: str) -> bytes | None:
        if self._sftp is None:
            self._sftp = self._client.open_sftp()
        try:
            with self._sftp.open(path, "rb") as f:
                return f.read()
        except FileNotFoundError:
            return None

    def open_tcp(self, host: str, port: int) -> paramiko.Channel:
        transport = self._client.get_transport()
        assert transport is not None
        try:
            chan = transport.open_channel("direct-tcpip", (host, port), ("127.0.0.1", 0), timeout=10)
        except paramiko.ChannelException as exc:
            raise OSError(f"{self.name}: cannot reach {host}:{port} through SSH: {exc}") from None
        chan.settimeout(10)
        return chan

    def close(self) -> None:
        if self._sftp is not None:
            self._sftp.close()
        self._client.close()


def _b64(text: str) -> bytes:
    return base64.b64decode(text)


def scan_host_key(hostname: str, port: int, timeout: float = 10) -> PublicKey:
    """The key a server offers, for `shipline keyscan` (trust on first use, done deliberately)."""
    sock = socket.create_connection((hostname, port), timeout=timeout)
    transport = paramiko.Transport(sock)
    try:
        transport.start_client(timeout=timeout)
        key = transport.get_remote_server_key()
        return PublicKey(key.get_name(), key.get_base64())
    finally:
        transport.close()
