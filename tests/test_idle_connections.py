"""Idle peers cannot starve real requests: the runner, under a 1024 open-file limit (``resource.setrlimit`` in
its own process), is flooded with ~1100 idle connections on its API and S3 ports, and a real upload still
completes 2xx and is parsed; a silent connection is closed by the server, not kept for ever."""

from __future__ import annotations

import resource
import socket
import sys
import time
from pathlib import Path
from urllib.parse import urlsplit

import numpy as np
import requests
from conftest import encode_png

LIMITED = ("import resource, runpy, sys; resource.setrlimit(resource.RLIMIT_NOFILE, (1024, 1024)); "
           "sys.argv = sys.argv[1:]; runpy.run_path(sys.argv[0], run_name='__main__')")


def idle(host: str, port: int, n: int) -> list[socket.socket]:
    """``n`` connections that never send a byte (each kept open on this side)."""
    out = []
    for _ in range(n):
        s = socket.create_connection((host, port), timeout=10)
        out.append(s)
    return out


def test_a_real_upload_completes_among_1000_idle_connections(tmp_path: Path) -> None:
    from runner import Runner
    from test_bounded_memory import s3_endpoint, wait_final

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, min(hard, 8192)), hard))  # this side needs ~1200
    r = Runner(tmp_path / "data")
    r.cmd = [sys.executable, "-c", LIMITED, *r.cmd[1:]]
    r.start()
    sockets: list[socket.socket] = []
    try:
        limit = Path(f"/proc/{r.proc.pid}/limits").read_text()  # type: ignore[union-attr]
        assert any(line.startswith("Max open files") and "1024" in line for line in limit.splitlines()), limit
        s3 = urlsplit(s3_endpoint(r.log()))
        sockets += idle("127.0.0.1", r.port, 700)  # over both ports' caps (256 each under 1024 files)
        sockets += idle("127.0.0.1", int(s3.port or 0), 400)
        answer = requests.post(r.base + "/api/uploads", json={"content_type": "image/png"}, timeout=30)
        assert answer.status_code == 201, answer.text
        up = answer.json()["upload"]
        png = encode_png(np.full((64, 48, 3), 128, np.uint8))
        sent = requests.post(up["url"], data=up["fields"], files={"file": ("p.png", png, "image/png")}, timeout=30)
        assert sent.status_code == 204, sent.text
        job = wait_final(r.base, answer.json()["job_id"], 120)
        assert job["status"] == "done", job
        assert "Too many open files" not in r.log()
        # most of the flood was closed by the server (evicted as the longest idle, or timed out)
        time.sleep(1.0)
        closed = 0
        for s in sockets:
            s.setblocking(False)
            try:
                closed += s.recv(1) == b""
            except BlockingIOError:
                pass
            except ConnectionError:
                closed += 1
        print(f"{closed} of {len(sockets)} idle connections closed by the runner")
        assert closed >= len(sockets) - 2 * 256, closed
        # a connection that stays silent is closed by the server (header timeout / read timeout)
        quiet = socket.create_connection(("127.0.0.1", r.port), timeout=60)
        assert quiet.recv(1) == b""
        quiet.close()
    finally:
        for s in sockets:
            s.close()
        r.stop()


def test_a_trickling_api_body_gets_408() -> None:
    """``read_capped`` ends a body that does not arrive within its time (408 ``request_timeout``)."""
    import asyncio

    import pytest
    from humanparse.entries.api.limits import read_capped
    from humanparse.exceptions import RequestTimeout
    from starlette.requests import Request

    async def receive() -> dict[str, object]:
        await asyncio.sleep(0.02)  # one byte now and then, never the end
        return {"type": "http.request", "body": b"x", "more_body": True}

    request = Request({"type": "http", "method": "POST", "headers": []}, receive)
    with pytest.raises(RequestTimeout) as ei:
        asyncio.run(read_capped(request, 1000, timeout_s=0.2))
    assert ei.value.http_status == 408 and ei.value.to_dict()["error"] == "request_timeout"
