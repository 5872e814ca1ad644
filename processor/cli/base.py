"""What every command shares: settings loaded once, lazily, and one console for output."""

from __future__ import annotations

from pathlib import Path

import click
from rich.console import Console

from processor.config import Settings, load_settings


class Context:
    def __init__(self, config_file: Path | None) -> None:
        self._config_file = config_file
        self._settings: Settings | None = None
        self.out = Console(highlight=False, soft_wrap=True)
        self.err = Console(stderr=True, highlight=False, soft_wrap=True)

    @property
    def settings(self) -> Settings:
        if self._settings is None:
            self._settings = load_settings(self._config_file)
        return self._settings


pass_context = click.make_pass_decorator(Context)
