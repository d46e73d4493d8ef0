"""S3's presigned-POST checks for the embedded S3 (moto accepts any POST without checking).

AWS refuses a browser form upload unless its policy is signed with the caller's key, not expired, and every
condition holds: exact fields, ``starts-with``, ``content-length-range``, and no form field the policy does
not mention. Field names are case-insensitive, each may appear once, and the form carries exactly one file.
This WSGI middleware applies those rules in front of moto, then hands moto a form rebuilt from exactly what
was checked (path-style, one ``file`` part, no query string), so whatever moto's own parser makes of odd
input (a second ``Key`` field, a smuggled second file, an upper-case media type, a virtual-host ``Host``) it
can only store the object the policy allowed.
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import hashlib
import hmac
import io
import ipaddress
import json
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials
from python_multipart import FormParser
from python_multipart.exceptions import FormParserError
from urllib3.filepost import encode_multipart_formdata
from werkzeug.http import parse_options_header

# hard cap on what the middleware buffers: above the largest policy here (a video: Settings.video_max_bytes,
# 200 MiB) plus the form's own fields; the policy's content-length-range is what refuses a file
MAX_FORM_BYTES = 256 * 1024 * 1024
MAX_FIELDS = 100
# Fields S3 never requires a condition for.
_EXEMPT = {"file", "policy", "x-amz-signature"}
_S3_VHOST = re.compile(r"^(?P<bucket>.+)\.s3(?:[.-][a-z0-9-]+)*\.amazonaws\.com$")

StartResponse = Callable[..., Any]
WsgiApp = Callable[[dict[str, Any], StartResponse], Iterable[bytes]]


class S3Error(Exception):
    """A refusal answered the way S3 answers it: HTTP status, S3 error code, message."""

    def __init__(self, status: str, code: str, message: str) -> None:
        super().__init__(message)
        self.status, self.code, self.message = status, code, message


PolicyViolation = S3Error  # the name callers of ``check_policy`` catch


def _denied(message: str) -> S3Error:
    return S3Error("403 Forbidden", "AccessDenied", message)


def _bad(code: str, message: str) -> S3Error:
    return S3Error("400 Bad Request", code, message)


def xml_error(start_response: StartResponse, err: S3Error) -> list[bytes]:
    from xml.sax.saxutils import escape

    body = (f'<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>{escape(err.code)}</Code>'
            f"<Message>{escape(err.message)}</Message></Error>").encode()
    start_response(err.status, [("Content-Type", "application/xml"), ("Content-Length", str(len(body)))])
    return [body]


# ------------------------------------------------------------------------------------------- the policy
def check_policy(fields: dict[str, str], file_size: int, bucket: str, secrets: dict[str, str],
                 now: dt.datetime | None = None) -> None:
    """Raise ``S3Error`` unless S3 would accept the form. ``fields``: lower-cased names, one value each."""
    _check_signature(fields, secrets)
    policy = _decode_policy(fields["policy"])
    _check_expiration(policy, now or dt.datetime.now(dt.UTC))
    covered = _check_conditions(policy["conditions"], dict(fields, bucket=bucket), file_size)
    extra = sorted(k for k in fields if k not in covered and k not in _EXEMPT and not k.startswith("x-ignore-"))
    if extra:
        raise _denied(f"Invalid according to Policy: Extra input fields: {', '.join(extra)}")


def _check_signature(fields: dict[str, str], secrets: dict[str, str]) -> None:
    """SigV4 only: the policy's signature recomputed with botocore's signer and the key it names."""
    if not fields.get("policy"):
        raise _denied("Bucket POST must contain a policy")
    scope = fields.get("x-amz-credential", "").split("/")
    if fields.get("x-amz-algorithm") != "AWS4-HMAC-SHA256" or len(scope) != 5 or scope[4] != "aws4_request" \
            or not fields.get("x-amz-signature") or not fields.get("x-amz-date", "").startswith(scope[1]):
        raise _denied("Invalid according to Policy: missing or malformed SigV4 credentials")
    if scope[0] not in secrets:
        raise S3Error("403 Forbidden", "InvalidAccessKeyId",
                      "The AWS Access Key Id you provided does not exist in our records.")
    signer = SigV4Auth(Credentials(scope[0], secrets[scope[0]]), scope[3], scope[2])
    request = AWSRequest(method="POST", url="http://localhost/")
    request.context["timestamp"] = fields["x-amz-date"]
    want = signer.signature(fields["policy"], request)
    if not hmac.compare_digest(want, fields["x-amz-signature"]):
        raise S3Error("403 Forbidden", "SignatureDoesNotMatch",
                      "The request signature we calculated does not match the signature you provided")


def _decode_policy(policy_b64: str) -> dict[str, Any]:
    try:
        policy = json.loads(base64.b64decode(policy_b64, validate=True))
    except (ValueError, binascii.Error) as exc:
        raise _bad("InvalidPolicyDocument", "Invalid Policy: malformed") from exc
    if not isinstance(policy, dict) or not isinstance(policy.get("conditions", []), list):
        raise _bad("InvalidPolicyDocument", "Invalid Policy: conditions must be a list")
    policy.setdefault("conditions", [])
    return policy


def _check_expiration(policy: dict[str, Any], now: dt.datetime) -> None:
    raw = policy.get("expiration")
    if not isinstance(raw, str):
        raise _denied("Invalid according to Policy: Policy missing expiration.")
    try:
        exp = dt.datetime.fromisoformat(raw.replace("Z", "+00:00"))
    except ValueError as exc:
        raise _denied("Invalid according to Policy: Invalid 'expiration' value.") from exc
    if exp.tzinfo is None or exp <= now:
        raise _denied("Invalid according to Policy: Policy expired.")


def _check_conditions(conditions: list[Any], values: dict[str, str], file_size: int) -> set[str]:
    """Check every condition; return the (lower-cased) field names they cover."""
    covered: set[str] = set()
    for cond in conditions:
        if isinstance(cond, dict):
            for name, want in cond.items():
                covered.add(_check_match("eq", str(name), want, values))
        elif isinstance(cond, list) and len(cond) == 3 and str(cond[0]).lower() == "content-length-range":
            _check_length(cond[1], cond[2], file_size)
        elif isinstance(cond, list) and len(cond) == 3:
            covered.add(_check_match(str(cond[0]).lower(), str(cond[1]), cond[2], values))
        else:
            raise _bad("InvalidPolicyDocument", f"Invalid Policy: Invalid Condition: {json.dumps(cond)}")
    return covered


def _check_match(op: str, name: str, want: Any, values: dict[str, str]) -> str:
    field = name.lstrip("$").lower()
    got = values.get(field, "")
    ok = got == want if op == "eq" else isinstance(want, str) and got.startswith(want) if op == "starts-with" \
        else False
    if not ok:
        raise _denied(f"Invalid according to Policy: Policy Condition failed: {json.dumps([op, name, want])}")
    return field


def _check_length(lo: Any, hi: Any, file_size: int) -> None:
    try:
        low, high = int(lo), int(hi)
    except (TypeError, ValueError) as exc:
        raise _bad("InvalidPolicyDocument", "Invalid Policy: content-length-range needs two integers") from exc
    if file_size > high:
        raise _bad("EntityTooLarge", "Your proposed upload exceeds the maximum allowed size")
    if file_size < low:
        raise _bad("EntityTooSmall", "Your proposed upload is smaller than the minimum allowed size")


def check_checksum(fields: dict[str, str], file: bytes) -> None:
    """S3's additional checksum on a form upload: ``x-amz-checksum-sha256`` (base64 of the 32-byte digest)
    must be the SHA-256 of the file, else ``400 BadDigest`` and nothing is stored; a malformed value or an
    ``x-amz-checksum-algorithm`` other than the value's algorithm is ``400 InvalidRequest``."""
    claimed = fields.get("x-amz-checksum-sha256")
    algorithm = fields.get("x-amz-checksum-algorithm")
    if claimed is None:
        return
    if algorithm is not None and algorithm.upper() != "SHA256":
        raise _bad("InvalidRequest", "Value for x-amz-checksum-algorithm does not match the checksum provided.")
    try:
        digest = base64.b64decode(claimed, validate=True)
    except (ValueError, binascii.Error) as exc:
        raise _bad("InvalidRequest", "Value for x-amz-checksum-sha256 header is invalid.") from exc
    if len(digest) != 32:
        raise _bad("InvalidRequest", "Value for x-amz-checksum-sha256 header is invalid.")
    if not hmac.compare_digest(digest, hashlib.sha256(file).digest()):
        raise _bad("BadDigest", "The SHA256 you specified did not match the calculated checksum.")


