"""`manage.py fake_video_api --port 8765`: serve the fake OpenAI Videos API in the foreground."""

from __future__ import annotations

from django.core.management.base import BaseCommand, CommandError, CommandParser

from rendering.fake_api import FakeConfig, FakeVideoServer


class Command(BaseCommand):
    help = "Serve a fake OpenAI Videos API (POST/GET /v1/videos ...) for tests, demos and benchmarks."

    def add_arguments(self, parser: CommandParser) -> None:
        defaults = FakeConfig()
        parser.add_argument("--host", default="127.0.0.1")
        parser.add_argument("--port", type=int, default=8765)
        parser.add_argument("--api-key", default=defaults.api_key, help="accept only this bearer key")
        parser.add_argument("--latency", type=float, default=defaults.latency, help="seconds per clip")
        parser.add_argument("--progress-steps", type=int, default=defaults.progress_steps)
        parser.add_argument("--poll-after-ms", type=int, default=defaults.poll_after_ms)
        parser.add_argument("--failure-rate", type=float, default=defaults.failure_rate)
        parser.add_argument("--moderation-word", default=defaults.moderation_word)
        parser.add_argument(
            "--rate-limit-burst", type=int, default=0, help="answer the next N creates with 429"
        )
        parser.add_argument(
            "--rate-limit-every", type=int, default=0, help="answer every Nth create with 429"
        )
        parser.add_argument("--retry-after", type=float, default=defaults.retry_after)
        parser.add_argument("--expire-after", type=float, default=defaults.expire_after)
        parser.add_argument("--max-concurrent", type=int, default=0)
        parser.add_argument("--allowed-seconds", default=",".join(defaults.allowed_seconds))
        parser.add_argument("--fps", type=int, default=defaults.fps)
        parser.add_argument("--seed", type=int, default=defaults.seed)
        parser.add_argument(
            "--webhook-url", default="", help="POST signed video.completed/failed events here"
        )
        parser.add_argument("--webhook-secret", default="", help="whsec_... secret to sign them with")
        parser.add_argument("--verbose", action="store_true")

    def handle(self, *args, **options) -> None:
        if not 0 <= options["failure_rate"] <= 1:
            raise CommandError("--failure-rate must be between 0 and 1")
        if options["latency"] < 0:
            raise CommandError("--latency must not be negative")
        config = FakeConfig(
            api_key=options["api_key"],
            latency=options["latency"],
            progress_steps=options["progress_steps"],
            poll_after_ms=options["poll_after_ms"],
            failure_rate=options["failure_rate"],
            moderation_word=options["moderation_word"],
            rate_limit_burst=options["rate_limit_burst"],
            rate_limit_every=options["rate_limit_every"],
            retry_after=options["retry_after"],
            expire_after=options["expire_after"],
            max_concurrent=options["max_concurrent"],
            allowed_seconds=tuple(s.strip() for s in options["allowed_seconds"].split(",") if s.strip()),
            fps=options["fps"],
            seed=options["seed"],
            webhook_url=options["webhook_url"],
            webhook_secret=options["webhook_secret"],
        )
        try:
            server = FakeVideoServer(
                config, host=options["host"], port=options["port"], verbose=options["verbose"]
            )
        except OSError as exc:
            raise CommandError(f"cannot listen on {options['host']}:{options['port']}: {exc}") from None
        self.stdout.write(f"fake video API at {server.url} (Ctrl-C to stop)")
        self.stdout.flush()
        try:
            server.serve_forever()
        except KeyboardInterrupt:
            pass
        finally:
            server.stop()
