"""What shipline reads from the user's Compose files: services, what they need on the host, rollout order."""

from .files import DataDir, ReleaseInputs, RepoFile, release_inputs
from .load import load_project
from .model import ComposeCycle, ComposeProject, ComposeService, Problem, VarUse

__all__ = ["ComposeCycle", "ComposeProject", "ComposeService", "DataDir", "Problem", "ReleaseInputs", "RepoFile",
           "VarUse", "load_project", "release_inputs"]