# --------------------------------------------------------------------------------------------- the form
@dataclass
class PostForm:
    """A browser form upload as S3 reads it: fields by lower-cased name (each once, original spelling kept
    for moto), the one file's bytes and name. Fields after the file are ignored, as S3 ignores them."""

    fields: dict[str, str]
    names: dict[str, str]
    file: bytes
    filename: str


def is_form_post(environ: dict[str, Any]) -> bool:
    """An unsigned ``POST`` with a ``multipart/form-data`` body in any spelling (S3 reads the media type
    case-insensitively)."""
    if environ.get("REQUEST_METHOD") != "POST" or environ.get("HTTP_AUTHORIZATION"):
        return False
    return parse_options_header(environ.get("CONTENT_TYPE", ""))[0].lower() == "multipart/form-data"


def parse_post_form(body: bytes, content_type: str) -> PostForm:
    """Parse with python-multipart, in order; refuse duplicate names and anything but exactly one file."""
    boundary = parse_options_header(content_type)[1].get("boundary")
    if not boundary:
        raise _bad("MalformedPOSTRequest", "The body of your POST request is not well-formed multipart/form-data.")
    parts: list[tuple[str, bytes, str | None]] = []  # (name, value, filename or None) in body order
    parser = FormParser("multipart/form-data", lambda f: parts.append(_field_part(f)),
                        lambda f: parts.append(_file_part(f)), boundary=boundary,
                        config={"MAX_MEMORY_FILE_SIZE": float("inf"), "UPLOAD_ERROR_ON_BAD_CTE": True,
                                "MAX_FIELDS": MAX_FIELDS})
    try:
        parser.write(body)
        parser.finalize()
    except (FormParserError, ValueError) as exc:
        raise _bad("MalformedPOSTRequest",
                   "The body of your POST request is not well-formed multipart/form-data.") from exc
    return _form_from_parts(parts)


