"""S3's presigned-POST policy checks for the embedded S3 (moto accepts any POST without checking).

AWS refuses a browser form upload unless its policy is signed with the caller's key, not expired, and every
condition holds: exact fields, ``starts-with``, ``content-length-range``, and no form field the policy does
not mention. This WSGI middleware applies those rules in front of moto, so the local runner refuses an
oversized or wrong-type upload exactly where AWS would: at the storage, before any handler runs.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import hmac
import io
import json
from collections.abc import Callable, Iterable
from typing import Any

from werkzeug.formparser import parse_form_data

MAX_FORM_BYTES = 64 * 1024 * 1024  # hard cap on what the middleware buffers (far above any policy here)
# Fields S3 never requires a condition for.
_EXEMPT = {"file", "policy", "x-amz-signature", "awsaccesskeyid", "signature"}

StartResponse = Callable[..., Any]
WsgiApp = Callable[[dict[str, Any], StartResponse], Iterable[bytes]]


def _xml_error(start_response: StartResponse, status: str, code: str, message: str) -> list[bytes]:
    body = (f'<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>{code}</Code><Message>{message}</Message>'
            "</Error>").encode()
    start_response(status, [("Content-Type", "application/xml"), ("Content-Length", str(len(body))),
                            ("Access-Control-Allow-Origin", "*")])
    return [body]


def _signing_key(secret: str, date: str, region: str, service: str) -> bytes:
    k = hmac.new(("AWS4" + secret).encode(), date.encode(), hashlib.sha256).digest()
    for part in (region, service, "aws4_request"):
        k = hmac.new(k, part.encode(), hashlib.sha256).digest()
    return k


class PolicyViolation(Exception):
    def __init__(self, status: str, code: str, message: str) -> None:
        super().__init__(message)
        self.status, self.code, self.message = status, code, message


def check_policy(fields: dict[str, str], file_size: int, bucket: str, secrets: dict[str, str],
                 now: dt.datetime | None = None) -> None:
    """Raise ``PolicyViolation`` unless the form would be accepted by S3. ``fields`` are lower-cased names."""
    policy_b64 = fields.get("policy")
    if not policy_b64:
        raise PolicyViolation("403 Forbidden", "AccessDenied", "Bucket POST must contain a policy")
    sig, cred = fields.get("x-amz-signature"), fields.get("x-amz-credential", "")
    parts = cred.split("/")
    if sig and len(parts) == 5 and parts[0] in secrets:  # SigV4
        want = hmac.new(_signing_key(secrets[parts[0]], parts[1], parts[2], parts[3]), policy_b64.encode(),
                        hashlib.sha256).hexdigest()
        good = hmac.compare_digest(want, sig)
    elif fields.get("signature") and fields.get("awsaccesskeyid") in secrets:  # legacy SigV2
        key = secrets[fields["awsaccesskeyid"]]
        want = base64.b64encode(hmac.new(key.encode(), policy_b64.encode(), hashlib.sha1).digest()).decode()
        good = hmac.compare_digest(want, fields["signature"])
    else:
        raise PolicyViolation("403 Forbidden", "AccessDenied", "Invalid according to Policy: missing credentials")
    if not good:
        raise PolicyViolation("403 Forbidden", "SignatureDoesNotMatch",
                              "The request signature we calculated does not match the signature you provided")
    try:
        policy = json.loads(base64.b64decode(policy_b64))
    except (ValueError, TypeError) as exc:
        raise PolicyViolation("400 Bad Request", "InvalidPolicyDocument", "Invalid Policy: malformed") from exc
    now = now or dt.datetime.now(dt.UTC)
    exp = dt.datetime.fromisoformat(str(policy.get("expiration", "")).replace("Z", "+00:00"))
    if exp <= now:
        raise PolicyViolation("403 Forbidden", "AccessDenied", "Invalid according to Policy: Policy expired.")
    values = dict(fields, bucket=bucket)
    covered = set()
    for cond in policy.get("conditions", []):
        if isinstance(cond, dict):
            for name, val in cond.items():
                covered.add(name.lower())
                if values.get(name.lower()) != val:
                    raise PolicyViolation("403 Forbidden", "AccessDenied",
                                          f"Invalid according to Policy: Policy Condition failed: "
                                          f'["eq", "${name}", "{val}"]')
        elif isinstance(cond, list) and len(cond) == 3:
            op = str(cond[0]).lower()
            if op == "content-length-range":
                lo, hi = int(cond[1]), int(cond[2])
                if file_size > hi:
                    raise PolicyViolation("400 Bad Request", "EntityTooLarge",
                                          "Your proposed upload exceeds the maximum allowed size")
                if file_size < lo:
                    raise PolicyViolation("400 Bad Request", "EntityTooSmall",
                                          "Your proposed upload is smaller than the minimum allowed size")
                continue
            name = str(cond[1]).lstrip("$").lower()
            covered.add(name)
            got = values.get(name, "")
            ok = got == cond[2] if op == "eq" else got.startswith(str(cond[2])) if op == "starts-with" else False
            if not ok:
                raise PolicyViolation("403 Forbidden", "AccessDenied",
                                      f"Invalid according to Policy: Policy Condition failed: {json.dumps(cond)}")
    extra = [k for k in fields if k not in covered and k not in _EXEMPT and not k.startswith("x-ignore-")]
    if extra:
        raise PolicyViolation("403 Forbidden", "AccessDenied",
                              f"Invalid according to Policy: Extra input fields: {', '.join(sorted(extra))}")


class PostPolicyMiddleware:
    """Checks browser-form POSTs (``POST /<bucket>`` multipart) before moto sees them."""

    def __init__(self, app: WsgiApp, secrets: dict[str, str]) -> None:
        self.app, self.secrets = app, secrets

    def __call__(self, environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        ctype = environ.get("CONTENT_TYPE", "")
        path = environ.get("PATH_INFO", "")
        if environ.get("REQUEST_METHOD") != "POST" or not ctype.startswith("multipart/form-data") \
                or path.strip("/").count("/") != 0 or not path.strip("/"):
            return self.app(environ, start_response)
        length = int(environ.get("CONTENT_LENGTH") or 0)
        if length > MAX_FORM_BYTES:
            return _xml_error(start_response, "400 Bad Request", "EntityTooLarge",
                              "Your proposed upload exceeds the maximum allowed size")
        body = environ["wsgi.input"].read(length) if length else environ["wsgi.input"].read(MAX_FORM_BYTES + 1)
        probe = dict(environ, **{"wsgi.input": io.BytesIO(body), "CONTENT_LENGTH": str(len(body))})
        _, form, files = parse_form_data(probe)
        fields = {k.lower(): v for k, v in form.items()}
        f = files.get("file")
        size = len(f.read()) if f is not None else 0
        try:
            check_policy(fields, size, path.strip("/"), self.secrets)
        except PolicyViolation as v:
            return _xml_error(start_response, v.status, v.code, v.message)
        environ["wsgi.input"] = io.BytesIO(body)
        environ["CONTENT_LENGTH"] = str(len(body))
        return self.app(environ, start_response)
