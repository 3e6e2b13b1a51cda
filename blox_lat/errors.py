"""Typed exceptions shared by every subpackage.

Every error a user can cause derives from :class:`BloxLatError`; the CLI turns exactly these
into a one-line message and exit status 2. Anything else is a bug and keeps its traceback.
"""


class BloxLatError(Exception):
    """Base class: a problem the user can fix; the message says how."""


class InvalidArchError(BloxLatError, ValueError):
    """An architecture vector is malformed, out of range or describes an invalid stage."""


class UnknownModelError(BloxLatError, LookupError):
    """A model name (hash, index, vector, block string) does not name a Blox model."""


class SelectorError(BloxLatError, ValueError):
    """A model selector (``all``, ``0:100``, ``@file``, ``random:N``...) cannot be parsed."""
