"""The emulated S3 → Lambda invocation: N worker threads long-poll the notification queue and call the
Lambda handler with each event, exactly the JSON S3 produced. N bounds how many parses run at once, however
many uploads arrive; the queue holds the rest. A handler exception leaves the message for redelivery
(after 3 receives SQS moves it to the dead-letter queue), as Lambda's retries + DLQ would; when the storage
refused the results (disk full), the event is queued again after ``STORAGE_RETRY_S`` without using up those
three tries, so the job completes once there is room again."""

from __future__ import annotations

import json
import logging
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

log = logging.getLogger("humanparse.local.worker")

STORAGE_RETRY_S = 10


@dataclass
class LambdaContext:
    function_name: str = "humanparse-local"
    aws_request_id: str = field(default_factory=lambda: str(uuid.uuid4()))
    deadline: float = field(default_factory=lambda: time.time() + 900)

    def get_remaining_time_in_millis(self) -> int:
        return max(0, int((self.deadline - time.time()) * 1000))


def storage_unavailable(exc: BaseException) -> bool:
    """True for the embedded S3's answer to a write the disk refused (503 after boto3's own retries)."""
    from botocore.exceptions import ClientError

    if not isinstance(exc, ClientError):
        return False
    err = exc.response.get("Error", {}).get("Code")
    return err in ("ServiceUnavailable", "SlowDown", "503") or \
        exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode") == 503


class Worker:
    def __init__(self, sqs: Any, queue_url: str, handler: Callable[[dict[str, Any], Any], Any], *,
                 concurrency: int = 1) -> None:
        self.sqs, self.queue_url, self.handler = sqs, queue_url, handler
        self.concurrency = max(1, concurrency)
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self.processed = 0
        self._lock = threading.Lock()

    def start(self) -> None:
        for i in range(self.concurrency):
            t = threading.Thread(target=self._loop, name=f"parse-worker-{i}", daemon=True)
            t.start()
            self._threads.append(t)

    def request_stop(self) -> None:
        """Take no new messages (in-flight ones carry on)."""
        self._stop.set()

    def join(self, timeout: float) -> bool:
        """Wait up to ``timeout`` for in-flight parses to finish; True when all did."""
        deadline = time.time() + timeout
        for t in self._threads:
            t.join(max(0.0, deadline - time.time()))
        return not any(t.is_alive() for t in self._threads)

    def stop(self, timeout: float = 120.0) -> bool:
        """Take no new messages; let in-flight parses finish (their results land) for up to ``timeout``."""
        self.request_stop()
        return self.join(timeout)

    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                resp = self.sqs.receive_message(QueueUrl=self.queue_url, MaxNumberOfMessages=1, WaitTimeSeconds=1)
            except Exception:  # noqa: BLE001 - the embedded server is going away or busy; back off
                if self._stop.wait(0.5):
                    return
                continue
            for msg in resp.get("Messages", []):
                self._handle(msg)

    def _handle(self, msg: dict[str, Any]) -> None:
        try:
            self.handler(json.loads(msg["Body"]), LambdaContext())
        except Exception as exc:  # noqa: BLE001 - what Lambda would report; the message is retried
            self._retry(msg, exc)
            return
        self._delete(msg)
        with self._lock:
            self.processed += 1

    def _retry(self, msg: dict[str, Any], exc: Exception) -> None:
        try:
            if storage_unavailable(exc):
                log.error("results could not be stored (%s); the job is retried in %d s", exc, STORAGE_RETRY_S)
                self.sqs.send_message(QueueUrl=self.queue_url, MessageBody=msg["Body"], DelaySeconds=STORAGE_RETRY_S)
                self._delete(msg)
                return
            log.exception("handler failed; the event will be redelivered", exc_info=exc)
            self.sqs.change_message_visibility(QueueUrl=self.queue_url, ReceiptHandle=msg["ReceiptHandle"],
                                               VisibilityTimeout=2)
        except Exception:  # noqa: BLE001 - the queue is going away; the visibility timeout redelivers it
            log.warning("could not reschedule a failed event; it comes back after the visibility timeout")

    def _delete(self, msg: dict[str, Any]) -> None:
        try:
            self.sqs.delete_message(QueueUrl=self.queue_url, ReceiptHandle=msg["ReceiptHandle"])
        except Exception:  # noqa: BLE001 - redelivered later and skipped as already processed
            log.warning("could not delete a handled event; its redelivery will be skipped")
