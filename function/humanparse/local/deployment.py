"""The local deployment as one object: data folder, embedded S3 + SQS, parse workers and the web server,
started in that order and stopped in reverse.

    with LocalDeployment(settings, parser, DeploymentOptions(data_dir=..., frontend_dir=...)) as dep:
        dep.serve(StopSignals.install())   # until SIGINT / SIGTERM / SIGHUP / SIGBREAK

Stopping (any stop signal: Ctrl-C, a service manager's SIGTERM, SIGHUP, Windows' Ctrl-Break): no new parses, in-flight parses finish within ``drain_timeout``, the
web server finishes open requests, exit 0. A second signal exits at once; nothing acknowledged is lost either
way, because every 2xx of the embedded S3 was on disk first and the next start queues again every upload
that has no final status.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import socket
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import Any

from humanparse.config import Settings
from humanparse.engine.types import Parser
from humanparse.jobs.keys import Layout
from humanparse.local.durable import DataDirError, DiskStore
from humanparse.local.s3local import EmbeddedS3, LocalAws, send_notification
from humanparse.local.worker import Worker
from humanparse.video.job import QueueFanOut

log = logging.getLogger("humanparse.local")


class DeploymentError(Exception):
    """The deployment cannot start (port taken, data folder unusable); the message says what to do."""


@dataclass
class DeploymentOptions:
    data_dir: Path
    frontend_dir: Path
    host: str = "127.0.0.1"
    port: int = 8000
    s3_port: int = 0
    workers: int = 1
    drain_timeout: float = 120.0

    @property
    def origin(self) -> str:
        return f"http://{self.host}:{self.port}"


class StopSignals:
    """SIGINT (Ctrl-C; what Windows service wrappers such as NSSM send first), SIGTERM (systemd, launchd, docker),
    SIGHUP (POSIX: the terminal closed) and SIGBREAK (Windows: Ctrl-Break) all ask for a graceful stop; a second
    one exits the process at once. The platform's missing ones are left out."""

    NAMES = ("SIGINT", "SIGTERM", "SIGHUP", "SIGBREAK")

    def __init__(self) -> None:
        self.requested = threading.Event()
        self.received: list[int] = []

    @classmethod
    def install(cls) -> StopSignals:
        self = cls()
        for sig in (getattr(signal, name) for name in cls.NAMES if hasattr(signal, name)):
            signal.signal(sig, self._on_signal)
        return self

    def _on_signal(self, signum: int, _frame: FrameType | None) -> None:
        if self.received:
            print(f"second {signal.Signals(signum).name}: exiting now; unfinished jobs resume at the next start",
                  file=sys.stderr, flush=True)
            os._exit(128 + signum)
        self.received.append(signum)
        self.requested.set()


def check_port(host: str, port: int) -> None:
    """Fail before starting anything, with a reason a person can act on."""
    with socket.socket() as probe:
        if sys.platform == "win32":
            # Windows' SO_REUSEADDR binds a port another process listens on: ask for it exclusively instead
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_EXCLUSIVEADDRUSE, 1)
        else:  # POSIX: a port left in TIME_WAIT by the last run is free, as uvicorn (SO_REUSEADDR too) will see it
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError as exc:
            raise DeploymentError(f"cannot listen on {host}:{port} ({exc.strerror}); pick another with --port") \
                from exc


def write_aws_profile(path: Path, aws: LocalAws) -> None:
    """An AWS config file with profile ``humanparse-local``: this run's endpoint, region and key, created 0600
    (the key opens the runner's S3 as the page and workers use it). For ``AWS_CONFIG_FILE=<path> aws --profile
    humanparse-local s3 cp …`` or ``boto3.Session(profile_name="humanparse-local")``."""
    from humanparse.local.s3local import LOCAL_CREDENTIALS

    text = (f"[profile humanparse-local]\nregion = {aws.region}\nendpoint_url = {aws.endpoint}\n"
            f"aws_access_key_id = {LOCAL_CREDENTIALS['aws_access_key_id']}\n"
            f"aws_secret_access_key = {LOCAL_CREDENTIALS['aws_secret_access_key']}\n"
            "s3 =\n    addressing_style = path\n")
    path = Path(path).expanduser()
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        # an existing file keeps its mode through O_CREAT: narrowed before the key is written (by path: os.fchmod
        # is POSIX-only before Python 3.13; on Windows chmod sets only the read-only flag, and 0600 leaves it off)
        os.chmod(path, 0o600)
        fh.write(text)


