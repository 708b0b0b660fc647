"""`manage.py serve_info --port 8000`: print where the workspace runs and how to log in.

On the embedded default it makes sure a `demo` user exists, with a random password kept beside the
SQLite file (DATA_DIR/demo-password, mode 0600) so that every `make serve` can print it again. Against a
production database it never creates anyone: it says how to make an account instead.
"""

from __future__ import annotations

import secrets

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandParser

DEMO_USERNAME = "demo"


class Command(BaseCommand):
    help = "Print the workspace URL and how to log in (creates a demo user on the embedded default)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--port", type=int, default=8000)
        parser.add_argument("--host", default="127.0.0.1")

    def handle(self, *args, **options) -> None:
        url = f"http://{options['host']}:{options['port']}/"
        self.stdout.write(self.style.SUCCESS(f"Workspace: {url}"))
        if not settings.EMBEDDED:
            self.stdout.write(
                "Log in with an existing account, or make one: python manage.py createsuperuser"
            )
            return
        password = self._demo_password()
        if password is None:
            self.stdout.write(
                f"Log in as: {DEMO_USERNAME} (its password was changed; reset it with "
                f"python manage.py changepassword {DEMO_USERNAME})"
            )
            return
        self.stdout.write(f"Log in as: {DEMO_USERNAME} / {password}")
        self.stdout.write(f"(the password is kept in {settings.DATA_DIR / 'demo-password'})")

    def _demo_password(self) -> str | None:
        """The demo user's password, creating both on first use; None if someone changed it since."""
        path = settings.DATA_DIR / "demo-password"
        user_model = get_user_model()
        user = user_model.objects.filter(username=DEMO_USERNAME).first()
        if user is not None and path.exists():
            password = path.read_text().strip()
            return password if user.check_password(password) else None
        password = secrets.token_urlsafe(12)
        if user is None:
            user = user_model(username=DEMO_USERNAME)
        user.set_password(password)
        user.save()
        settings.DATA_DIR.mkdir(parents=True, exist_ok=True)
        path.write_text(password + "\n")
        path.chmod(0o600)
        return password
