"""S3 notification events, typed at the edge (the shape AWS delivers to Lambda). Keys arrive URL-encoded
(space → ``+``, ``+`` → ``%2B``, UTF-8 percent-encoded) and are decoded here, once, with ``unquote_plus``.

Hand-written on purpose, not Powertools' ``S3Model`` parser: that model requires fields we never read
(``userIdentity``, ``requestParameters``, ``responseElements``, the bucket's ``ownerIdentity``), which the
notifications of the local runner's embedded S3 (moto) do not carry, so it would refuse every local upload;
its data class ``S3Event`` leaves the key encoded and validates nothing. Only the fields used here are checked."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote_plus

from humanparse.exceptions import EventFormatError

__all__ = ["EventFormatError", "S3ObjectRecord", "is_backfill_batch", "is_s3_event", "parse_backfill_batch",
           "parse_s3_event"]


@dataclass(frozen=True)
class S3ObjectRecord:
    event_name: str  # e.g. "ObjectCreated:Post"
    bucket: str
    key: str  # decoded
    size: int | None
    etag: str | None
    version_id: str | None
    sequencer: str | None

    @property
    def is_create(self) -> bool:
        return self.event_name.startswith("ObjectCreated:")


def is_s3_event(event: Any) -> bool:
    if not isinstance(event, dict):
        return False
    if event.get("Event") == "s3:TestEvent":
        return True
    recs = event.get("Records")
    return isinstance(recs, list) and bool(recs) and all(
        isinstance(r, dict) and r.get("eventSource") == "aws:s3" for r in recs)


def parse_s3_event(event: Any) -> list[S3ObjectRecord]:
    """All records of an S3 notification (several per event is legal). The ``s3:TestEvent`` that S3 sends when
    a notification is configured yields no records."""
    if isinstance(event, dict) and event.get("Event") == "s3:TestEvent":
        return []
    if not isinstance(event, dict) or not isinstance(event.get("Records"), list):
        raise EventFormatError("not an S3 event: no Records list")
    out = []
    for i, rec in enumerate(event["Records"]):
        try:
            if rec.get("eventSource") != "aws:s3":
                raise EventFormatError(f"record {i} is not from aws:s3")
            s3 = rec["s3"]
            obj = s3["object"]
            raw_key = obj["key"]
            if not isinstance(raw_key, str) or not raw_key:
                raise EventFormatError(f"record {i} has no object key")
            size = obj.get("size")
            out.append(S3ObjectRecord(
                event_name=str(rec.get("eventName", "")),
                bucket=str(s3["bucket"]["name"]),
                key=unquote_plus(raw_key),
                size=int(size) if isinstance(size, (int, float)) else None,
                etag=(str(obj["eTag"]).strip('"') if obj.get("eTag") else None),
                version_id=(str(obj["versionId"]) if obj.get("versionId") else None),
                sequencer=(str(obj["sequencer"]) if obj.get("sequencer") else None),
            ))
        except (KeyError, TypeError, AttributeError) as exc:
            raise EventFormatError(f"record {i} is malformed: {exc!r}") from exc
    return out


def is_backfill_batch(event: Any) -> bool:
    return isinstance(event, dict) and isinstance(event.get("Items"), list) and isinstance(event.get("BatchInput"), dict)


def parse_backfill_batch(event: Any) -> list[S3ObjectRecord]:
    """A Step Functions Distributed Map batch (ItemReader = S3 ListObjectsV2, ItemBatcher on):
    ``{"BatchInput": {"bucket": ...}, "Items": [{"Key", "Size", "Etag", ...}]}``. Keys here are raw (not
    URL-encoded), so they are taken as they are."""
    if not is_backfill_batch(event):
        raise EventFormatError("not a backfill batch: needs BatchInput and Items")
    bucket = event["BatchInput"].get("bucket")
    if not isinstance(bucket, str) or not bucket:
        raise EventFormatError("backfill batch has no BatchInput.bucket")
    out = []
    for i, item in enumerate(event["Items"]):
        if not isinstance(item, dict) or not isinstance(item.get("Key"), str) or not item["Key"]:
            raise EventFormatError(f"backfill item {i} has no Key")
        size = item.get("Size")
        etag = item.get("Etag") or item.get("ETag")
        out.append(S3ObjectRecord(event_name="ObjectCreated:Backfill", bucket=bucket, key=item["Key"],
                                  size=int(size) if isinstance(size, (int, float)) else None,
                                  etag=str(etag).strip('"') if etag else None, version_id=None, sequencer=None))
    return out