def _field_part(f: Any) -> tuple[str, bytes, str | None]:
    return (f.field_name or b"").decode("utf-8", "replace"), f.value or b"", None


def _file_part(f: Any) -> tuple[str, bytes, str | None]:
    f.file_object.seek(0)
    return ((f.field_name or b"").decode("utf-8", "replace"), f.file_object.read(),
            (f.file_name or b"").decode("utf-8", "replace"))


def _form_from_parts(parts: list[tuple[str, bytes, str | None]]) -> PostForm:
    if sum(1 for name, _, filename in parts if filename is not None or name.lower() == "file") != 1:
        raise _bad("InvalidArgument", "POST requires exactly one file upload per request.")
    fields: dict[str, str] = {}
    names: dict[str, str] = {}
    for name, value, filename in parts:
        if name.lower() == "file" and "key" not in fields:
            raise _bad("InvalidArgument", "Bucket POST must contain a field named 'key'.")
        if name.lower() == "file":
            return PostForm(fields, names, value, filename or "")
        if name.lower() in fields:
            raise _bad("InvalidArgument", f"POST requires exactly one value per field: {name!r} repeated.")
        fields[name.lower()], names[name.lower()] = value.decode("utf-8", "replace"), name
    raise _bad("InvalidArgument", "POST requires exactly one file upload per request.")  # a file not named file


