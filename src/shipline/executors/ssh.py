"""Runs commands on a host over SSH (paramiko), after checking its host key against the pin.

A dropped connection surfaces as ConnectionLost (never a paramiko traceback); the caller decides whether to
`reconnect()` and what to redo, because whatever the old connection held (the deploy lock) is gone with it.
"""

from __future__ import annotations

import logging
import posixpath
import shlex
import socket
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

import paramiko
from paramiko.sftp import CMD_HANDLE, CMD_OPEN, SFTP_FLAG_CREATE, SFTP_FLAG_TRUNC, SFTP_FLAG_WRITE
from paramiko.ssh_exception import IncompatiblePeer

from ..cancel import Cancel
from ..errors import ConnectionLost, DeployFailed, HostKeyError
from ..hostkeys import PublicKey, changed_key_message, matches, unknown_key_message, unpinned_algorithms
from ..secrets import Masker
from .base import CommandResult, LineSink, collect, ended, query_failed

POLL = 0.25  # reads wait at most this long before looking at the cancel flag

# paramiko logs refused tunnels ("Secsh channel 12 open FAILED") at ERROR; with no handler configured, Python
# prints them on stderr. shipline reports those failures itself, as one paragraph, so its logs go nowhere.
logging.getLogger("paramiko").addHandler(logging.NullHandler())


class _PinnedKeyPolicy(paramiko.MissingHostKeyPolicy):
    """Accepts exactly the pinned keys; anything else is refused with a message that says how to pin.

    No key is put in paramiko's own store (it keeps one key per type, so a rotation to a new key of the
    same type could not be pinned): every offered key comes here.
    """

    def __init__(self, address: str, pins: list[str], index: int) -> None:
        self.address, self.pins, self.index = address, pins, index

    def missing_host_key(self, client: paramiko.SSHClient, hostname: str, key: paramiko.PKey) -> None:
        offered = PublicKey(key.get_name(), key.get_base64())
        if not self.pins:
            raise HostKeyError(unknown_key_message(self.address, offered, self.index))
        if not any(matches(pin, offered) for pin in self.pins):
            raise HostKeyError(changed_key_message(self.address, self.pins, offered, self.index))


def _chunks(chan: paramiko.Channel, cancel: Cancel, *, stderr: bool = False) -> Iterator[bytes]:
    """A channel's output as it comes, in short waits: cancelling is checked here, between paramiko calls,
    never by an exception raised inside one."""
    chan.settimeout(POLL)
    recv = chan.recv_stderr if stderr else chan.recv
    while True:
        cancel.check()
        try:
            data = recv(65536)
        except TimeoutError:
            continue
        if not data:
            return
        yield data


def end_input(chan: paramiko.Channel) -> None:
    """EOF on a command's stdin, sent while the channel's lock is held.

    paramiko's `shutdown_write()` marks the EOF sent under the lock but sends it after releasing it. A command that
    has ended by then (likely under load, with several commands at once on one connection) has its channel closed
    by paramiko's transport thread in between, so the EOF goes out after our CLOSE, naming a channel the server has
    freed: OpenSSH then drops the whole connection ("ieof packet referred to nonexistent channel"). Holding the
    lock keeps the EOF before the CLOSE.
    """
    with chan.lock:
        message = chan._send_eof()  # type: ignore[attr-defined]  # None if sent already, or the channel closed
        if message is not None and chan.transport is not None:
            chan.transport._send_user_message(message)  # type: ignore[attr-defined]


def _lines(chunks: Iterator[bytes]) -> Iterator[bytes]:
    rest = b""
    for chunk in chunks:
        *lines, rest = (rest + chunk).split(b"\n")
        yield from (line + b"\n" for line in lines)
    if rest:
        yield rest


