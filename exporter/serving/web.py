"""HTTP endpoints: the metrics path, `/-/healthy` and `/-/ready`, with optional TLS and basic auth.

`--web.config.file` takes the Prometheus exporter-toolkit format (tls_server_config, basic_auth_users with
bcrypt hashes). The file is re-read on SIGHUP or when its modification time changes, and a bad new file
keeps the old settings (logged) so scrapes never stop.
"""

from __future__ import annotations

import base64
import contextlib
import hmac
import socket
import ssl
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import bcrypt
import structlog
import yaml
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from prometheus_client.openmetrics import exposition as openmetrics

log = structlog.get_logger("exporter.serving.web")

TLS_VERSIONS = {
    "TLS10": ssl.TLSVersion.TLSv1,
    "TLS11": ssl.TLSVersion.TLSv1_1,
    "TLS12": ssl.TLSVersion.TLSv1_2,
    "TLS13": ssl.TLSVersion.TLSv1_3,
}


class WebConfigError(ValueError):
    pass


@dataclass(slots=True)
class WebConfig:
    tls: ssl.SSLContext | None = None
    users: dict[str, bytes] = field(default_factory=dict)
    mtime: float = 0.0
    # Every file the config reads (itself, cert, key, client CA) -> its mtime when read: a certificate
    # renewed in place (cert-manager, certbot) is served without a SIGHUP.
    watched: dict[str, float] = field(default_factory=dict)


def load_web_config(path: str) -> WebConfig:
    """Parse an exporter-toolkit web config file; errors name the key and the fix."""
    file = Path(path)
    try:
        data = yaml.safe_load(file.read_text(encoding="utf-8")) or {}
        mtime = file.stat().st_mtime
    except OSError as exc:
        raise WebConfigError(f"web.config.file {path}: {exc.strerror}") from None
    except yaml.YAMLError as exc:
        raise WebConfigError(f"web.config.file {path}: not valid YAML: {exc}") from None
    if not isinstance(data, dict):
        raise WebConfigError(f"web.config.file {path}: must be a mapping")
    unknown = set(data) - {"tls_server_config", "basic_auth_users", "http_server_config"}
    if unknown:
        raise WebConfigError(f"web.config.file {path}: unknown key(s) {', '.join(sorted(unknown))}")
    config = WebConfig(mtime=mtime, watched={path: mtime})
    users = data.get("basic_auth_users") or {}
    if not isinstance(users, dict):
        raise WebConfigError(f"web.config.file {path}: basic_auth_users must map user names to bcrypt hashes")
    for user, hashed in users.items():
        if not isinstance(hashed, str) or not hashed.startswith(("$2a$", "$2b$", "$2y$")):
            raise WebConfigError(
                f"web.config.file {path}: basic_auth_users.{user} must be a bcrypt hash "
                "(e.g. from `htpasswd -nBC 10 user`), not a plain password"
            )
        config.users[str(user)] = hashed.encode()
    tls = data.get("tls_server_config")
    if tls:
        config.tls = _tls_context(path, tls)
        _watch_tls_files(config, file.parent, tls)
    return config


def _watch_tls_files(config: WebConfig, base: Path, tls: dict[str, Any]) -> None:
    for key in ("cert_file", "key_file", "client_ca_file"):
        if tls.get(key):
            named = str(base / str(tls[key]))
            with contextlib.suppress(OSError):
                config.watched[named] = Path(named).stat().st_mtime


def _tls_context(path: str, tls: dict[str, Any]) -> ssl.SSLContext:
    base = Path(path).parent

    def resolve(key: str) -> str | None:
        value = tls.get(key)
        return None if not value else str(base / str(value))

    cert, key = resolve("cert_file"), resolve("key_file")
    if not cert or not key:
        raise WebConfigError(f"web.config.file {path}: tls_server_config needs cert_file and key_file")
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    min_version = str(tls.get("min_version", "TLS12"))
    if min_version not in TLS_VERSIONS:
        raise WebConfigError(
            f"web.config.file {path}: tls_server_config.min_version must be one of {', '.join(TLS_VERSIONS)}"
        )
    ctx.minimum_version = TLS_VERSIONS[min_version]
    try:
        ctx.load_cert_chain(cert, key)
        client_ca = resolve("client_ca_file")
        auth_type = str(
            tls.get("client_auth_type", "RequireAndVerifyClientCert" if client_ca else "NoClientCert")
        )
        if client_ca:
            ctx.load_verify_locations(client_ca)
    except (OSError, ssl.SSLError) as exc:
        raise WebConfigError(f"web.config.file {path}: cannot load TLS files: {exc}") from None
    modes = {
        "NoClientCert": ssl.CERT_NONE,
        "RequestClientCert": ssl.CERT_OPTIONAL,
        "VerifyClientCertIfGiven": ssl.CERT_OPTIONAL,
        "RequireAnyClientCert": ssl.CERT_REQUIRED,
        "RequireAndVerifyClientCert": ssl.CERT_REQUIRED,
    }
    if auth_type not in modes:
        raise WebConfigError(
            f"web.config.file {path}: tls_server_config.client_auth_type must be one of {', '.join(modes)}"
        )
    if modes[auth_type] != ssl.CERT_NONE and not client_ca:
        raise WebConfigError(f"web.config.file {path}: client_auth_type {auth_type} needs client_ca_file")
    ctx.verify_mode = modes[auth_type]
    return ctx


