"""python manage.py demo [--kb DIR] [--updates DIR] [--port N] [--telegram-port N]: the main job end to end
(see bots/demo.py)."""
from __future__ import annotations

import sys
from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from bots.demo import DEMO_DIR, run_demo


class Command(BaseCommand):
    help = "Run the end-to-end demo against the local Telegram emulator and print the bot's answers."

    def add_arguments(self, parser):
        parser.add_argument("--kb", default=str(DEMO_DIR / "kb"), help="Knowledge base folder.")
        parser.add_argument("--updates", default=str(DEMO_DIR / "updates"), help="Folder of Update JSON files.")
        parser.add_argument("--port", type=int, default=0, help="Web app port on 127.0.0.1 (default: a free one).")
        parser.add_argument("--telegram-port", type=int, default=0,
                            help="Telegram emulator port on 127.0.0.1 (default: a free one).")

    def handle(self, *args, kb: str, updates: str, port: int, telegram_port: int, **options):
        for name, value in (("KB", kb), ("UPDATES", updates)):
            if not value.strip():  # `make demo KB=` would otherwise index the current folder: the repository
                raise CommandError(f"{name} is empty: give a folder, or leave it unset for the demo's own")
        try:
            code = run_demo(kb=Path(kb), updates=Path(updates), out=self.stdout.write, port=port,
                            telegram_port=telegram_port)
        except (FileNotFoundError, ValueError) as exc:
            raise CommandError(str(exc)) from exc
        if code:
            sys.exit(code)