class SSHHeld:
    """A remote command on its own channel; it sees EOF on stdin when we close it or the connection ends."""

    def __init__(self, chan: paramiko.Channel, cancel: Cancel) -> None:
        self._chan, self._cancel = chan, cancel
        self._buffer = b""

    def readline(self, timeout: float) -> str | None:
        deadline = time.monotonic() + timeout
        while b"\n" not in self._buffer:
            self._cancel.check()
            if time.monotonic() >= deadline:
                return None
            self._chan.settimeout(POLL)
            try:
                data = self._chan.recv(4096)
            except TimeoutError:
                continue
            except (OSError, EOFError, paramiko.SSHException):
                return None
            if not data:
                return None
            self._buffer += data
        line, _, self._buffer = self._buffer.partition(b"\n")
        return line.decode("utf-8", "replace")

    def alive(self) -> bool:
        transport = self._chan.get_transport()
        return not self._chan.closed and not self._chan.exit_status_ready() and transport is not None and transport.is_active()

    def close(self) -> int | None:
        try:
            end_input(self._chan)
            deadline = time.monotonic() + 5
            while not self._chan.exit_status_ready() and time.monotonic() < deadline and self.alive():
                time.sleep(0.02)
            return self._chan.recv_exit_status() if self._chan.exit_status_ready() else None
        except (OSError, EOFError, paramiko.SSHException):
            return None
        finally:
            self._chan.close()


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
        cancel: Cancel | None = None,
    ) -> None:
        self.name = address
        self._mask = masker or Masker()
        self._cancel = cancel or Cancel()
        self._hostname, self._port, self._user, self._key_path = hostname, port, user, key_path
        self._pinned, self._index, self._timeout = pinned, index, connect_timeout
        self._sftp: paramiko.SFTPClient | None = None
        # One SFTP session per connection, one request at a time: paramiko's SFTPClient is not thread-safe (a
        # thread waiting for its answer drops another thread's, which then waits forever). Services rolled out in
        # parallel threads write their route files through it.
        self._sftp_lock = threading.Lock()
        self._client = self._connect()

    def _connect(self) -> paramiko.SSHClient:
        client = paramiko.SSHClient()
        pins = self._pinned.splitlines() if self._pinned else []  # config.Host.host_key: one pin per line
        client.set_missing_host_key_policy(_PinnedKeyPolicy(self.name, pins, self._index))
        disabled = unpinned_algorithms(pins)
        try:
            client.connect(
                self._hostname,
                port=self._port,
                username=self._user,
                key_filename=str(self._key_path) if self._key_path else None,
                look_for_keys=self._key_path is None,
                allow_agent=self._key_path is None,
                timeout=self._timeout,
                banner_timeout=self._timeout,
                auth_timeout=self._timeout,
                disabled_algorithms={"keys": disabled} if disabled else None,
            )
        except IncompatiblePeer as exc:
            if not disabled:
                raise ConnectionLost(f"Cannot connect to {self.name}: {exc}.") from None
            raise HostKeyError(
                f"Refusing to deploy to {self.name}: the server offers no host key of the pinned type(s) "
                f"({', '.join(sorted({PublicKey.parse(p).key_type for p in pins}))}). Run `shipline keyscan {self.name}`, "
                f"verify the key on the server and add it to hosts[{self._index}].host_key.") from None
        except paramiko.AuthenticationException as exc:
            raise DeployFailed(f"SSH login to {self.name} failed: {exc}. Check hosts[{self._index}].ssh_key and that its public key is in ~{self._user}/.ssh/authorized_keys there.") from None
        except (OSError, EOFError, paramiko.SSHException) as exc:
            raise ConnectionLost(f"Cannot connect to {self.name}: {exc or type(exc).__name__}.") from None
        transport = client.get_transport()
        assert transport is not None
        transport.set_keepalive(10)
        return client

    def _active(self) -> bool:
        transport = self._client.get_transport()
        return transport is not None and transport.is_active()

    def _transport(self) -> paramiko.Transport:
        transport = self._client.get_transport()
        if transport is None or not transport.is_active():
            raise ConnectionLost(f"the SSH connection to {self.name} has dropped")
        return transport

    @contextmanager
    def _guard(self, what: str) -> Iterator[None]:
        """Connection failures become ConnectionLost; a remote error on a live connection stays what it is."""
        try:
            yield
        except (OSError, EOFError, paramiko.SSHException) as exc:
            if self._active():
                raise
            raise ConnectionLost(f"the SSH connection to {self.name} dropped while it was {what} "
                                 f"({exc or type(exc).__name__})") from None

    def _open(self, argv: Sequence[str], cwd: str | None, combine: bool) -> paramiko.Channel:
        command = shlex.join(argv)
        if cwd:
            command = f"cd {shlex.quote(cwd)} && {command}"
        chan = self._transport().open_session()
        chan.set_combine_stderr(combine)
        chan.exec_command(command)
        return chan

    def _ended(self, chan: paramiko.Channel, argv: Sequence[str]) -> int:
        """The command's exit status; waits in short steps (cancellable) and stops waiting if the connection goes."""
        while not chan.exit_status_ready() and self._active():
            self._cancel.sleep(0.01)
        code = chan.recv_exit_status() if chan.exit_status_ready() else -1
        chan.close()
        if code == -1 and not self._active():  # no exit status: the connection went, not the command
            raise ConnectionLost(f"the SSH connection to {self.name} dropped while it was running {argv[0]}")
        return code

    def run(
        self,
        argv: Sequence[str],
        *,
        stdin: bytes | None = None,
        on_line: LineSink | None = None,
        cwd: str | None = None,
    ) -> CommandResult:
        with self._guard(f"running {argv[0]}"):
            chan = self._open(argv, cwd, combine=True)
            if stdin is not None:
                chan.sendall(stdin)
            end_input(chan)
            try:
                output = collect(_lines(_chunks(chan, self._cancel)), self._mask, on_line)
            except KeyboardInterrupt:
                chan.close()  # the command goes on on the host; what it leaves, the undo or the next deploy handles
                raise
            return CommandResult(tuple(argv), ended(on_line, self._ended(chan, argv)), output)

    def query(self, argv: Sequence[str], what: str | None = None) -> str:
        with self._guard(f"running {argv[0]}"):
            chan = self._open(argv, None, combine=False)
            end_input(chan)
            try:
                out = b"".join(_chunks(chan, self._cancel))
                err = b"".join(_chunks(chan, self._cancel, stderr=True))
            except KeyboardInterrupt:
                chan.close()
                raise
            code = self._ended(chan, argv)
        if code != 0:
            raise query_failed(argv, what, code, self._mask(err.decode("utf-8", "replace")))
        return bytes(out).decode("utf-8", "replace")

    def _sftp_client(self) -> paramiko.SFTPClient:
        if self._sftp is None:
            self._sftp = self._client.open_sftp()
        return self._sftp

    def put(self, path: str, data: bytes, mode: int = 0o644, tmp_dir: str | None = None) -> None:
        directory, name = posixpath.split(path)
        tmp = posixpath.join(tmp_dir or directory, f".{name}.shipline-tmp")
        with self._guard(f"uploading {path}"), self._sftp_lock:
            sftp = self._sftp_client()
            # OPEN carries the mode, so the file has it from creation on (paramiko's open() sends none).
            attrs = paramiko.SFTPAttributes()
            attrs.st_mode = mode
            kind, msg = sftp._request(CMD_OPEN,  # type: ignore[attr-defined]
                                       tmp, SFTP_FLAG_WRITE | SFTP_FLAG_CREATE | SFTP_FLAG_TRUNC, attrs)
            if kind != CMD_HANDLE:
                raise OSError(f"cannot create {tmp}")
            with paramiko.SFTPFile(sftp, msg.get_binary(), "wb") as f:
                f.chmod(mode)  # a file left by an interrupted upload keeps its old mode otherwise
                f.write(data)
            sftp.posix_rename(tmp, path)

    def append(self, path: str, data: bytes) -> None:
        """Through SFTP with O_APPEND (SSH_FXF_APPEND): each write lands at the end, never interleaved with another
        appender's, and costs no command on the host (a `cat >>` did: 0.09 s per ledger record)."""
        with self._guard(f"appending to {path}"), self._sftp_lock, self._sftp_client().open(path, "ab") as f:
            f.write(data)

    def read(self, path: str) -> bytes | None:
        with self._guard(f"reading {path}"), self._sftp_lock:
            try:
                with self._sftp_client().open(path, "rb") as f:
                    return bytes(f.read())
            except FileNotFoundError:
                return None

    def listdir(self, path: str) -> list[str] | None:
        with self._guard(f"listing {path}"), self._sftp_lock:
            try:
                return list(self._sftp_client().listdir(path))
            except FileNotFoundError:
                return None

    def hold(self, argv: Sequence[str]) -> SSHHeld:
        with self._guard(f"starting {argv[0]}"):
            return SSHHeld(self._open(argv, None, combine=True), self._cancel)

    def open_tcp(self, host: str, port: int) -> paramiko.Channel:
        with self._guard(f"opening a tunnel to {host}:{port}"):
            try:
                chan = self._transport().open_channel("direct-tcpip", (host, port), ("127.0.0.1", 0), timeout=10)
            except paramiko.ChannelException as exc:
                raise OSError(f"{self.name}: cannot reach {host}:{port} through SSH: {exc}") from None
        chan.settimeout(10)
        return chan

    def reconnect(self) -> None:
        self.close()
        self._client = self._connect()

    def close(self) -> None:
        with self._sftp_lock:
            try:
                if self._sftp is not None:
                    self._sftp.close()
            except (OSError, EOFError, paramiko.SSHException):
                pass
            self._sftp = None
        self._client.close()


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
