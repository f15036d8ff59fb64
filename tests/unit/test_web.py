"""The HTTP endpoint with the exporter-toolkit web config: real HTTPS clients, real certificates."""

from __future__ import annotations

import datetime as dt
import ipaddress
import signal
import socket
import ssl
import subprocess
import threading
import time
from pathlib import Path

import bcrypt
import pytest
import requests
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from tests.daemon import EXE, RunningDaemon
from tests.helpers import LogTail

CAPTURE = str(Path(__file__).parents[1] / "fixtures" / "3008.4" / "ping.bin")


def _cert(
    name: str, issuer: tuple[x509.Certificate, ec.EllipticCurvePrivateKey] | None, ca: bool, path: Path
):
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    now = dt.datetime.now(dt.UTC)
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer[0].subject if issuer else subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
    )
    if not ca:
        builder = builder.add_extension(
            x509.SubjectAlternativeName(
                [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
            ),
            False,
        )
    cert = builder.sign(issuer[1] if issuer else key, hashes.SHA256())
    (path / f"{name}.crt").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    (path / f"{name}.key").write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    return cert, key


@pytest.fixture(scope="module")
def pki(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("pki")
    ca = _cert("ca", None, True, path)
    _cert("server", ca, False, path)
    _cert("client", ca, False, path)
    return path


def hashed(password: str) -> str:
    return bcrypt.hashpw(password.encode(), bcrypt.gensalt(rounds=4)).decode()


def test_basic_auth(tmp_path) -> None:
    web = tmp_path / "web.yml"
    web.write_text(f"basic_auth_users:\n  prom: '{hashed('s3cret')}'\n")
    daemon = RunningDaemon("--bus", CAPTURE, "--web.config.file", str(web))
    try:
        assert daemon.get("/metrics").status_code == 401
        assert daemon.get("/metrics", auth=("prom", "wrong")).status_code == 401
        assert daemon.get("/metrics", auth=("nobody", "s3cret")).status_code == 401
        ok = daemon.get("/metrics", auth=("prom", "s3cret"))
        assert ok.status_code == 200 and "salt_jobs_published_total" in ok.text
        assert daemon.get("/-/healthy").status_code == 401  # every path is protected
    finally:
        daemon.stop()


def test_tls_and_plain_http_refused(tmp_path, pki) -> None:
    web = tmp_path / "web.yml"
    web.write_text(f"tls_server_config:\n  cert_file: {pki}/server.crt\n  key_file: {pki}/server.key\n")
    daemon = RunningDaemon("--bus", CAPTURE, "--web.config.file", str(web), scheme="https")
    try:
        r = daemon.get("/metrics", verify=str(pki / "ca.crt"))
        assert r.status_code == 200 and "salt_jobs_published_total" in r.text
        with pytest.raises(requests.exceptions.ConnectionError):
            requests.get(f"http://127.0.0.1:{daemon.port}/metrics", timeout=5)
        with pytest.raises(requests.exceptions.SSLError):
            daemon.get("/metrics")  # not trusted without the CA
        # The server keeps serving after bad clients.
        assert daemon.get("/-/healthy", verify=str(pki / "ca.crt")).status_code == 200
    finally:
        daemon.stop()


def test_min_version_and_mtls(tmp_path, pki) -> None:
    web = tmp_path / "web.yml"
    web.write_text(
        f"tls_server_config:\n  cert_file: {pki}/server.crt\n  key_file: {pki}/server.key\n"
        f"  client_ca_file: {pki}/ca.crt\n  client_auth_type: RequireAndVerifyClientCert\n"
        "  min_version: TLS13\n"
    )
    daemon = RunningDaemon("--bus", CAPTURE, "--web.config.file", str(web), scheme="https")
    try:
        ca = str(pki / "ca.crt")
        client = (str(pki / "client.crt"), str(pki / "client.key"))
        assert daemon.get("/metrics", verify=ca, cert=client).status_code == 200
        with pytest.raises(requests.exceptions.RequestException):
            daemon.get("/metrics", verify=ca)  # no client certificate
        ctx = ssl.create_default_context(cafile=ca)
        ctx.load_cert_chain(*client)
        ctx.maximum_version = ssl.TLSVersion.TLSv1_2
        with (
            pytest.raises(ssl.SSLError),
            socket.create_connection(("127.0.0.1", daemon.port)) as s,
        ):
            ctx.wrap_socket(s, server_hostname="127.0.0.1").do_handshake()
    finally:
        daemon.stop()


def test_reload_on_sighup_without_dropping_scrapes(tmp_path) -> None:
    web = tmp_path / "web.yml"
    web.write_text(f"basic_auth_users:\n  prom: '{hashed('one')}'\n  keep: '{hashed('k')}'\n")
    daemon = RunningDaemon("--bus", CAPTURE, "--web.config.file", str(web))
    log = LogTail(daemon.proc.stderr)
    failures: list[int] = []
    stop = threading.Event()

    def scrape() -> None:
        while not stop.is_set():
            code = daemon.get("/metrics", auth=("keep", "k")).status_code
            if code != 200:
                failures.append(code)

    thread = threading.Thread(target=scrape)
    thread.start()
    try:
        assert daemon.get("/metrics", auth=("prom", "one")).status_code == 200
        web.write_text(f"basic_auth_users:\n  prom: '{hashed('two')}'\n  keep: '{hashed('k')}'\n")
        daemon.proc.send_signal(signal.SIGHUP)
        deadline = time.monotonic() + 10
        while daemon.get("/metrics", auth=("prom", "two")).status_code != 200:
            assert time.monotonic() < deadline, "new password not active after SIGHUP"
            time.sleep(0.1)
        assert daemon.get("/metrics", auth=("prom", "one")).status_code == 401
        # A broken file keeps the previous settings.
        web.write_text("basic_auth_users: [not, a, map]\n")
        daemon.proc.send_signal(signal.SIGHUP)
        log.wait_for('"event": "web_config_reload_failed"')  # the broken file was read and refused
        assert daemon.get("/metrics", auth=("prom", "two")).status_code == 200
    finally:
        stop.set()
        thread.join()
        daemon.proc.send_signal(signal.SIGTERM)
        daemon.proc.wait(timeout=20)
        err = log.close()
        daemon.stop()
    assert failures == []
    assert err.count('"event": "web_config_reload_failed"') == 1
    assert err.count('"event": "web_config_reloaded"') == 1


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("basic_auth_users:\n  prom: plaintext\n", "must be a bcrypt hash"),
        (
            "tls_server_config:\n  cert_file: /nonexistent.crt\n  key_file: /nonexistent.key\n",
            "cannot load TLS",
        ),
        ("tls_server_config:\n  cert_file: a\n", "needs cert_file and key_file"),
        ("tsl_server_config: {}\n", "unknown key(s) tsl_server_config"),
    ],
)
def test_bad_web_config_fails_at_start(tmp_path, content, message) -> None:
    web = tmp_path / "web.yml"
    web.write_text(content)
    proc = subprocess.run(
        [EXE, "--bus", CAPTURE, "--web.config.file", str(web)],
        check=False,
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert proc.returncode == 2
    assert message in proc.stderr
