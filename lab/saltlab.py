"""A real Salt master and minions on loopback, for end-to-end tests and fixture recording.

Standard library only, so the exporter never depends on Salt: Salt is installed from PyPI into its own
cached virtual environment (``ensure_salt``) and driven through its real daemons and CLIs (``SaltLab``).
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import pwd
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tarfile
import tempfile
import time
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from types import TracebackType
from typing import Any, Literal, Self

__all__ = [
    "DEFAULT_VERSION",
    "SaltLab",
    "SaltLabError",
    "SaltUnavailable",
    "ensure_salt",
    "salt_cache_dir",
]

DEFAULT_VERSION = "3008.4"
_READY_MARKER = ".saltlab-ready"
_SUN_PATH_MAX = 107  # sockaddr_un.sun_path is 108 bytes including the NUL
_TOKEN_ENV = "SALTLAB_TOKEN"


class SaltUnavailable(RuntimeError):
    """Salt could not be installed (offline, no wheel for this Python, ...): callers may skip, not fail."""


class SaltLabError(RuntimeError):
    """The lab did not come up or a daemon misbehaved; the message carries the relevant log tails."""


def salt_cache_dir(version: str) -> Path:
    """Default venv location: shared by every checkout and test run, so Salt is installed once per machine."""
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "salt-event-exporter" / f"salt-{version}"


def ensure_salt(version: str, cache_dir: Path | None = None) -> Path:
    """Return a virtualenv with ``salt==version``, creating it on first use.

    The ready marker is written last, so an interrupted install is detected and redone; an exclusive file lock
    keeps parallel test processes from installing into the same directory at once.

    Plain ``pip install salt==version`` is tried first: it is the fast path and works for every release whose
    requirements the package index serves. Some point releases (3006.30, 3007.17, 3008.5) pin a floor the
    index may not serve yet (``certifi>=2026.10.23``), and pip then fails with "No matching distribution
    found for <requirement>". Only on that failure, and only for requirements other than salt itself, the
    install falls back to ``_install_relaxed``: the release's own ``requirements/base.txt`` and
    ``requirements/zeromq.txt`` from its sdist, with the unservable requirements' version bounds dropped,
    then ``salt`` itself with ``--no-deps``. Deciding by the failure rather than by a list of versions keeps
    future releases with the same problem working, and releases that install plainly never pay for the
    fallback. The relaxed requirement set is kept in the venv as ``saltlab-requirements.txt``.
    """
    venv = cache_dir if cache_dir is not None else salt_cache_dir(version)
    marker = venv / _READY_MARKER
    if _venv_ready(venv, marker, version):
        return venv
    venv.parent.mkdir(parents=True, exist_ok=True)
    lock_path = venv.parent / f".{venv.name}.lock"
    with lock_path.open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if _venv_ready(venv, marker, version):
            return venv
        if venv.exists():
            shutil.rmtree(venv)
        _run_install([sys.executable, "-m", "venv", str(venv)], version)
        pip = [str(venv / "bin" / "python"), "-m", "pip", "--disable-pip-version-check", "--no-input"]
        try:
            _run_install([*pip, "install", "--quiet", f"salt=={version}"], version)
        except SaltUnavailable as exc:
            unservable = _unservable_requirements(str(exc))
            if not unservable or "salt" in unservable:
                raise
            _install_relaxed(venv, pip, version, unservable)
        if not (venv / "bin" / "salt-master").exists():
            raise SaltUnavailable(f"salt=={version} installed but {venv}/bin/salt-master is missing")
        marker.write_text(version + "\n")
    return venv


_NO_MATCH = re.compile(r"No matching distribution found for ([A-Za-z0-9][A-Za-z0-9._-]*)")
_REQ_NAME = re.compile(r"\s*([A-Za-z0-9][A-Za-z0-9._-]*)")
_RELAX_ROUNDS = 4  # each round relaxes what pip named; a release pinning several unserved floors takes more


def _canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _unservable_requirements(pip_output: str) -> set[str]:
    """Canonical names of the requirements pip found no distribution for, e.g. {"certifi"}."""
    return {_canonical(m.group(1)) for m in _NO_MATCH.finditer(pip_output)}


def _relax(requirements: str, names: set[str]) -> str:
    """Drop the version bounds of ``names`` (environment markers kept, comments and other lines untouched)."""
    out: list[str] = []
    for line in requirements.splitlines():
        spec = line.split("#", 1)[0]
        match = _REQ_NAME.match(spec)
        if match and spec.strip() and _canonical(match.group(1)) in names:
            marker = spec.split(";", 1)[1].strip() if ";" in spec else ""
            out.append(f"{match.group(1)}; {marker}" if marker else match.group(1))
        else:
            out.append(line)
    return "\n".join(out) + "\n"


def _sdist_requirements(sdist: Path) -> str:
    """``requirements/base.txt`` and ``requirements/zeromq.txt`` of a salt sdist, concatenated."""
    texts: dict[str, str] = {}
    with tarfile.open(sdist) as tar:
        for member in tar.getmembers():
            parts = member.name.split("/")
            if len(parts) == 3 and parts[1] == "requirements" and parts[2] in ("base.txt", "zeromq.txt"):
                handle = tar.extractfile(member)
                if handle is not None:
                    texts[parts[2]] = handle.read().decode()
    missing = {"base.txt", "zeromq.txt"} - texts.keys()
    if missing:
        raise SaltUnavailable(f"{sdist.name} has no requirements/{', '.join(sorted(missing))}")
    return texts["base.txt"] + "\n" + texts["zeromq.txt"]


def _install_relaxed(venv: Path, pip: list[str], version: str, unservable: set[str]) -> None:
    """Install salt's own requirement files with ``unservable`` relaxed, then salt itself without deps."""
    unservable = set(unservable)
    with tempfile.TemporaryDirectory(prefix="saltlab-sdist-") as tmp:
        _run_install(
            [*pip, "download", "--quiet", "--no-deps", "--no-binary", ":all:", "-d", tmp, f"salt=={version}"],
            version,
        )
        sdists = sorted(Path(tmp).glob("salt-*.tar.gz"))
        if not sdists:
            raise SaltUnavailable(f"pip download salt=={version} produced no sdist in {tmp}")
        original = _sdist_requirements(sdists[0])
        relaxed_path = venv / "saltlab-requirements.txt"
        for _ in range(_RELAX_ROUNDS):
            relaxed_path.write_text(
                f"# salt=={version} requirements/base.txt + zeromq.txt, bounds dropped for:"
                f" {', '.join(sorted(unservable))}\n" + _relax(original, unservable)
            )
            try:
                _run_install([*pip, "install", "--quiet", "-r", str(relaxed_path)], version)
                break
            except SaltUnavailable as exc:
                more = _unservable_requirements(str(exc)) - unservable
                if not more:
                    raise
                unservable |= more
        else:
            raise SaltUnavailable(f"salt=={version}: still unservable after relaxing {sorted(unservable)}")
        _run_install([*pip, "install", "--quiet", "--no-deps", str(sdists[0])], version)


