"""User-facing errors.

Every problem with something a user handed us (a file, a flag, a checkpoint) is raised as a
:class:`SmacrlError`. Its message is one line that names the source (usually a file) and the field
at fault; the CLI prints it and exits with status 2 instead of showing a traceback.
"""

from __future__ import annotations


class SmacrlError(Exception):
    """A one-line error about user input: ``<source>: <field>: <problem>``."""

    exit_code = 2

    def __init__(self, source: object, field: str, problem: str):
        self.source = str(source)
        self.field = field
        self.problem = " ".join(str(problem).split())  # keep it on one line
        super().__init__(f"{self.source}: {self.field}: {self.problem}")


class CheckpointError(SmacrlError):
    """A checkpoint file is missing, corrupted, or does not fit the env/dataset."""


class DatasetError(SmacrlError):
    """A dataset file is missing, malformed, or does not fit the task."""


class ConfigError(SmacrlError):
    """A configuration value or CLI flag is invalid."""


class DivergenceError(SmacrlError):
    """A run produced a non-finite loss or parameter and stopped; its last good checkpoint stays."""

    exit_code = 3
