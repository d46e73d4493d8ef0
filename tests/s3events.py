"""S3 notifications made up for tests, in AWS's shape, to replay uploads through the trigger. (The local runner
needs none: its embedded S3 sends its own, for live uploads and for those restored from disk.)"""

from __future__ import annotations

from typing import Any
from urllib.parse import quote_plus


def make_s3_event(bucket: str, key: str, *, size: int, etag: str, event_name: str = "ObjectCreated:Put",
                  region: str = "us-east-1", event_time: str = "1970-01-01T00:00:00.000Z") -> dict[str, Any]:
    """An S3 notification in AWS's shape (key URL-encoded as S3 does), one record for ``bucket``/``key``."""
    return {"Records": [{
        "eventVersion": "2.1", "eventSource": "aws:s3", "awsRegion": region, "eventTime": event_time,
        "eventName": event_name, "userIdentity": {"principalId": "local"},
        "requestParameters": {"sourceIPAddress": "127.0.0.1"}, "responseElements": {},
        "s3": {"s3SchemaVersion": "1.0", "configurationId": "humanparse-uploads",
               "bucket": {"name": bucket, "ownerIdentity": {"principalId": "local"}, "arn": f"arn:aws:s3:::{bucket}"},
               "object": {"key": quote_plus(key, safe="/"), "size": size, "eTag": etag.strip('"'),
                          "sequencer": "0"}}}]}
