"""Errors that reach the user as a message and an exit status, never as a traceback."""

from __future__ import annotations

from enum import IntEnum


class ExitCode(IntEnum):
    """Exit statuses of the `shipline` command; CI scripts may branch on them."""

    OK = 0
    FAILURE = 1
    USAGE = 2
    CONFIG = 3
    STEP_FAILED = 4
    DEPLOY_FAILED = 5
    HOST_KEY = 6
    LOCKED = 7
    NOT_FOUND = 8
    HOST_UNREACHABLE = 9


class ShiplineError(Exception):
    """An expected failure: printed as its message, mapped to an exit status."""

    exit_code: ExitCode = ExitCode.FAILURE

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class ConfigError(ShiplineError):
    """shipline.yml (or a file it names) is wrong; the message names file, key and fix."""

    exit_code = ExitCode.CONFIG

    def __init__(self, problems: list[str]) -> None:
        super().__init__("\n\n".join(problems))
        self.problems = problems


class StepFailed(ShiplineError):
    """A build, test or push step exited non-zero; nothing after it runs."""

    exit_code = ExitCode.STEP_FAILED

    def __init__(self, message: str, returncode: int = 1, output: str = "") -> None:
        super().__init__(message)
        self.returncode = returncode
        self.output = output


class DeployFailed(ShiplineError):
    """A deploy to a host failed; the previous release was restored where possible."""

    exit_code = ExitCode.DEPLOY_FAILED


class HostKeyError(ShiplineError):
    """The server's SSH host key is unknown or differs from the pinned one."""

    exit_code = ExitCode.HOST_KEY


class LockedError(ShiplineError):
    """Another deploy holds the host's deploy lock."""

    exit_code = ExitCode.LOCKED


class NotFound(ShiplineError):
    """A release, ref or file the user named does not exist."""

    exit_code = ExitCode.NOT_FOUND


class ConnectionLost(ShiplineError):
    """The SSH connection to a host dropped (or cannot be made again) while shipline needed it."""

    exit_code = ExitCode.HOST_UNREACHABLE
