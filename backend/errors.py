"""Refusals of the VM manager.

The back-end's domain is an EC2-style cloud, so each refusal names the EC2 error code it
corresponds to; the front-end only adds the HTTP envelope.
"""


class BackendError(Exception):
    """A request the VM manager refuses, with the EC2 error code and a message for people."""

    def __init__(self, code, message):
        super().__init__(message)
        self.code = code
        self.message = message

    def __repr__(self):
        return f'{type(self).__name__}({self.code!r}, {self.message!r})'


class NotFound(BackendError):
    """The named resource does not exist, or is not visible to the caller."""


class Conflict(BackendError):
    """The request clashes with existing state (duplicate name, wrong state, in use)."""


class InvalidValue(BackendError):
    """A value the caller gave cannot be used."""

    def __init__(self, message, code='InvalidParameterValue'):
        super().__init__(code, message)


class CapacityError(BackendError):
    """Not enough room on the hosts for what was asked."""
