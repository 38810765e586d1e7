"""The one base class of every error an operator can act on.

Wrappers and services raise subclasses whose message says what happened and what to do next; edges
(admin views, management commands, strix-setup, Celery tasks) catch :class:`OperatorError` alone and
show the message as it is, in one line. Anything else is a bug and keeps its traceback.
"""


class OperatorError(Exception):
    """An error whose message is meant for the operator, as it is."""
