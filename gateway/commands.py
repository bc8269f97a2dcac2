"""What every ``gateway`` subcommand shares: exit codes, the refusal exception, the settings.

Exit codes: 0 success · 1 the operation failed (e.g. database unreachable) ·
2 bad usage, invalid input or a configuration the gateway refuses.
"""

from __future__ import annotations

from pydantic import ValidationError
from pydantic_settings import SettingsError as PydanticSettingsError

from gateway.settings import Settings

__all__ = ["EXIT_FAILED", "EXIT_OK", "EXIT_USAGE", "CommandError", "command_settings"]

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2


class CommandError(Exception):
    def __init__(self, message: str, code: int = EXIT_FAILED) -> None:
        super().__init__(message)
        self.code = code


def command_settings() -> Settings:
    try:
        return Settings()
    except (ValidationError, PydanticSettingsError) as exc:
        raise CommandError(f"invalid GATEWAY_* settings:\n{exc}", EXIT_USAGE) from exc
