"""A real terminal for the live view: a tmux server of its own, send-keys and capture-pane."""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).parents[2]
TMUX = shutil.which("tmux") or "/usr/bin/tmux"


def uv() -> str:
    found = shutil.which("uv") or str(Path.home() / ".local/bin/uv")
    assert Path(found).exists(), "uv is needed to run the command as a person would (uv run ...)"
    return found


class Terminal:
    """One tmux server (its own socket) with one window of a fixed size running `argv`."""

    def __init__(self, argv: list[str], width: int = 160, height: int = 40, cwd: Path = ROOT) -> None:
        self.socket = f"see-live-{uuid.uuid4().hex[:8]}"
        self.done = Path(f"/tmp/{self.socket}.rc")  # the command's exit code, once it has exited
        command = f"{shlex.join(argv)}; echo $? > {self.done}; sleep 600"
        env = {**os.environ, "TERM": "xterm-256color", "UV_PYTHON_DOWNLOADS": "never"}
        env.pop("TMUX", None)
        self._tmux(
            "new-session",
            "-d",
            "-s",
            "live",
            "-x",
            str(width),
            "-y",
            str(height),
            "-c",
            str(cwd),
            command,
            env=env,
        )

    def _tmux(self, *args: str, env: dict[str, str] | None = None) -> str:
        out = subprocess.run(
            [TMUX, "-L", self.socket, *args], capture_output=True, text=True, timeout=30, env=env, check=False
        )
        assert out.returncode == 0, f"tmux {args[0]} failed: {out.stderr}"
        return out.stdout

    def screen(self) -> str:
        return self._tmux("capture-pane", "-p", "-t", "live")

    def keys(self, *keys: str) -> None:
        self._tmux("send-keys", "-t", "live", *keys)

    def wait_for(self, predicate: object, timeout: float, what: str) -> str:
        """Capture the pane until `predicate(screen)` holds (or a string is on it); fail with the screen."""
        deadline = time.monotonic() + timeout
        while True:
            text = self.screen()
            ok = predicate in text if isinstance(predicate, str) else predicate(text)  # type: ignore[operator]
            if ok:
                return text
            if time.monotonic() > deadline:
                raise AssertionError(f"timed out after {timeout} s waiting for {what}; the screen:\n{text}")
            time.sleep(0.1)

    def exit_code(self, timeout: float) -> int:
        deadline = time.monotonic() + timeout
        while not (self.done.exists() and self.done.read_text().strip()):
            assert time.monotonic() < deadline, f"the command did not exit; the screen:\n{self.screen()}"
            time.sleep(0.1)
        return int(self.done.read_text())

    def close(self) -> None:
        subprocess.run([TMUX, "-L", self.socket, "kill-server"], capture_output=True, timeout=30, check=False)
        self.done.unlink(missing_ok=True)
