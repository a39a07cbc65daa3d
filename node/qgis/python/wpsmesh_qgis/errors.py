"""Exceptions raised to the Rust worker, which maps them to gRPC statuses."""


class ParameterError(Exception):
    """A client input, output request or process id is invalid (INVALID_ARGUMENT / NOT_FOUND).

    `name` is the offending parameter, "Identifier" for the process id, or "" when QGIS rejects a
    combination of inputs without naming one.
    """

    def __init__(self, name: str, message: str):
        super().__init__(f"{name}: {message}" if name else message)
        self.name = name
        self.message = message


class ExecutionError(Exception):
    """The algorithm ran and failed; the message is QGIS's."""


class Cancelled(ExecutionError):
    """The job was cancelled while it ran."""
