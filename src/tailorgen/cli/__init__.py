"""The `tailorgen` command. Thin: every subcommand parses arguments and calls the library.

Errors: a library error (bad input, a missing or existing file, an unknown id, a refused
option: ``ValueError`` and its subclasses such as ``data.DataError``, and ``OSError``) ends the
command with one line, ``error: <what to fix>``, and exit code 2, as click's own usage errors
do. Anything else is a bug: one line naming it, exit code 1. ``tailorgen --debug COMMAND`` or
``TAILORGEN_DEBUG=1`` shows the traceback instead. Ctrl-C ends with ``error: interrupted`` and
exit code 130, SIGTERM during a write with ``error: terminated by SIGTERM`` and 143; the
library's writers remove their temporary files on the way out.
"""

from __future__ import annotations

import signal

import click

from tailorgen import __version__
from tailorgen.common.atomic import Terminated
from tailorgen.common.messages import one_line  # noqa: F401 - re-exported: commands import it from here

DEBUG_ENV = "TAILORGEN_DEBUG"
# Exceptions that mean "the input or the environment is not as the command needs": the user can fix them.
USER_ERRORS = (ValueError, OSError)


class CommandError(click.ClickException):
    """One line on stderr, ``error: MESSAGE``, and exit code 2 (or ``exit_code``)."""

    exit_code = 2

    def __init__(self, message: str, exit_code: int | None = None):
        super().__init__(message)
        if exit_code is not None:
            self.exit_code = exit_code

    def show(self, file=None) -> None:
        click.echo(f"error: {self.format_message()}", file=file, err=file is None)


class CommandExit(SystemExit):
    """How a command that printed ``error: ...`` exits: the status code, with the message as ``str()``.

    Raised after the line is printed, so the shell sees only that line and the code; callers that
    run the command in-process (click's CliRunner) find the message in ``result.exception``.
    """

    def __init__(self, message: str, code: int):
        super().__init__(code)
        self.message = message

    def __str__(self) -> str:
        return self.message


def _exit(error: CommandError) -> CommandExit:
    error.show()
    return CommandExit(error.format_message(), error.exit_code)


class _Main(click.Group):
    """The top-level group: turns exceptions from any subcommand into one line (see the module doc)."""

    def invoke(self, ctx: click.Context):
        debug = bool(ctx.params.get("debug"))
        try:
            return super().invoke(ctx)
        except CommandError as e:
            raise _exit(e) from e.__cause__
        except (click.ClickException, click.exceptions.Exit, click.Abort):
            raise
        except KeyboardInterrupt:
            raise _exit(CommandError("interrupted", exit_code=130)) from None
        except Terminated as e:
            raise _exit(CommandError(f"terminated by {signal.Signals(e.signum).name}", exit_code=e.code)) from None
        except USER_ERRORS as e:
            if debug:
                raise
            raise _exit(CommandError(one_line(e))) from e
        except Exception as e:
            if debug:
                raise
            message = (
                f"unexpected {type(e).__name__}: {one_line(e)} (a bug in tailorgen; "
                f"rerun with --debug or {DEBUG_ENV}=1 for the traceback)"
            )
            raise _exit(CommandError(message, exit_code=1)) from e


@click.group(cls=_Main, context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(__version__, prog_name="tailorgen")
@click.option(
    "--debug",
    is_flag=True,
    envvar=DEBUG_ENV,
    help=f"Show the full traceback of an error instead of one line (also: {DEBUG_ENV}=1).",
)
def main(debug: bool) -> None:
    """Personalized multimodal generation for recommender systems and e-commerce.

    \b
    Start with the simulated shop:
      tailorgen world build --items 2000 --users 300 --seed 0 --out runs/shop
      tailorgen data stats runs/shop
    or import a public dataset:
      tailorgen data import movielens-100k path/to/ml-100k --out runs/ml100k

    An error ends a command with one line, `error: ...`, and exit code 2.
    """


def _register() -> None:
    # Subcommand modules attach themselves to `main` on import.
    from tailorgen.cli import (  # noqa: F401
        bench,
        data,
        demo,
        encode,
        forget,
        generate,
        gnr,
        scale,
        search,
        serve,
        study,
        train,
        unimp,
        world,
    )


_register()
