"""The emulated S3 → Lambda invocation: N worker threads long-poll the notification queue and call the
Lambda handler with each event, exactly the JSON S3 produced. N bounds how many parses run at once, however
many uploads arrive; the queue holds the rest. A handler exception leaves the message for redelivery
(after 3 receives SQS moves it to the dead-letter queue), as Lambda's retries + DLQ would."""

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


@dataclass
class LambdaContext:
    function_name: str = "humanparse-local"
    aws_request_id: str = field(default_factory=lambda: str(uuid.uuid4()))
    deadline: float = field(default_factory=lambda: time.time() + 900)

    def get_remaining_time_in_millis(self) -> int:
        return max(0, int((self.deadline - time.time()) * 1000))


class Worker:
    def __init__(self, sqs: Any, queue_url: str, handler: Callable[[dict[str, Any], Any], Any], *,
                 concurrency: int = 1, after_each: Callable[[], object] | None = None) -> None:
        self.sqs, self.queue_url, self.handler = sqs, queue_url, handler
        self.concurrency = max(1, concurrency)
        self.after_each = after_each
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self.processed = 0
        self.failed = 0
        self.in_flight = 0
        self._lock = threading.Lock()

    def start(self) -> None:
        for i in range(self.concurrency):
            t = threading.Thread(target=self._loop, name=f"parse-worker-{i}", daemon=True)
            t.start()
            self._threads.append(t)

    def stop(self, timeout: float = 120.0) -> None:
        """Take no new messages; let in-flight parses finish (their results land) for up to ``timeout``."""
        self._stop.set()
        deadline = time.time() + timeout
        for t in self._threads:
            t.join(max(0.0, deadline - time.time()))

    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                resp = self.sqs.receive_message(QueueUrl=self.queue_url, MaxNumberOfMessages=1, WaitTimeSeconds=1)
            except Exception:  # noqa: BLE001 - the embedded server is going away or busy; back off
                if self._stop.wait(0.5):
                    return
                continue
            for msg in resp.get("Messages", []):
                with self._lock:
                    self.in_flight += 1
                try:
                    event = json.loads(msg["Body"])
                    self.handler(event, LambdaContext())
                    self.sqs.delete_message(QueueUrl=self.queue_url, ReceiptHandle=msg["ReceiptHandle"])
                    with self._lock:
                        self.processed += 1
                except Exception:  # noqa: BLE001 - what Lambda would report; the message is retried
                    log.exception("handler failed; the event will be redelivered")
                    with self._lock:
                        self.failed += 1
                    try:
                        self.sqs.change_message_visibility(QueueUrl=self.queue_url,
                                                           ReceiptHandle=msg["ReceiptHandle"], VisibilityTimeout=2)
                    except Exception:  # noqa: BLE001
                        pass
                finally:
                    with self._lock:
                        self.in_flight -= 1
                if self.after_each:
                    try:
                        self.after_each()
                    except Exception:  # noqa: BLE001 - persistence is best effort between jobs
                        log.exception("mirror sync failed")