class WebServer:
    """A threaded HTTP(S) server; `ready` decides /-/ready, `registry` feeds the metrics path."""

    def __init__(
        self,
        listen: str,
        telemetry_path: str,
        registry: CollectorRegistry,
        ready: Callable[[], bool],
        web_config_file: str | None = None,
    ) -> None:
        host, _, port = listen.rpartition(":")
        self.host = host.strip("[]") or "0.0.0.0"
        self.telemetry_path = telemetry_path
        self.registry = registry
        self.ready = ready
        self.web_config_file = web_config_file
        self.config = load_web_config(web_config_file) if web_config_file else WebConfig()
        self._lock = threading.Lock()
        handler = self._handler_class()
        self.httpd = _Server(self, (self.host, int(port)), handler)
        self.port = self.httpd.server_address[1]
        self._thread: threading.Thread | None = None

    def reload(self) -> bool:
        """Re-read the web config; keep the old one if the new one is bad."""
        if not self.web_config_file:
            return False
        try:
            config = load_web_config(self.web_config_file)
        except WebConfigError as exc:
            log.error("web_config_reload_failed", error=str(exc), kept="previous settings")
            return False
        with self._lock:
            self.config = config
        log.info("web_config_reloaded", file=self.web_config_file)
        return True

    def maybe_reload(self) -> None:
        """Reload when the web config or a file it names (certificate, key, client CA) changed."""
        if not self.web_config_file:
            return
        for name, seen in self.config.watched.items():
            try:
                mtime = Path(name).stat().st_mtime
            except OSError:
                continue  # mid-rotation: try again at the next check
            if mtime != seen:
                self.reload()
                return

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:  # noqa: C901 (one branch per endpoint)
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:
                return  # no per-request logs

            def do_GET(self) -> None:
                config = server.config
                if config.users and not _authorized(self.headers.get("Authorization"), config.users):
                    self._send(
                        401,
                        b"Unauthorized\n",
                        extra={"WWW-Authenticate": 'Basic realm="salt-event-exporter"'},
                    )
                    return
                path = self.path.split("?", 1)[0]
                if path == server.telemetry_path:
                    # OpenMetrics (which carries exemplars) when the scraper asks for it, as Prometheus
                    # does with exemplar storage on; the classic text format otherwise.
                    om = "application/openmetrics-text" in (self.headers.get("Accept") or "")
                    try:
                        body = (openmetrics.generate_latest if om else generate_latest)(server.registry)
                    except Exception:
                        log.exception("scrape_failed")
                        self._send(500, b"scrape failed, see the exporter log\n")
                        return
                    self._send(200, body, openmetrics.CONTENT_TYPE_LATEST if om else CONTENT_TYPE_LATEST)
                elif path == "/-/healthy":
                    self._send(200, b"Healthy\n")
                elif path == "/-/ready":
                    if server.ready():
                        self._send(200, b"Ready\n")
                    else:
                        self._send(503, b"Not ready: not connected to the Salt event bus\n")
                elif path == "/":
                    page = (
                        "<html><head><title>salt-event-exporter</title></head><body>"
                        f"<h1>salt-event-exporter</h1><p><a href='{server.telemetry_path}'>Metrics</a></p>"
                        "</body></html>\n"
                    )
                    self._send(200, page.encode(), "text/html; charset=utf-8")
                else:
                    self._send(404, b"Not found\n")

            def _send(
                self,
                code: int,
                body: bytes,
                ctype: str = "text/plain; charset=utf-8",
                extra: dict[str, str] | None = None,
            ) -> None:
                self.send_response(code)
                self.send_header("Content-Type", ctype)
                self.send_header("Content-Length", str(len(body)))
                for key, value in (extra or {}).items():
                    self.send_header(key, value)
                self.end_headers()
                self.wfile.write(body)

        return Handler

    def _serve(self) -> None:
        self.httpd.serve_forever(poll_interval=0.2)

    def start(self) -> None:
        self._thread = threading.Thread(target=self._serve, name="web", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


class _Server(ThreadingHTTPServer):
    """One thread per request; TLS is applied per connection from the current (reloadable) config."""

    daemon_threads = True

    def __init__(
        self, web: WebServer, address: tuple[str, int], handler: type[BaseHTTPRequestHandler]
    ) -> None:
        self.web = web
        self.address_family = socket.AF_INET6 if ":" in address[0] else socket.AF_INET
        super().__init__(address, handler)

    def get_request(self) -> tuple[Any, Any]:
        sock, addr = super().get_request()
        # Headers and body go out in separate writes; without NODELAY a kept-alive scrape waits for the
        # client's delayed ACK (~40 ms) before the body leaves.
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        tls = self.web.config.tls
        if tls is not None:
            # The handshake runs on first read, in the request's own thread, so a slow or plain-HTTP client
            # cannot hold up the accept loop.
            sock.settimeout(10)
            sock = tls.wrap_socket(sock, server_side=True, do_handshake_on_connect=False)
        return sock, addr

    def handle_error(self, request: Any, client_address: Any) -> None:
        return  # broken clients (bad TLS, resets) are not worth a traceback per connection


def _authorized(header: str | None, users: dict[str, bytes]) -> bool:
    if not header or not header.startswith("Basic "):
        return False
    try:
        user, _, password = base64.b64decode(header[6:], validate=True).decode().partition(":")
    except (ValueError, UnicodeDecodeError):
        return False
    hashed = users.get(user)
    if hashed is None:
        hmac.compare_digest(b"x", b"y")
        return False
    try:
        return bcrypt.checkpw(password.encode(), hashed)
    except ValueError:
        return False
