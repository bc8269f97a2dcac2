"""What every ``gateway`` subcommand shares: exit codes, the refusal exception, the settings.

Exit codes: 0 success · 1 the operation failed (e.g. database unreachable) ·
2 bad usage, invalid input or a configuration the gateway refuses.
"""

from __future__ import annotations

import argparse
import importlib
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

# Nothing heavy at import time: ``gateway --help`` and the argument parser load only this
# module; a command's own modules are imported when it runs (``lazy_command``).
if TYPE_CHECKING:
    from sqlalchemy.exc import SQLAlchemyError

    from gateway.settings import Settings

__all__ = [
    "DATA_DIR_HELP",
    "EXIT_FAILED",
    "EXIT_OK",
    "EXIT_USAGE",
    "CommandError",
    "add_data_dir_option",
    "command_settings",
    "database_error",
    "lazy_command",
]

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2


class CommandError(Exception):
    def __init__(self, message: str, code: int = EXIT_FAILED) -> None:
        super().__init__(message)
        self.code = code


DATA_DIR_HELP = (
    "where the gateway keeps its data: the SQLite database (unless GATEWAY_DATABASE_URL), "
    "keys/ and, for the demo, demo.json (default GATEWAY_DATA_DIR, else var)"
)


def add_data_dir_option(parser: argparse.ArgumentParser, help_text: str = DATA_DIR_HELP) -> None:
    """``--data-dir`` after the command too (``gateway clients list --data-dir var/demo``)."""
    parser.add_argument("--data-dir", default=argparse.SUPPRESS, help=help_text)


def lazy_command(target: str) -> Callable[[argparse.Namespace], int]:
    """``module:function``, imported when the command runs, not when the parser is built."""
    module, _, name = target.partition(":")

    def run(args: argparse.Namespace) -> int:
        command: Callable[[argparse.Namespace], int] = getattr(
            importlib.import_module(module), name
        )
        return command(args)

    run.__qualname__ = run.__name__ = name
    return run


def command_settings(args: argparse.Namespace | None = None) -> Settings:
    """The settings ``serve`` reads (GATEWAY_* variables), with ``--data-dir`` over them."""
    from pydantic import ValidationError
    from pydantic_settings import SettingsError as PydanticSettingsError

    from gateway.settings import Settings

    overrides: dict[str, Any] = {}
    if args is not None and getattr(args, "data_dir", None):
        overrides["data_dir"] = Path(args.data_dir)
    try:
        return Settings(**overrides)
    except (ValidationError, PydanticSettingsError) as exc:
        raise CommandError(f"invalid GATEWAY_* settings:\n{exc}", EXIT_USAGE) from exc


def database_error(url: str, exc: SQLAlchemyError, doing: str) -> CommandError:
    """Say which database was used and what to run, never only the driver's words."""
    from sqlalchemy.engine import make_url

    where = make_url(url).render_as_string(hide_password=True)
    first_line = (str(getattr(exc, "orig", None) or exc).splitlines() or [type(exc).__name__])[0]
    if "no such table" in first_line or "does not exist" in first_line:
        return CommandError(
            f"cannot {doing}: the database {where} has no gateway tables "
            f"({first_line}).\n"
            "  If the gateway's data is elsewhere, say where: --data-dir DIR (or GATEWAY_DATA_DIR,"
            " or GATEWAY_DATABASE_URL); the demo's is `gateway --data-dir var/demo …`.\n"
            "  To make the tables in this database, run `gateway db upgrade` with the same "
            "settings."
        )
    return CommandError(f"cannot {doing}: database {where}: {first_line}")
