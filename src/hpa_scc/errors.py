"""Exception types shared by every stage.

Every error a user can cause (bad files, bad rows, bad config) is an `HpaSccError`; the CLI
prints its message on one line and exits with status 2. Anything else is a bug.
"""


class HpaSccError(Exception):
    """Base class of errors caused by input the user supplied."""


class InputError(HpaSccError, ValueError):
    """An input file or value is missing, unreadable or malformed; the message names it."""


class ConfigError(HpaSccError, ValueError):
    """A configuration file or override is invalid; the message names the key."""


class SubmissionError(InputError):
    """A submission or solution CSV is malformed; the message names the row and problem."""