def form_bucket(host: str, path: str) -> str:
    """The bucket a form POST targets: ``<bucket>.s3…amazonaws.com`` / ``<bucket>.<name>`` (virtual host,
    path ``/``) or ``/<bucket>`` (path style). Anything else is not a form upload S3 accepts."""
    hostname = host.rsplit(":", 1)[0] if not host.endswith("]") else host
    segments = path.strip("/")
    if _is_virtual_host(hostname):
        m = _S3_VHOST.match(hostname)
        bucket = m.group("bucket") if m else hostname.split(".", 1)[0]
        if not segments:
            return bucket
    elif segments and "/" not in segments:
        return segments
    raise S3Error("405 Method Not Allowed", "MethodNotAllowed",
                  "The specified method is not allowed against this resource.")


def _is_virtual_host(hostname: str) -> bool:
    try:
        ipaddress.ip_address(hostname.strip("[]"))
        return False
    except ValueError:
        return "." in hostname and not hostname.startswith("localhost")


def rebuild_form(form: PostForm) -> tuple[bytes, str]:
    """The checked form as a fresh multipart body (fields as first spelled, then the single file)."""
    fields: list[Any] = [(form.names[k], v) for k, v in form.fields.items()]
    fields.append(("file", (form.filename or "file", form.file, "application/octet-stream")))
    return encode_multipart_formdata(fields)


# ---------------------------------------------------------------------------------------- the middleware
class PostPolicyMiddleware:
    """Checks browser-form POSTs (any media-type case, path- or virtual-host style) before moto sees them,
    and forwards only the rebuilt, checked form to ``POST /<bucket>`` on this server's own address."""

    def __init__(self, app: WsgiApp, secrets: dict[str, str]) -> None:
        self.app, self.secrets = app, secrets

    def __call__(self, environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        if not is_form_post(environ):
            return self.app(environ, start_response)
        try:
            bucket, form = self._checked_form(environ)
        except S3Error as err:
            return xml_error(start_response, err)
        body, ctype = rebuild_form(form)
        environ.update({"wsgi.input": io.BytesIO(body), "CONTENT_LENGTH": str(len(body)), "CONTENT_TYPE": ctype,
                        "PATH_INFO": f"/{bucket}", "QUERY_STRING": "", "REQUEST_URI": f"/{bucket}",
                        "RAW_URI": f"/{bucket}",
                        "HTTP_HOST": f"{environ.get('SERVER_NAME', '127.0.0.1')}:{environ.get('SERVER_PORT', '')}"})
        return self.app(environ, start_response)

    def _checked_form(self, environ: dict[str, Any]) -> tuple[str, PostForm]:
        bucket = form_bucket(environ.get("HTTP_HOST", ""), environ.get("PATH_INFO", ""))
        form = parse_post_form(read_body(environ, MAX_FORM_BYTES), environ.get("CONTENT_TYPE", ""))
        check_policy(form.fields, len(form.file), bucket, self.secrets)
        check_checksum(form.fields, form.file)
        return bucket, form


def read_body(environ: dict[str, Any], limit: int) -> bytes:
    """The request body, which must declare its length (S3: ``MissingContentLength``) and fit ``limit``."""
    try:
        length = int(environ.get("CONTENT_LENGTH") or -1)
    except ValueError:
        length = -1
    if length < 0:
        raise S3Error("411 Length Required", "MissingContentLength",
                      "You must provide the Content-Length HTTP header.")
    if length > limit:
        raise _bad("EntityTooLarge", "Your proposed upload exceeds the maximum allowed size")
    body: bytes = environ["wsgi.input"].read(length) if length else b""
    if len(body) != length:
        raise _bad("IncompleteBody", "You did not provide the number of bytes specified by the Content-Length.")
    return body
