"""Errors as the one line a user sees (the CLI's `error: ...`, the service's `{"detail": ...}`)."""

from __future__ import annotations


def one_line(error: BaseException) -> str:
    """An exception's message on one line; OSErrors as 'PATH: reason'."""
    if isinstance(error, OSError) and error.strerror and error.filename is not None:
        message = f"{error.filename}: {error.strerror.lower()}"
    else:
        message = str(error) or type(error).__name__
    lines = [line.strip() for line in message.splitlines() if line.strip()]
    return "; ".join(lines) or type(error).__name__
