"""Exceptions raised to the Rust worker, which maps them to gRPC statuses, and `shown`, the one
way a client's value appears in their messages."""

# Most bytes of a client value shown in a message (wpsmesh_proto::text::MAX_SHOWN).
MAX_SHOWN = 200


def shown(text: str, limit: int = MAX_SHOWN) -> str:
    """`text` cut to at most `limit` UTF-8 bytes (never inside a character) followed by
    `… (N bytes)` when it was longer; `text` itself otherwise."""
    data = text.encode("utf-8", "replace")
    if len(data) <= limit:
        return text
    return f"{data[:limit].decode('utf-8', 'ignore')}… ({len(data)} bytes)"


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
