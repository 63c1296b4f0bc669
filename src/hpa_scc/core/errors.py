"""Exception types shared by every stage.

Every error a user can cause (bad files, bad rows, bad config) is an `HpaSccError`; the CLI
prints its message on one line and exits with status 2. Anything else is a bug.
"""

from __future__ import annotations


class HpaSccError(Exception):
    """Base class of errors caused by input the user supplied."""


class InputError(HpaSccError, ValueError):
    """An input file or value is missing, unreadable or malformed; the message names it."""


class ConfigError(HpaSccError, ValueError):
    """A configuration file or override is invalid; the message names the key."""


class SubmissionError(InputError):
    """A submission or solution CSV is malformed; the message names the row and problem."""


class BatchFailures(HpaSccError):
    """Some images of a batch could not be processed; every other image was done and saved.

    failures: [(image ID, one-line message naming the file and the problem)]; total: images in the batch.
    The CLI prints one line per failure, then `N of M images failed`, and exits with status 1.
    """

    def __init__(self, failures: list[tuple[str, str]], total: int):
        self.failures = list(failures)
        self.total = total
        super().__init__(f"{len(self.failures)} of {total} images failed")

    def lines(self) -> list[str]:
        """One line per failed image, then the summary line."""
        return [f"failed {image_id}: {message}" for image_id, message in self.failures] + [str(self)]


def describe(error: BaseException) -> str:
    """One line for a per-image failure: the message of an input error, else the exception's type and text."""
    text = str(error) if isinstance(error, HpaSccError) else f"{type(error).__name__}: {error}"
    return " ".join(text.split())
