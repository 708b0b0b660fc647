"""`manage.py providers`: the model catalogue as this server sees it (the same rows as GET /api/providers/):
each provider, whether it can render here (else the variables to set), and per model its clip lengths,
sizes, price per second and what it takes."""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from jobs.catalogue import provider_rows


def _seconds(values: list[float] | None) -> str:
    return "any" if values is None else "/".join(f"{v:g}" for v in values)


def _prices(prices: dict[str, Decimal]) -> str:
    return ", ".join(f"{key} ${value.normalize():f}" for key, value in prices.items()) or "-"


class Command(BaseCommand):
    help = "List the video providers and models this server offers, with lengths, sizes, prices and inputs."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--json", action="store_true", help="print the rows as JSON")
        parser.add_argument("--provider", default=None, help="only this provider")

    def handle(self, *args: Any, **options: Any) -> None:
        rows = provider_rows()
        if options["provider"]:
            rows = [r for r in rows if options["provider"] in {r["name"], *r["aliases"]}]
            if not rows:
                known = ", ".join(r["name"] for r in provider_rows())
                raise CommandError(
                    f"--provider: unknown provider {options['provider']!r}; choose one of: {known}"
                )
        if options["json"]:
            self.stdout.write(json.dumps(rows, indent=2, default=str))
            return
        for row in rows:
            state = (
                "available"
                if row["available"]
                else f"unavailable: set {' and '.join(row['missing_settings'])}"
            )
            aliases = f" (also: {', '.join(row['aliases'])})" if row["aliases"] else ""
            self.stdout.write(self.style.MIGRATE_HEADING(f"{row['name']}{aliases}: {row['label']} [{state}]"))
            for model in row["models"]:
                default = " (default)" if model["id"] == row["default_model"] else ""
                sizes = "; ".join(f"{res}: {', '.join(s)}" for res, s in model["sizes"].items()) or "any WxH"
                self.stdout.write(f"  {model['id']}{default}")
                self.stdout.write(f"    lengths {_seconds(model['clip_seconds'])} s; sizes {sizes}")
                for res, lengths in model["seconds_by_resolution"].items():
                    self.stdout.write(f"    at {res} only {_seconds(lengths)} s")
                self.stdout.write(f"    price per second: {_prices(model['price_per_second'])}")
                self.stdout.write(f"    takes: {', '.join(model['features']) or 'a prompt'}")
                if model["source"]:
                    self.stdout.write(f"    source ({model['as_of'] or 'undated'}): {model['source']}")
