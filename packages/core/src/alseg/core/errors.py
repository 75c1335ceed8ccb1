"""User-facing error types of alseg.

Every error a user can fix (bad configuration, bad data, a plugin that breaks the contract) is an
:class:`AlsegError`. The command-line tools print its message without a traceback and exit with
status 2. Messages follow one style: name the thing, the constraint and the offending value, and
list the valid options where there is a short list, e.g.
``Unknown strategy 'entorpy'. Available: bald, coreset, entropy.``
"""


class AlsegError(Exception):
    """Base class of all errors that a user can fix."""


class ConfigError(AlsegError):
    """A configuration value, option or name is invalid."""


class DataError(AlsegError):
    """Input data on disk or in memory is missing, malformed or inconsistent."""


class PluginError(AlsegError):
    """A model, data module or strategy breaks the alseg contract."""
