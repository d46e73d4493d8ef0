"""Start ``python local_runner.py serve`` as a real subprocess on free ports (used by e2e and browser tests)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import requests

ROOT = Path(__file__).resolve().parents[1]
POSIX = os.name == "posix"


def graceful_stop_signal() -> int:
    """What a user's Ctrl-C becomes for a child in its own group: SIGINT on POSIX; on Windows a group started with
    CREATE_NEW_PROCESS_GROUP ignores Ctrl-C, so Ctrl-Break (the runner stops gracefully on both)."""
    return signal.SIGINT if POSIX else int(signal.CTRL_BREAK_EVENT)


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Runner:
    def __init__(self, data_dir: Path, *extra: str, workers: int = 1, env: dict[str, str] | None = None) -> None:
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.log_path = data_dir.parent / f"runner-{self.port}.log"
        self.cmd = [sys.executable, str(ROOT / "local_runner.py"), "serve", "--port", str(self.port),
                    "--data-dir", str(data_dir), "--workers", str(workers), *extra]
        self.env = env or {}
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self, timeout: float = 120.0) -> Runner:
        self._log = open(self.log_path, "ab")
        # its own process group, so a test can kill it and everything it started at once
        group: dict[str, Any] = ({"start_new_session": True} if POSIX else
                                 {"creationflags": subprocess.CREATE_NEW_PROCESS_GROUP})
        self.proc = subprocess.Popen(self.cmd, stdout=self._log, stderr=subprocess.STDOUT, cwd=ROOT,
                                     env={**os.environ, "PYTHONUNBUFFERED": "1", **self.env}, **group)
        deadline = time.time() + timeout
        while time.time() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"runner exited: {self.log()}")
            try:
                # the app answers before ``serve`` prints its endpoints (the embedded S3's, which tests read
                # from the log): ready is both
                if (requests.get(self.base + "/api/healthz", timeout=2).status_code == 200
                        and "humanparse is up" in self.log()):
                    return self
            except requests.RequestException:
                pass
            time.sleep(0.3)
        raise TimeoutError(self.log())

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def kill9(self) -> None:
        """``kill -9`` of the whole process group (Windows: TerminateProcess of the process and its children):
        no handler, no flush, no goodbye."""
        assert self.proc is not None
        if POSIX:
            os.killpg(self.proc.pid, signal.SIGKILL)
        else:
            import psutil

            for child in psutil.Process(self.proc.pid).children(recursive=True):
                child.kill()
            self.proc.kill()
        self.proc.wait(30)
        self._log.close()

    def stop(self, timeout: float = 60.0, sig: int | None = None) -> int:
        """Ask for a graceful stop (``sig``, by default Ctrl-C's signal) and wait; ``-9`` if it had to be killed."""
        assert self.proc is not None
        self.proc.send_signal(graceful_stop_signal() if sig is None else sig)
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            return -9
        finally:
            self._log.close()
