"""Executors run argv lists somewhere (this machine, a host over SSH) and stream their output."""

from .base import CommandResult, Executor, LineSink
from .local import LocalExecutor

__all__ = ["CommandResult", "Executor", "LineSink", "LocalExecutor"]
