"""The CLI's one error handler: a user-fixable error (ValueError, which ConfigError is) prints
`error: <message>` (the message names the file, the key or the path, and the fix) and exits 2."""

from __future__ import annotations

import functools

import typer


def user_errors(command):
    """Decorate a typer command so a ValueError from its body is `error: ...` + exit code 2."""
    @functools.wraps(command)
    def wrapper(*args, **kwargs):
        try:
            return command(*args, **kwargs)
        except ValueError as exc:
            typer.echo(f"error: {exc}", err=True)
            raise typer.Exit(2) from None

    return wrapper
