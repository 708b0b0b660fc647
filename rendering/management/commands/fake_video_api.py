"""`manage.py fake_video_api`: serve the providers' stand-ins in the foreground, for demos and benchmarks.

    manage.py fake_video_api                      # the OpenAI Videos fake on :8765 (as before)
    manage.py fake_video_api --protocol all       # Videos :8765, fal :8766, Vertex :8767
    manage.py fake_video_api --protocol fal,vertex --fal-port 0 --vertex-port 0 --state-dir var/fakes

For each stand-in it serves it prints one line of `NAME=value` settings, exactly what to set to point the
project at it (shell-quoted, so the line can prefix a command or follow `export`), and writes them all to
`<state-dir>/fake-video-api.env`. The fal and Vertex stand-ins speak HTTPS with a throwaway CA made at
start-up (rendering.fake_api.tls); its certificate goes to `<state-dir>/fake-ca.pem` and is printed as
SSL_CERT_FILE / REQUESTS_CA_BUNDLE. Those two replace the system's trust store for the process that sets
them, so a process that trusts the fakes reaches no real HTTPS service. The Vertex stand-in's service
account key goes to `<state-dir>/vertex-service-account.json` (GOOGLE_APPLICATION_CREDENTIALS).

Without --state-dir the files go to a fresh temporary directory that is removed on exit (Ctrl-C or
SIGTERM); a --state-dir given is kept, its files overwritten on the next start.
"""

from __future__ import annotations

import contextlib
import shlex
import shutil
import signal
import tempfile
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from rendering.fake_api import FakeConfig, FakeVideoServer
from rendering.fake_api.fal import FakeFalServer, FalFakeConfig
from rendering.fake_api.vertex import FakeVertexServer, VertexConfig

PROTOCOLS = ("videos", "fal", "vertex")
# The TLS stand-ins' certificates name only these hosts (rendering.fake_api.tls.DEFAULT_HOSTS).
TLS_HOSTS = ("127.0.0.1", "localhost")
ENV_FILE = "fake-video-api.env"
CA_FILE = "fake-ca.pem"
KEY_FILE = "vertex-service-account.json"
ANY_SORA_KEY = "sk-fake"  # what to print when the Videos fake accepts any bearer key


@dataclass
class Served:
    """One running stand-in: what it is, where, and the settings that point the project at it."""

    protocol: str
    title: str
    url: str
    server: Any
    env: dict[str, str] = field(default_factory=dict)


def parse_protocols(value: str) -> tuple[str, ...]:
    """`videos`, `fal`, `vertex`, `all` or a comma-separated list of them, in a fixed order."""
    names = [part.strip().lower() for part in value.split(",") if part.strip()]
    if not names:
        raise CommandError("--protocol: name at least one of videos, fal, vertex or all")
    for name in names:
        if name != "all" and name not in PROTOCOLS:
            raise CommandError(f"--protocol: unknown protocol {name!r}; choose videos, fal, vertex or all")
    if "all" in names:
        return PROTOCOLS
    return tuple(p for p in PROTOCOLS if p in names)


def env_line(env: dict[str, str]) -> str:
    return " ".join(f"{name}={shlex.quote(value)}" for name, value in env.items())