def _venv_ready(venv: Path, marker: Path, version: str) -> bool:
    try:
        return marker.read_text().strip() == version and (venv / "bin" / "salt-master").exists()
    except OSError:
        return False


def _run_install(cmd: list[str], version: str) -> None:
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=900, check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise SaltUnavailable(f"cannot install salt=={version}: {exc}") from exc
    if proc.returncode != 0:
        tail = "\n".join(line[:300] for line in (proc.stdout + proc.stderr).strip().splitlines()[-25:])
        raise SaltUnavailable(f"cannot install salt=={version}: {' '.join(cmd[:4])} ... failed:\n{tail}")


def _free_ports(count: int) -> list[int]:
    """Ask the kernel for distinct free loopback ports (held open together so none repeats)."""
    socks: list[socket.socket] = []
    try:
        for _ in range(count):
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            sock.bind(("127.0.0.1", 0))
            socks.append(sock)
        return [int(s.getsockname()[1]) for s in socks]
    finally:
        for sock in socks:
            sock.close()


def _yaml(value: Any) -> str:
    """Render a config mapping as YAML; JSON is valid YAML, so no YAML library is needed."""
    return "\n".join(f"{json.dumps(k)}: {json.dumps(v)}" for k, v in value.items()) + "\n"


def _tail(path: Path, lines: int) -> str:
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return f"(no {path.name})"
    return "\n".join(text.splitlines()[-lines:])


