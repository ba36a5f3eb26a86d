"""User-facing errors.

Every mistake a user can make (a typo in params.yaml, a folder that does not exist, an S3 prefix
with nothing under it) raises a subclass of :class:`SynthmedError` whose message is one line that
names the file or field and the reason. The CLI prints that line and exits with status 2 instead
of a traceback. Bugs in synthmed itself stay ordinary exceptions, so they keep their traceback.
"""

from __future__ import annotations


class SynthmedError(Exception):
    """A user mistake or an unusable input, explained in one line."""


class ConfigError(SynthmedError):
    """params.yaml (or an override) does not match the configuration schema."""


class DataError(SynthmedError):
    """A data source cannot be read at all (missing folder, empty S3 prefix, no images)."""


class OutputError(SynthmedError):
    """An output location cannot be written: read-only, full, or not a folder."""


class ValidationFailed(SynthmedError):
    """More rows failed validation than the configured threshold allows."""