class LocalDeployment:
    def __init__(self, settings: Settings, parser: Parser, options: DeploymentOptions) -> None:
        self.settings, self.parser, self.options = settings, parser, options
        self.layout = Layout(settings.upload_prefix, settings.results_prefix)
        self.store = DiskStore(options.data_dir, min_free_bytes=settings.local_min_free_mb << 20)
        self.s3srv: EmbeddedS3 | None = None
        self.worker: Worker | None = None
        self.web: Any = None
        self._web_thread: threading.Thread | None = None
        self.restored = self.resumed = self.processed = 0

    # ------------------------------------------------------------------------------------------ start
    def __enter__(self) -> LocalDeployment:
        try:
            self.start()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def start(self) -> None:
        from humanparse.entries.service import build_service

        opts, base = self.options, self.settings
        check_port(opts.host, opts.port)
        try:
            self.store.open()
        except DataDirError as exc:
            raise DeploymentError(str(exc)) from exc
        self.s3srv = EmbeddedS3(port=opts.s3_port, store=self.store, reserve=self._is_upload,
                                max_uploads=base.local_max_uploads)
        self.s3srv.start()
        # a video chunk must finish within the queue's visibility timeout (120 s, s3local.provision), or the
        # queue hands the same chunk to a second worker while the first still runs
        self.settings = base = base.model_copy(update={"s3_endpoint_url": self.s3srv.endpoint,
                                                      "video_timeout_s": min(base.video_timeout_s, 120.0)})
        buckets = [base.upload_bucket, base.output_bucket]
        aws = self.s3srv.provision(buckets, [opts.origin, f"http://localhost:{opts.port}"])
        self.s3srv.enable_notifications(aws, base.upload_bucket, base.upload_prefix)
        if base.local_aws_config:
            write_aws_profile(base.local_aws_config, aws)
        restored = self.s3srv.restore(buckets)
        self.restored = sum(len(v) for v in restored.values())
        service = build_service(base, self.parser, aws.client("s3"), max_concurrent_parses=opts.workers)
        # a long video's chunk and join messages go on the same queue; the worker hands them to the same handler
        service.trigger.video.fan_out = QueueFanOut(aws.client("sqs"), aws.queue_url)
        self.worker = Worker(aws.client("sqs"), aws.queue_url, service.handler, concurrency=opts.workers)
        self.resumed = self._resume(aws, restored)
        self.worker.start()
        self._start_web(service.app)

    def _is_upload(self, bucket: str, key: str) -> bool:
        """Writes that take the free-space reserve: uploads (results of accepted uploads still fit)."""
        return bucket == self.settings.upload_bucket and self.layout.in_uploads(key)

    def _resume(self, aws: LocalAws, restored: dict[str, list[Any]]) -> int:
        """Queue again, once, every upload without a final status. A ``done`` whose files are not all here
        (one was quarantined) is not final: its status is removed so the parse runs again."""
        base = self.settings
        outputs = {k.name: k for k in restored.get(base.output_bucket, [])}
        bucket = EmbeddedS3.bucket(base.upload_bucket)
        s3 = aws.client("s3")
        from moto.s3.notifications import S3NotificationEvent

        n = 0
        for key in restored.get(base.upload_bucket, []):
            if not self.layout.in_uploads(key.name):
                continue
            job = self.layout.job_id_for_key(key.name)
            status_obj = outputs.get(self.layout.status_key(job))
            status = json.loads(status_obj.value) if status_obj is not None else {}
            if status.get("status") == "failed":
                continue
            if status.get("status") == "done":
                if all(self.layout.result_key(job, f) in outputs for f in status.get("files", [])):
                    continue
                log.warning("job %s: a result file is missing; parsing again", job)
                s3.delete_object(Bucket=base.output_bucket, Key=self.layout.status_key(job))
            send_notification(S3NotificationEvent.OBJECT_CREATED_PUT_EVENT, bucket, key)
            n += 1
        return n

    def _start_web(self, api_app: Any) -> None:
        import uvicorn

        from humanparse.local.connections import ConnectionLimits, uvicorn_options
        from humanparse.local.web import build_site

        site = build_site(api_app, self.options.frontend_dir, auth=bool(self.settings.api_token))
        # idle and slow peers: a connection cap with eviction of the longest-idle, header and keep-alive timeouts
        self.web = uvicorn.Server(uvicorn.Config(site, host=self.options.host, port=self.options.port,
                                                 log_level="warning", access_log=False, timeout_graceful_shutdown=10,
                                                 **uvicorn_options(ConnectionLimits.for_this_process())))
        # In a thread uvicorn installs no signal handlers: stopping is ours (StopSignals).
        self._web_thread = threading.Thread(target=self.web.run, name="web", daemon=True)
        self._web_thread.start()
        deadline = time.time() + 60
        while not self.web.started:
            if not self._web_thread.is_alive() or time.time() > deadline:
                raise DeploymentError(f"the web server did not start on {self.options.origin}")
            time.sleep(0.05)

    # ------------------------------------------------------------------------------------------- run
    def serve(self, signals: StopSignals) -> int:
        """Block until a stop signal (or the web server ends); returns the exit status."""
        while not signals.requested.wait(0.5):
            if self._web_thread is not None and not self._web_thread.is_alive():
                log.error("the web server stopped unexpectedly")
                return 1
        return 0

    def stop(self) -> None:
        """No new work; in-flight parses finish within ``drain_timeout``; then web, S3, the folder's lock."""
        if self.worker is not None:
            self.worker.request_stop()
        if self.web is not None:
            self.web.should_exit = True
        if self.worker is not None and not self.worker.join(self.options.drain_timeout):
            log.warning("parses still running after %.0f s; they resume at the next start",
                        self.options.drain_timeout)
        if self.worker is not None:
            self.processed = self.worker.processed
        if self._web_thread is not None:
            self._web_thread.join(15)
        if self.s3srv is not None:
            self.s3srv.stop()
        self.store.close()
        self.worker, self.web, self._web_thread, self.s3srv = None, None, None, None