def _read(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except OSError:
        return b""


def _connectable(address: str | tuple[str, int]) -> bool:
    family = socket.AF_UNIX if isinstance(address, str) else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as sock:
        sock.settimeout(1.0)
        try:
            sock.connect(address)
        except OSError:
            return False
    return True


def _find_pids(env_needles: Sequence[bytes], cmdline_needle: bytes) -> list[int]:
    """Processes whose environment holds all ``env_needles`` or whose command line holds ``cmdline_needle``.

    The environment finds job children even when they left the daemon's session; the command line is needed
    too because Salt's setproctitle overwrites the environment block of its titled daemon processes.
    """
    found: list[int] = []
    me = os.getpid()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == me:
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ")
            env = set((entry / "environ").read_bytes().split(b"\0"))
        except OSError:
            continue
        if cmdline_needle in cmdline or all(n in env for n in env_needles):
            found.append(int(entry.name))
    return found


class SaltLab:
    """One real salt-master and ``minions`` salt-minions on loopback, in a private temporary root_dir.

    Every process it starts carries a per-lab token in its environment and runs in its own session, so
    ``close()`` can always find and kill all of them, even after a failed test or a KeyboardInterrupt.
    Each minion connects from its own address 127.0.0.(10+n) with a matching ``ipv4`` grain: the master's
    presence detection matches peer addresses against that grain, so a killed minion shows up as lost and
    the CLI reports it as ``[Not connected]``.
    """

    def __init__(
        self,
        version: str = DEFAULT_VERSION,
        *,
        minions: int = 3,
        venv: Path | None = None,
        timeout: int = 5,
        gather_job_timeout: int = 10,
        loop_interval: int = 5,
        ipc_mode: Literal["ipc", "tcp"] = "ipc",
        state_events: bool = False,
        master_opts: Mapping[str, Any] | None = None,
        minion_opts: Mapping[str, Any] | None = None,
        root_dir: Path | None = None,
        keep: bool = False,
        start_timeout: float = 120.0,
        minion_prefix: str = "lab-minion",
        address_base: int = 10,
        syndic_of: SaltLab | None = None,
        syndic_id: str = "lab-syndic",
        interface: str = "127.0.0.1",
    ) -> None:
        if not 1 <= minions <= 99:
            raise ValueError("minions must be between 1 and 99")
        self.version = version
        # Two labs side by side (a syndic topology) need distinct minion ids and source addresses.
        self.minion_ids = [f"{minion_prefix}-{n:02d}" for n in range(1, minions + 1)]
        self.address_base = address_base
        self.interface = interface  # the master's address: each master of a cluster has its own
        self.ipc_mode = ipc_mode
        self.start_timeout = start_timeout
        self.keep = keep or os.environ.get("SALTLAB_KEEP") == "1"
        self.timings: dict[str, float] = {}
        self._venv = venv
        self._token = secrets.token_hex(8)
        self._procs: dict[str, subprocess.Popen[bytes]] = {}
        self._extra_procs: list[subprocess.Popen[Any]] = []
        self._closed = False
        self._log_offsets: dict[str, int] = {}
        self._own_root = root_dir is None
        self.root = Path(root_dir or tempfile.mkdtemp(prefix="saltlab-")).resolve()
        self.root.mkdir(parents=True, exist_ok=True)
        sock_base = self.root / "s"
        self._own_sock = len(str(sock_base)) > 40  # leave room for "<id>/minion_event_<hash>_pull.ipc"
        if self._own_sock:
            sock_base = Path(tempfile.mkdtemp(prefix="sl-", dir="/tmp"))
        self.sock_base = sock_base
        # Salt names its longest socket "<sock_dir>/minion_event_<10 hex>_pull.ipc"; bind() fails past 107.
        if len(str(sock_base)) + len("/99/minion_event_0123456789_pull.ipc") > _SUN_PATH_MAX:
            raise SaltLabError(f"socket directory {sock_base} is too long for Unix socket paths")
        self.log_dir = self.root / "log"
        self.file_roots = self.root / "srv" / "salt"
        self.pillar_roots = self.root / "srv" / "pillar"
        self.master_conf_dir = self.root / "conf"

        ports = _free_ports(6 + 2 * minions)
        self.publish_port, self.ret_port = ports[0], ports[1]
        self.tcp_master_pub_port, self.tcp_master_pull_port = ports[2], ports[3]
        self._tcp_master_publish_pull, self._tcp_master_workers = ports[4], ports[5]
        self._minion_tcp_ports = {
            mid: (ports[6 + 2 * i], ports[7 + 2 * i]) for i, mid in enumerate(self.minion_ids)
        }
        self.master_opts: dict[str, Any] = {
            "id": "lab-master",
            "user": _current_user(),
            "root_dir": str(self.root),
            "pki_dir": str(self.root / "master" / "pki"),
            "cachedir": str(self.root / "master" / "cache"),
            "sock_dir": str(self.sock_base / "m"),
            "pidfile": str(self.root / "master" / "salt-master.pid"),
            "log_file": str(self.log_dir / "master.log"),
            "key_logfile": str(self.log_dir / "key.log"),
            "log_level_logfile": "info",
            "interface": interface,
            "publish_port": self.publish_port,
            "ret_port": self.ret_port,
            "auto_accept": True,
            "timeout": timeout,
            "gather_job_timeout": gather_job_timeout,
            "presence_events": True,
            "loop_interval": loop_interval,
            "ipc_mode": ipc_mode,
            "tcp_master_pub_port": self.tcp_master_pub_port,
            "tcp_master_pull_port": self.tcp_master_pull_port,
            "tcp_master_publish_pull": self._tcp_master_publish_pull,
            "tcp_master_workers": self._tcp_master_workers,
            "state_events": state_events,
            "worker_threads": 3,
            "file_roots": {"base": [str(self.file_roots)]},
            "pillar_roots": {"base": [str(self.pillar_roots)]},
            "enable_fqdns_grains": False,
            **dict(master_opts or {}),
        }
        # A syndic topology: this lab's master also runs salt-syndic, a minion of ``syndic_of``'s master
        # (which needs ``order_masters: True``), relaying that master's jobs to this lab's minions.
        self.syndic_of = syndic_of
        self.syndic_id = syndic_id
        self.syndic_opts: dict[str, Any] | None = None
        if syndic_of is not None:
            self.master_opts.update(
                {"id": syndic_id, "syndic_master": "127.0.0.1", "syndic_master_port": syndic_of.ret_port}
            )
            # salt-syndic merges its conf dir's `minion` file over `master`: without these it would use
            # /etc/salt paths and the default publish port 4505 of the master of masters.
            self.syndic_opts = {
                "id": syndic_id,
                "master": "127.0.0.1",
                "master_port": syndic_of.ret_port,
                "publish_port": syndic_of.publish_port,
                "pki_dir": str(self.root / "syndic" / "pki"),
                "cachedir": str(self.root / "syndic" / "cache"),
                "sock_dir": str(self.sock_base / "y"),
                "syndic_pidfile": str(self.root / "syndic" / "salt-syndic.pid"),
                "syndic_log_file": str(self.log_dir / "syndic.log"),
                "log_file": str(self.log_dir / "syndic.log"),
                "log_level_logfile": "info",
                "acceptance_wait_time": 1,
                "acceptance_wait_time_max": 2,
                "enable_fqdns_grains": False,
            }
        self._minion_opts_extra = dict(minion_opts or {})
        self.minion_opts: dict[str, dict[str, Any]] = {
            mid: self._minion_config(i, mid) for i, mid in enumerate(self.minion_ids, start=1)
        }

    # ----------------------------------------------------------------- configuration

    def _minion_config(self, n: int, mid: str) -> dict[str, Any]:
        address = f"127.0.0.{self.address_base + n}"
        tcp_pub, tcp_pull = self._minion_tcp_ports[mid]
        base = self.root / "minions" / mid
        return {
            "id": mid,
            "user": _current_user(),
            "root_dir": str(self.root),
            "master": self.interface,
            "master_port": self.ret_port,
            "publish_port": self.publish_port,
            "source_address": address,
            "grains": {"ipv4": [address], "saltlab": True},
            "pki_dir": str(base / "pki"),
            "cachedir": str(base / "cache"),
            # Per minion: the default lands under the shared root_dir, and minions starting together race to
            # create it (3006.x fails with EEXIST).
            "extension_modules": str(base / "extmods"),
            "sock_dir": str(self.sock_base / f"{n:02d}"),
            "pidfile": str(base / "salt-minion.pid"),
            "log_file": str(self.log_dir / f"{mid}.log"),
            "log_level_logfile": "info",
            "ipc_mode": self.ipc_mode,
            "tcp_pub_port": tcp_pub,
            "tcp_pull_port": tcp_pull,
            "acceptance_wait_time": 1,
            "acceptance_wait_time_max": 2,
            "random_reauth_delay": 0,
            "recon_default": 200,
            "recon_max": 1000,
            "recon_randomize": False,
            "loop_interval": 1,
            "enable_fqdns_grains": False,
            "enable_gpu_grains": False,
            **self._minion_opts_extra,
        }

    def minion_conf_dir(self, minion: str) -> Path:
        """Config directory of one minion: pass it as ``-c`` to salt-call or salt-minion."""
        self._check_minion(minion)
        return self.root / "minions" / minion / "conf"

    def _write_configs(self) -> None:
        for path in (self.log_dir, self.file_roots, self.pillar_roots, self.master_conf_dir, self.sock_base):
            path.mkdir(parents=True, exist_ok=True)
        (self.master_conf_dir / "master").write_text(_yaml(self.master_opts))
        if self.syndic_opts is not None:
            (self.master_conf_dir / "minion").write_text(_yaml(self.syndic_opts))
        for mid, opts in self.minion_opts.items():
            conf = self.minion_conf_dir(mid)
            conf.mkdir(parents=True, exist_ok=True)
            (conf / "minion").write_text(_yaml(opts))

    def write_state(self, name: str, text: str) -> Path:
        """Write ``<name>.sls`` (dots become directories) into the lab's file_roots; usable at once."""
        path = self.file_roots.joinpath(*name.split(".")).with_suffix(".sls")
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
        return path

    def write_pillar(self, name: str, text: str) -> Path:
        """Write ``<name>.sls`` into the lab's pillar_roots (a ``top.sls`` is the caller's job)."""
        path = self.pillar_roots.joinpath(*name.split(".")).with_suffix(".sls")
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
        return path

    # ----------------------------------------------------------------- addresses

    @property
    def venv(self) -> Path:
        """The Salt virtualenv (installed on first use)."""
        if self._venv is None:
            started = time.monotonic()
            self._venv = ensure_salt(self.version)
            self.timings["install"] = time.monotonic() - started
        return self._venv

    @property
    def master_sock_dir(self) -> Path:
        return Path(self.master_opts["sock_dir"])

    @property
    def accepted_keys_dir(self) -> Path:
        """Where the master keeps accepted minion keys: a 3007+ cluster keeps them in its shared pki dir."""
        pki = self.master_opts.get("cluster_pki_dir") if self.master_opts.get("cluster_id") else None
        return Path(pki or self.master_opts["pki_dir"]) / "minions"

    @property
    def bus_path(self) -> str:
        """The master event bus as the exporter takes it: a Unix socket path, or tcp://host:port."""
        if self.master_opts.get("ipc_mode") == "tcp":
            return f"tcp://127.0.0.1:{self.master_opts['tcp_master_pub_port']}"
        return str(self.master_sock_dir / "master_event_pub.ipc")

    def _bus_address(self) -> str | tuple[str, int]:
        if self.master_opts.get("ipc_mode") == "tcp":
            return ("127.0.0.1", int(self.master_opts["tcp_master_pub_port"]))
        return self.bus_path

    @property
    def env(self) -> dict[str, str]:
        """Environment for every lab process: tagged with the lab token so close() can find stragglers."""
        env = {k: v for k, v in os.environ.items() if not k.startswith(("SALT_", "PYTHON", "VIRTUAL_ENV"))}
        env[_TOKEN_ENV] = self._token
        env["PATH"] = f"{self.venv / 'bin'}{os.pathsep}{env.get('PATH', '/usr/bin:/bin')}"
        return env

    def _env_for(self, daemon: str | None) -> dict[str, str]:
        env = self.env
        if daemon is not None:
            env["SALTLAB_DAEMON"] = daemon
        return env

    # ----------------------------------------------------------------- commands

    def argv(self, tool: str, *args: str, minion: str | None = None) -> list[str]:
        """Command line for a lab tool (salt, salt-run, salt-key, salt-call, ...) with the lab's config."""
        conf = self.minion_conf_dir(minion) if minion is not None else self.master_conf_dir
        return [str(self.venv / "bin" / tool), "-c", str(conf), *args]

    def popen(self, tool: str, *args: str, minion: str | None = None, **kwargs: Any) -> subprocess.Popen[str]:
        """Start a lab tool without waiting (e.g. a CLI job to kill a minion under); close() reaps it."""
        proc: subprocess.Popen[str] = subprocess.Popen(
            self.argv(tool, *args, minion=minion),
            env=self._env_for(None),
            start_new_session=True,
            text=True,
            **kwargs,
        )
        self._extra_procs.append(proc)
        return proc

    def run(
        self,
        tool: str,
        *args: str,
        minion: str | None = None,
        timeout: float = 120.0,
        check: bool = False,
        merge_stderr: bool = False,
    ) -> subprocess.CompletedProcess[str]:
        """Run a lab tool to completion; on timeout its process group is killed and TimeoutExpired raised."""
        stderr = subprocess.STDOUT if merge_stderr else subprocess.PIPE
        proc = self.popen(tool, *args, minion=minion, stdout=subprocess.PIPE, stderr=stderr)
        try:
            out, err = proc.communicate(timeout=timeout)
        except BaseException:
            _killpg(proc.pid, signal.SIGKILL)
            proc.communicate()
            raise
        finally:
            with contextlib.suppress(ValueError):
                self._extra_procs.remove(proc)
        result = subprocess.CompletedProcess(proc.args, proc.returncode, out, err)
        if check:
            result.check_returncode()
        return result

    def salt(
        self, *args: str, timeout: float = 120.0, check: bool = False
    ) -> subprocess.CompletedProcess[str]:
        """The real ``salt`` CLI against this lab's master."""
        return self.run("salt", *args, timeout=timeout, check=check)

    def salt_run(
        self, *args: str, timeout: float = 120.0, check: bool = False
    ) -> subprocess.CompletedProcess[str]:
        """The real ``salt-run`` CLI."""
        return self.run("salt-run", *args, timeout=timeout, check=check)

    def salt_key(
        self, *args: str, timeout: float = 60.0, check: bool = False
    ) -> subprocess.CompletedProcess[str]:
        """The real ``salt-key`` CLI."""
        return self.run("salt-key", *args, timeout=timeout, check=check)

    def salt_call(
        self, minion: str, *args: str, timeout: float = 120.0, check: bool = False
    ) -> subprocess.CompletedProcess[str]:
        """``salt-call`` as ``minion`` (its config and keys): the master sees a return with jid ``req``."""
        return self.run("salt-call", *args, minion=minion, timeout=timeout, check=check)

    # ----------------------------------------------------------------- daemons

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def start(self, minions: bool = True) -> None:
        """Write configs, start the master and all minions, and wait until every minion answers test.ping.

        ``minions=False`` stops after the master (and syndic): a 3008 cluster serves its minions only once
        every peer master is up, so a cluster starts all masters first, then ``start_minions()`` on each.
        """
        try:
            _ = self.venv
            self._write_configs()
            started = time.monotonic()
            self.start_master()
            self.timings["master"] = time.monotonic() - started
            if self.syndic_of is not None:
                started = time.monotonic()
                self.start_syndic()
                self.timings["syndic"] = time.monotonic() - started
            if minions:
                self.start_minions()
        except BaseException:
            self.close()
            raise

    def start_minions(self) -> None:
        """Start every minion and wait until each answers test.ping."""
        started = time.monotonic()
        for mid in self.minion_ids:
            self.start_minion(mid, wait=False)
        self.wait_ready()
        self.timings["minions"] = time.monotonic() - started

    def start_master(self, timeout: float | None = None) -> None:
        """Start salt-master and wait until its event bus and request port accept connections."""
        if self._alive("master"):
            raise SaltLabError("master is already running")
        bus = self.master_sock_dir / "master_event_pub.ipc"
        with contextlib.suppress(FileNotFoundError):
            bus.unlink()
        with contextlib.suppress(FileNotFoundError):
            Path(self.master_opts["pidfile"]).unlink()
        self._spawn("master", "salt-master", self.master_conf_dir)
        deadline = time.monotonic() + (timeout or self.start_timeout)
        self._wait(
            lambda: _connectable(self._bus_address()) and _connectable((self.interface, self.ret_port)),
            deadline,
            "master event bus and ret port",
            "master",
        )

    def start_syndic(self, timeout: float | None = None) -> None:
        """Start salt-syndic and wait until the master of masters accepted its key and it connected."""
        top = self.syndic_of
        if top is None:
            raise SaltLabError("this lab has no master of masters (syndic_of)")
        if self._alive("syndic"):
            raise SaltLabError("syndic is already running")
        self._spawn("syndic", "salt-syndic", self.master_conf_dir)
        deadline = time.monotonic() + (timeout or self.start_timeout)
        key = top.accepted_keys_dir / self.syndic_id
        self._wait(
            key.exists, deadline, f"key of {self.syndic_id} accepted by the master of masters", "syndic"
        )
        log = self.log_dir / "syndic.log"
        offset = self._log_offsets.get("syndic", 0)
        self._wait(
            lambda: b"Syndic successfully connected" in _read(log)[offset:],
            deadline,
            "the syndic to connect to the master of masters",
            "syndic",
        )

    def stop_syndic(self, kill: bool = True) -> None:
        """Stop salt-syndic: jobs from the master of masters no longer reach this lab's minions."""
        self._stop("syndic", kill)

    def stop_master(self, kill: bool = True) -> None:
        """Stop the master: SIGKILL (a crash) or SIGTERM (a clean shutdown), and reap all its processes."""
        self._stop("master", kill)

    def start_minion(self, name: str, wait: bool = True, timeout: float | None = None) -> None:
        """Start (or restart) one minion; with ``wait``, until it answers test.ping."""
        self._check_minion(name)
        if self._alive(name):
            raise SaltLabError(f"{name} is already running")
        with contextlib.suppress(FileNotFoundError):
            Path(self.minion_opts[name]["pidfile"]).unlink()
        self._spawn(name, "salt-minion", self.minion_conf_dir(name))
        if wait:
            self.wait_ready([name], timeout=timeout)

    def stop_minion(self, name: str, kill: bool = True) -> None:
        """Stop one minion; ``kill`` takes it and its running jobs down at once, like a crashed machine."""
        self._check_minion(name)
        self._stop(name, kill)

    def minion_running(self, name: str) -> bool:
        """Whether the lab's salt-minion process for ``name`` is alive (not whether it is connected)."""
        self._check_minion(name)
        return self._alive(name)

    def master_running(self) -> bool:
        """Whether the lab's salt-master process is alive."""
        return self._alive("master")

    def wait_ready(self, minions: Sequence[str] | None = None, timeout: float | None = None) -> None:
        """Wait until the minions' keys are accepted and each of them answers test.ping."""
        targets = list(minions or self.minion_ids)
        deadline = time.monotonic() + (timeout or self.start_timeout)
        accepted = self.accepted_keys_dir
        for mid in targets:
            self._wait(lambda m=mid: (accepted / m).exists(), deadline, f"key of {mid} accepted", mid)
        # Cheap hint first: a ping sent before a minion subscribes costs a whole find_job round.
        soft = min(deadline, time.monotonic() + 30)
        for mid in targets:
            log = self.log_dir / f"{mid}.log"
            while (
                time.monotonic() < soft
                and b"ready to receive requests" not in _read(log)[self._log_offsets.get(mid, 0) :]
            ):
                self._raise_if_dead(mid)
                time.sleep(0.1)
        pending = set(targets)
        last = ""
        while pending:
            for mid in targets:
                self._raise_if_dead(mid)
            result = self.salt(
                "-L", ",".join(sorted(pending)), "test.ping", "--out=json", "--static",
                "-t", "3",
                timeout=60,
            )  # fmt: skip
            last = (result.stdout + result.stderr).strip()
            with contextlib.suppress(ValueError):
                answers = json.loads(result.stdout or "{}")
                if isinstance(answers, dict):
                    pending -= {m for m, ok in answers.items() if ok is True}
            if pending and time.monotonic() > deadline:
                raise SaltLabError(
                    f"minions {sorted(pending)} did not answer test.ping; last output:\n{last[-2000:]}\n"
                    + self.log_tails(30)
                )
            if pending:
                time.sleep(0.5)

    def _spawn(self, name: str, tool: str, conf: Path) -> None:
        self._log_offsets[name] = len(_read(self.log_dir / f"{name}.log"))
        console = (self.log_dir / f"{name}.console.log").open("ab")
        try:
            self._procs[name] = subprocess.Popen(
                [str(self.venv / "bin" / tool), "-c", str(conf), "-l", "warning"],
                env=self._env_for(name),
                start_new_session=True,
                stdin=subprocess.DEVNULL,
                stdout=console,
                stderr=subprocess.STDOUT,
                cwd=self.root,
            )
        finally:
            console.close()

    def _alive(self, name: str) -> bool:
        proc = self._procs.get(name)
        return proc is not None and proc.poll() is None

    def _raise_if_dead(self, name: str) -> None:
        proc = self._procs.get(name)
        if proc is not None and proc.poll() is not None:
            raise SaltLabError(f"{name} exited with code {proc.returncode}\n{self.log_tail(name, 40)}")

    def _wait(self, ok: Any, deadline: float, what: str, name: str) -> None:
        while not ok():
            self._raise_if_dead(name)
            if time.monotonic() > deadline:
                raise SaltLabError(f"timed out waiting for {what}\n{self.log_tail(name, 40)}")
            time.sleep(0.1)

    def _stop(self, name: str, kill: bool) -> None:
        proc = self._procs.pop(name, None)
        if proc is not None and proc.poll() is None:
            if kill:
                _killpg(proc.pid, signal.SIGKILL)
            else:
                _killpg(proc.pid, signal.SIGTERM)
                with contextlib.suppress(subprocess.TimeoutExpired):
                    proc.wait(timeout=15)
            _killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        # job processes of a daemon may have left its process group (e.g. cmd.run with bg)
        for pid in self._lab_pids(name):
            with contextlib.suppress(OSError):
                os.kill(pid, signal.SIGKILL)

    def _lab_pids(self, daemon: str | None = None) -> list[int]:
        token = f"{_TOKEN_ENV}={self._token}".encode()
        if daemon is None:
            return _find_pids([token], f" -c {self.root}/".encode())
        if daemon in ("master", "syndic"):
            tool, conf = f"salt-{daemon}", self.master_conf_dir
        else:
            tool, conf = "salt-minion", self.minion_conf_dir(daemon)
        return _find_pids([token, f"SALTLAB_DAEMON={daemon}".encode()], f"/{tool} -c {conf} ".encode())

    @property
    def closed(self) -> bool:
        """True once close() has torn the lab down."""
        return self._closed

    def close(self) -> None:  # noqa: C901 (each daemon kind and leftover process is stopped in turn)
        """Tear down every process the lab started (blocking SIGINT meanwhile), then remove its files."""
        if self._closed:
            return
        old_mask = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})
        try:
            started = time.monotonic()
            procs = [p for p in [*self._procs.values(), *self._extra_procs] if p.poll() is None]
            for proc in procs:
                _killpg(proc.pid, signal.SIGTERM)
            end = time.monotonic() + 3
            for proc in procs:
                with contextlib.suppress(subprocess.TimeoutExpired):
                    proc.wait(timeout=max(0.0, end - time.monotonic()))
            for proc in procs:
                _killpg(proc.pid, signal.SIGKILL)
            for proc in procs:
                with contextlib.suppress(subprocess.TimeoutExpired):
                    proc.wait(timeout=5)
            self._procs.clear()
            self._extra_procs.clear()
            for _ in range(50):
                stray = self._lab_pids()
                if not stray:
                    break
                for pid in stray:
                    with contextlib.suppress(OSError):
                        os.kill(pid, signal.SIGKILL)
                time.sleep(0.1)
            if not self.keep:
                if self._own_root:
                    shutil.rmtree(self.root, ignore_errors=True)
                if self._own_sock:
                    shutil.rmtree(self.sock_base, ignore_errors=True)
            self.timings["close"] = time.monotonic() - started
            self._closed = True
        finally:
            signal.pthread_sigmask(signal.SIG_SETMASK, old_mask)

    # ----------------------------------------------------------------- debugging

    def log_tail(self, name: str, lines: int = 40) -> str:
        """Last lines of a daemon's log file and console output ("master" or a minion id)."""
        parts = []
        for path in (self.log_dir / f"{name}.log", self.log_dir / f"{name}.console.log"):
            if path.exists():
                parts.append(f"--- {path} ---\n{_tail(path, lines)}")
        return "\n".join(parts) or f"(no logs for {name} in {self.log_dir})"

    def log_tails(self, lines: int = 40) -> str:
        """Tails of all daemon logs, for a failing test's report."""
        daemons = ["master", *(["syndic"] if self.syndic_of is not None else []), *self.minion_ids]
        return "\n".join(self.log_tail(name, lines) for name in daemons)

    def pids(self) -> Iterator[int]:
        """PIDs of all live processes started by this lab (including daemon children)."""
        yield from self._lab_pids()

    def _check_minion(self, name: str) -> None:
        if name not in self.minion_ids:
            raise KeyError(f"unknown minion {name!r}; lab minions are {self.minion_ids}")


def _current_user() -> str:
    return pwd.getpwuid(os.geteuid()).pw_name


def _killpg(pid: int, sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, sig)
