"""Exception types raised by alcore."""


class AlcoreError(Exception):
    """Base class of every exception alcore raises on purpose."""


class InvalidInputError(AlcoreError, ValueError):
    """An argument has the wrong type, shape, dtype or values.

    The message names the argument, what was expected, what was received and how to fix it.
    It is also a ``ValueError``, so existing ``except ValueError`` handlers keep working.
    """