class Command(BaseCommand):
    help = (
        "Serve stand-ins of the providers' APIs (OpenAI Videos, fal's queue, Vertex AI Veo) for tests, "
        "demos and benchmarks, and print the settings that point the project at them."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        defaults = FakeConfig()
        fal = FalFakeConfig()
        vertex = VertexConfig()
        parser.add_argument(
            "--protocol",
            default="videos",
            help="videos, fal, vertex, all, or a comma-separated list (default: videos)",
        )
        parser.add_argument(
            "--host", default="127.0.0.1", help="the fal and Vertex fakes allow only 127.0.0.1 or localhost"
        )
        parser.add_argument("--port", type=int, default=8765, help="the Videos fake's port (0: any free one)")
        parser.add_argument(
            "--fal-port", type=int, default=8766, help="the fal fake's port (0: any free one)"
        )
        parser.add_argument(
            "--vertex-port", type=int, default=8767, help="the Vertex fake's port (0: any free one)"
        )
        parser.add_argument(
            "--state-dir",
            default="",
            help="where the CA, the service-account key and the env file go (default: a temporary "
            "directory removed on exit)",
        )
        parser.add_argument(
            "--latency",
            type=float,
            default=None,
            help=f"seconds per clip, for every fake (defaults: Videos {defaults.latency:g}, "
            f"fal {fal.latency:g}, Vertex {vertex.latency:g})",
        )
        parser.add_argument(
            "--moderation-word",
            default=defaults.moderation_word,
            help="a prompt containing it is refused (every fake)",
        )
        parser.add_argument(
            "--rate-limit-burst",
            type=int,
            default=0,
            help="answer the next N creates with 429 (every fake)",
        )
        parser.add_argument(
            "--retry-after",
            type=float,
            default=defaults.retry_after,
            help="seconds, sent with those 429s (Videos, fal)",
        )
        # The Videos fake.
        parser.add_argument("--api-key", default=defaults.api_key, help="accept only this bearer key")
        parser.add_argument("--progress-steps", type=int, default=defaults.progress_steps)
        parser.add_argument("--poll-after-ms", type=int, default=defaults.poll_after_ms)
        parser.add_argument("--failure-rate", type=float, default=defaults.failure_rate)
        parser.add_argument(
            "--rate-limit-every", type=int, default=0, help="answer every Nth create with 429 (Videos)"
        )
        parser.add_argument("--expire-after", type=float, default=defaults.expire_after)
        parser.add_argument("--max-concurrent", type=int, default=0)
        parser.add_argument("--allowed-seconds", default=",".join(defaults.allowed_seconds))
        parser.add_argument("--fps", type=int, default=defaults.fps, help="frames per second (Videos)")
        parser.add_argument("--seed", type=int, default=defaults.seed)
        parser.add_argument(
            "--webhook-url", default="", help="POST signed video.completed/failed events here (Videos)"
        )
        parser.add_argument("--webhook-secret", default="", help="whsec_... secret to sign them with")
        # The fal fake.
        parser.add_argument("--fal-key", default=fal.key, help="the one key accepted, as id:secret")
        parser.add_argument(
            "--fal-queue-latency", type=float, default=fal.queue_latency, help="seconds IN_QUEUE"
        )
        # The Vertex fake.
        parser.add_argument("--vertex-project", default="veo-test-project")
        parser.add_argument("--vertex-location", default="us-central1")
        parser.add_argument(
            "--vertex-output-gcs-uri",
            default="gs://fake-veo-output/renders",
            help="printed as VERTEX_OUTPUT_GCS_URI so clips come back through the GCS download path "
            "('' for inline bytes)",
        )
        parser.add_argument("--verbose", action="store_true")

    # --- checks -------------------------------------------------------------------------------------

    def _check(self, options: dict[str, Any], protocols: tuple[str, ...]) -> None:
        if not 0 <= options["failure_rate"] <= 1:
            raise CommandError("--failure-rate must be between 0 and 1")
        for name in ("latency", "fal_queue_latency", "retry_after", "expire_after"):
            if options[name] is not None and options[name] < 0:
                raise CommandError(f"--{name.replace('_', '-')} must not be negative")
        for name in ("rate_limit_burst", "rate_limit_every", "max_concurrent", "progress_steps", "fps"):
            if options[name] < 0:
                raise CommandError(f"--{name.replace('_', '-')} must not be negative")
        if options["fps"] == 0:
            raise CommandError("--fps must be positive")
        ports = {"videos": "port", "fal": "fal_port", "vertex": "vertex_port"}
        taken: dict[int, str] = {}
        for protocol in protocols:
            flag = ports[protocol]
            port = options[flag]
            if not 0 <= port <= 65535:
                raise CommandError(f"--{flag.replace('_', '-')} must be between 0 and 65535, got {port}")
            if port and port in taken:
                raise CommandError(
                    f"--{flag.replace('_', '-')} {port} is the same as --{taken[port].replace('_', '-')}: "
                    "each protocol needs its own port"
                )
            taken[port] = flag
        if {"fal", "vertex"} & set(protocols) and options["host"] not in TLS_HOSTS:
            raise CommandError(
                f"--host {options['host']}: the fal and Vertex fakes serve TLS certificates for "
                f"{' and '.join(TLS_HOSTS)} only"
            )
        if not options["fal_key"] or ":" not in options["fal_key"]:
            raise CommandError("--fal-key must look like <key id>:<key secret>")
        for name in ("vertex_project", "vertex_location"):
            value = options[name]
            if not value or "/" in value or any(c.isspace() for c in value):
                raise CommandError(
                    f"--{name.replace('_', '-')} must be a non-empty name without '/' or spaces"
                )
        gcs = options["vertex_output_gcs_uri"]
        if gcs and (not gcs.startswith("gs://") or len(gcs) <= len("gs://")):
            raise CommandError("--vertex-output-gcs-uri must be a gs://bucket/prefix URI, or '' for none")

    def _state_dir(self, value: str) -> tuple[Path, bool]:
        """(directory, whether we made it and remove it on exit)."""
        if not value:
            return Path(tempfile.mkdtemp(prefix="fake-video-api-")), True
        path = Path(value).expanduser().resolve()
        if path.exists() and not path.is_dir():
            raise CommandError(f"--state-dir {value}: not a directory")
        try:
            path.mkdir(parents=True, exist_ok=True)
            probe = path / ".write-test"
            probe.write_bytes(b"")
            probe.unlink()
        except OSError as exc:
            raise CommandError(f"--state-dir {value}: cannot write there ({exc})") from None
        return path, False

    # --- the stand-ins ------------------------------------------------------------------------------

    def _videos(self, options: dict[str, Any], state_dir: Path) -> Served:
        defaults = FakeConfig()
        latency = options["latency"]
        config = FakeConfig(
            api_key=options["api_key"],
            latency=defaults.latency if latency is None else latency,
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
        server = FakeVideoServer(
            config, host=options["host"], port=options["port"], verbose=options["verbose"]
        )
        server.start()
        env = {"SORA_BASE_URL": server.url, "SORA_API_KEY": options["api_key"] or ANY_SORA_KEY}
        return Served("videos", "fake OpenAI Videos API", server.url, server, env)

    def _fal(self, options: dict[str, Any], state_dir: Path) -> Served:
        defaults = FalFakeConfig()
        latency = options["latency"]
        config = FalFakeConfig(
            key=options["fal_key"],
            queue_latency=options["fal_queue_latency"],
            latency=defaults.latency if latency is None else latency,
            moderation_word=options["moderation_word"],
            rate_limit_next=options["rate_limit_burst"],
            retry_after=options["retry_after"],
        )
        server = FakeFalServer(
            config, host=options["host"], port=options["fal_port"], verbose=options["verbose"]
        )
        server.start()
        env = {
            "FAL_QUEUE_URL": server.url,
            "FAL_KEY": config.key,
            # Where the project fetches the key that verifies this fake's webhook deliveries.
            "FAL_WEBHOOK_JWKS_URL": server.jwks_url,
        }
        return Served("fal", "fake fal queue", server.url, server, env)

    def _vertex(self, options: dict[str, Any], state_dir: Path) -> Served:
        defaults = VertexConfig()
        latency = options["latency"]
        config = VertexConfig(
            latency=defaults.latency if latency is None else latency,
            safety_word=options["moderation_word"],
            rate_limit_next_creates=options["rate_limit_burst"],
        )
        server = FakeVertexServer(
            config,
            project=options["vertex_project"],
            location=options["vertex_location"],
            host=options["host"],
            port=options["vertex_port"],
            verbose=options["verbose"],
        )
        server.start()
        try:
            # The server keeps its own copy in a directory it removes on stop; this one is the user's.
            key_file = server.write_service_account_file(state_dir / KEY_FILE)
        except BaseException:
            server.stop()
            raise
        env = {
            "VERTEX_BASE_URL": server.url,
            "VERTEX_PROJECT": server.project,
            "VERTEX_LOCATION": server.location,
            "GOOGLE_APPLICATION_CREDENTIALS": str(key_file),
            "VERTEX_GCS_BASE_URL": server.url,
        }
        if options["vertex_output_gcs_uri"]:
            env["VERTEX_OUTPUT_GCS_URI"] = options["vertex_output_gcs_uri"]
        return Served("vertex", "fake Vertex AI (Veo, OAuth token, GCS)", server.url, server, env)

    def _start(self, options: dict[str, Any], protocols: tuple[str, ...], state_dir: Path) -> list[Served]:
        """Build and start each stand-in in turn; if one cannot start, stop those already running."""
        builders = {"videos": self._videos, "fal": self._fal, "vertex": self._vertex}
        ports = {"videos": options["port"], "fal": options["fal_port"], "vertex": options["vertex_port"]}
        served: list[Served] = []
        try:
            for protocol in protocols:
                try:
                    served.append(builders[protocol](options, state_dir))
                except OSError as exc:
                    raise CommandError(
                        f"cannot serve {protocol} on {options['host']}:{ports[protocol]}: {exc}"
                    ) from None
        except BaseException:
            self._stop(served)
            raise
        return served

    @staticmethod
    def _stop(served: list[Served]) -> None:
        for one in reversed(served):
            # One stand-in failing to stop must not keep the others up.
            with contextlib.suppress(Exception):
                one.server.stop()

    def _trust(self, served: list[Served], state_dir: Path) -> dict[str, str]:
        """Write the CA certificates of the TLS stand-ins into one bundle; its settings, or {}."""
        pems: list[bytes] = []
        for one in served:
            if one.protocol == "fal" and one.server.tls is not None:
                pems.append(one.server.tls.ca_pem)
            elif one.protocol == "vertex" and one.server.ca_file is not None:
                pems.append(Path(one.server.ca_file).read_bytes())
        if not pems:
            return {}
        bundle = state_dir / CA_FILE
        bundle.write_bytes(b"".join(pem if pem.endswith(b"\n") else pem + b"\n" for pem in pems))
        return {"SSL_CERT_FILE": str(bundle), "REQUESTS_CA_BUNDLE": str(bundle)}

    # --- run ----------------------------------------------------------------------------------------

    def handle(self, *args: Any, **options: Any) -> None:
        protocols = parse_protocols(options["protocol"])
        self._check(options, protocols)
        state_dir, temporary = self._state_dir(options["state_dir"])
        stop = threading.Event()
        previous = self._on_sigterm(stop)
        served: list[Served] = []
        try:
            served = self._start(options, protocols, state_dir)
            trust = self._trust(served, state_dir)
            lines: list[str] = []
            for one in served:
                self.stdout.write(f"{one.protocol}: {one.title} at {one.url}")
                self.stdout.write(f"  {env_line(one.env)}")
                lines += [f"export {name}={shlex.quote(value)}" for name, value in one.env.items()]
            if trust:
                self.stdout.write(
                    "tls: the fal and Vertex fakes' CA (trust it in every process that calls them)"
                )
                self.stdout.write(f"  {env_line(trust)}")
                lines += [f"export {name}={shlex.quote(value)}" for name, value in trust.items()]
            env_file = state_dir / ENV_FILE
            env_file.write_text("\n".join(lines) + "\n")
            self.stdout.write(f"env: {env_file}")
            self.stdout.write("ready (Ctrl-C to stop)")
            self.stdout.flush()
            while not stop.wait(0.5):
                pass
        except KeyboardInterrupt:
            pass
        finally:
            self._stop(served)
            self._restore_sigterm(previous)
            if temporary:
                shutil.rmtree(state_dir, ignore_errors=True)

    @staticmethod
    def _on_sigterm(stop: threading.Event) -> tuple[bool, Any]:
        """Let SIGTERM end the command as Ctrl-C does (servers stopped, temporary files removed).
        Returns (hooked, the handler to put back)."""
        try:
            return True, signal.signal(signal.SIGTERM, lambda signum, frame: stop.set())
        except ValueError:  # not the main thread (call_command from a worker thread): nothing to hook
            return False, None

    @staticmethod
    def _restore_sigterm(previous: tuple[bool, Any]) -> None:
        hooked, handler = previous
        if hooked:
            signal.signal(signal.SIGTERM, handler if handler is not None else signal.SIG_DFL)
