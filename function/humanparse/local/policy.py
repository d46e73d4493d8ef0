"""S3's presigned-POST checks for the embedded S3 (moto accepts any POST without checking).

AWS refuses a browser form upload unless its policy is signed with the caller's key, not expired, and every
condition holds: exact fields, ``starts-with``, ``content-length-range``, and no form field the policy does
not mention. Field names are case-insensitive, each may appear once, and the form carries exactly one file.
This WSGI middleware applies those rules in front of moto while the form streams: the fields and the policy
are checked when the file part begins (a refused form costs one 64 KiB chunk of memory, whatever its size),
the file goes to a temp file in pieces, counted against the policy's length range and hashed as it arrives.
moto's own form parser never sees the body: what passed is handed on as one ``CheckedUpload`` (bucket, key,
fields, file on disk), so odd input (a second ``Key`` field, a smuggled second file, an upper-case media
type, a virtual-host ``Host``) can only store the object the policy allowed.
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
import socket
import tempfile
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, BinaryIO, cast

from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials
from python_multipart import MultipartParser
from python_multipart.exceptions import FormParserError
from werkzeug.http import parse_options_header

# the largest form body read at all: above the largest policy here (a video: Settings.video_max_bytes, 200 MiB)
# plus the form's own fields; the policy's content-length-range is what refuses a file, while it streams
MAX_FORM_BYTES = 256 * 1024 * 1024
MAX_FIELDS = 100
MAX_KEY_BYTES = 1024  # S3's longest key, in UTF-8 bytes (KeyTooLongError above)
MAX_PRE_DATA = 20 * 1024  # S3's limit on the fields before the file (MaxPostPreDataLengthExceeded)
CHUNK = 64 * 1024  # what one form upload holds in memory at a time
MAX_UPLOADS = 16  # form uploads streaming at once per process (Settings.local_max_uploads); then 503 SlowDown
# a form's whole body must arrive within max(MIN_BODY_S, its length / MIN_BODY_RATE): 200 MB at 64 KiB/s is 53 min
MIN_BODY_S = 60.0
MIN_BODY_RATE = 64 * 1024
RETRY_AFTER_S = 5
UPLOAD_ENVIRON = "humanparse.form_upload"  # where a checked upload travels from the gate to moto
# Fields S3 never requires a condition for.
_EXEMPT = {"file", "policy", "x-amz-signature"}
_S3_VHOST = re.compile(r"^(?P<bucket>.+)\.s3(?:[.-][a-z0-9-]+)*\.amazonaws\.com$")

StartResponse = Callable[..., Any]
WsgiApp = Callable[[dict[str, Any], StartResponse], Iterable[bytes]]


class S3Error(Exception):
    """A refusal answered the way S3 answers it: HTTP status, S3 error code, message."""

    def __init__(self, status: str, code: str, message: str, headers: list[tuple[str, str]] | None = None) -> None:
        super().__init__(message)
        self.status, self.code, self.message, self.headers = status, code, message, headers or []




def _denied(message: str) -> S3Error:
    return S3Error("403 Forbidden", "AccessDenied", message)


def _bad(code: str, message: str) -> S3Error:
    return S3Error("400 Bad Request", code, message)


def xml_error(start_response: StartResponse, err: S3Error) -> list[bytes]:
    from xml.sax.saxutils import escape

    body = (f'<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>{escape(err.code)}</Code>'
            f"<Message>{escape(err.message)}</Message></Error>").encode()
    start_response(err.status, [("Content-Type", "application/xml"), ("Content-Length", str(len(body))), *err.headers])
    return [body]


# ------------------------------------------------------------------------------------------- the policy
def check_policy(fields: dict[str, str], file_size: int, bucket: str, secrets: dict[str, str],
                 now: dt.datetime | None = None) -> None:
    """Raise ``S3Error`` unless S3 would accept the form. ``fields``: lower-cased names, one value each."""
    length_range = check_policy_fields(fields, bucket, secrets, now)
    if length_range is not None:
        _check_length(*length_range, file_size)


def check_policy_fields(fields: dict[str, str], bucket: str, secrets: dict[str, str],
                        now: dt.datetime | None = None) -> tuple[int, int] | None:
    """Everything of the policy that the fields alone decide (signature, expiry, conditions, no extra
    field): checked before a byte of the file is accepted. Returns the ``content-length-range`` (or None),
    which the file is held to while it streams."""
    _check_signature(fields, secrets)
    policy = _decode_policy(fields["policy"])
    _check_expiration(policy, now or dt.datetime.now(dt.UTC))
    covered, length_range = _check_conditions(policy["conditions"], dict(fields, bucket=bucket))
    extra = sorted(k for k in fields if k not in covered and k not in _EXEMPT and not k.startswith("x-ignore-"))
    if extra:
        raise _denied(f"Invalid according to Policy: Extra input fields: {', '.join(extra)}")
    return length_range


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


def _check_conditions(conditions: list[Any], values: dict[str, str]) -> tuple[set[str], tuple[int, int] | None]:
    """Check every condition but the length; return the (lower-cased) field names they cover and the
    ``content-length-range`` (the tightest, if given more than once)."""
    covered: set[str] = set()
    length_range: tuple[int, int] | None = None
    for cond in conditions:
        if isinstance(cond, dict):
            for name, want in cond.items():
                covered.add(_check_match("eq", str(name), want, values))
        elif isinstance(cond, list) and len(cond) == 3 and str(cond[0]).lower() == "content-length-range":
            lo, hi = _length_range(cond[1], cond[2])
            length_range = (lo, hi) if length_range is None else (max(lo, length_range[0]), min(hi, length_range[1]))
        elif isinstance(cond, list) and len(cond) == 3:
            covered.add(_check_match(str(cond[0]).lower(), str(cond[1]), cond[2], values))
        else:
            raise _bad("InvalidPolicyDocument", f"Invalid Policy: Invalid Condition: {json.dumps(cond)}")
    return covered, length_range


def _check_match(op: str, name: str, want: Any, values: dict[str, str]) -> str:
    field = name.lstrip("$").lower()
    got = values.get(field, "")
    ok = got == want if op == "eq" else isinstance(want, str) and got.startswith(want) if op == "starts-with" \
        else False
    if not ok:
        raise _denied(f"Invalid according to Policy: Policy Condition failed: {json.dumps([op, name, want])}")
    return field


def _length_range(lo: Any, hi: Any) -> tuple[int, int]:
    try:
        return int(lo), int(hi)
    except (TypeError, ValueError) as exc:
        raise _bad("InvalidPolicyDocument", "Invalid Policy: content-length-range needs two integers") from exc


def _check_length(low: int, high: int, file_size: int) -> None:
    if file_size > high:
        raise _too_large()
    if file_size < low:
        raise _bad("EntityTooSmall", "Your proposed upload is smaller than the minimum allowed size")


def _too_large() -> S3Error:
    return _bad("EntityTooLarge", "Your proposed upload exceeds the maximum allowed size")


def check_checksum(fields: dict[str, str], file: bytes) -> None:
    """``check_checksum_digest`` for a file held in memory."""
    check_checksum_digest(fields, hashlib.sha256(file).digest())


def check_checksum_digest(fields: dict[str, str], sha256: bytes) -> None:
    """S3's additional checksum on a form upload: ``x-amz-checksum-sha256`` (base64 of the 32-byte digest)
    must be the SHA-256 of the file (``sha256``: its digest, taken while it streamed), else ``400 BadDigest``
    and nothing is stored; a malformed value or an ``x-amz-checksum-algorithm`` other than the value's
    algorithm is ``400 InvalidRequest``."""
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
    if not hmac.compare_digest(digest, sha256):
        raise _bad("BadDigest", "The SHA256 you specified did not match the calculated checksum.")


# --------------------------------------------------------------------------------------------- the form
@dataclass
class CheckedUpload:
    """A browser form upload that passed every check. The file is on disk (``file``: an unnamed temp file the
    receiver hands over), hashed while it streamed. ``fields``: lower-cased names, each once; ``names``: how
    each was spelled (moto reads metadata fields by name)."""

    bucket: str
    key: str
    fields: dict[str, str]
    names: dict[str, str]
    file: BinaryIO
    size: int
    md5: str  # hex: S3's ETag of a single-part object
    sha256: str  # hex


def is_form_post(environ: dict[str, Any]) -> bool:
    """An unsigned ``POST`` with a ``multipart/form-data`` body in any spelling (S3 reads the media type
    case-insensitively)."""
    if environ.get("REQUEST_METHOD") != "POST" or environ.get("HTTP_AUTHORIZATION"):
        return False
    return parse_options_header(environ.get("CONTENT_TYPE", ""))[0].lower() == "multipart/form-data"


def _malformed() -> S3Error:
    return _bad("MalformedPOSTRequest", "The body of your POST request is not well-formed multipart/form-data.")


def _one_file() -> S3Error:
    return _bad("InvalidArgument", "POST requires exactly one file upload per request.")


class FormReader:
    """python-multipart's push parser, fed the body in pieces. Fields before the file are kept (at most
    ``MAX_FIELDS``, ``MAX_PRE_DATA`` bytes in all, as S3); when the file part begins ``on_file(fields)`` runs
    (the policy check: it raises to refuse before a byte of the file is kept); file bytes go to ``sink`` as
    they arrive. Fields after the file are ignored, as S3 ignores them, but a second file part is refused."""

    def __init__(self, boundary: str, on_file: Callable[[dict[str, str]], None],
                 sink: Callable[[bytes], None]) -> None:
        self.fields: dict[str, str] = {}
        self.names: dict[str, str] = {}
        self.on_file, self.sink = on_file, sink
        self.files = 0
        self.ended = False
        self._pre_data = 0
        self._kind = ""  # the current part: "field", "file" or "skip"
        self._name = ""
        self._value = bytearray()
        self._hfield, self._hvalue = bytearray(), bytearray()
        self._headers: dict[str, str] = {}
        self.parser = MultipartParser(boundary.encode("latin-1"), callbacks={
            "on_part_begin": self._part_begin, "on_header_field": self._header_field,
            "on_header_value": self._header_value, "on_header_end": self._header_end,
            "on_headers_finished": self._headers_finished, "on_part_data": self._data,
            "on_part_end": self._part_end, "on_end": self._end})

    def write(self, chunk: bytes) -> None:
        try:
            self.parser.write(chunk)
        except (FormParserError, ValueError) as exc:
            raise _malformed() from exc

    def finish(self) -> None:
        """After the last byte: the body must have ended with the closing boundary, and held the file."""
        self.parser.finalize()
        if not self.ended:
            raise _malformed()
        if self.files != 1:
            raise _one_file()

    def _part_begin(self) -> None:
        self._headers, self._kind, self._value = {}, "", bytearray()

    def _header_field(self, data: bytes, start: int, end: int) -> None:
        self._hfield += data[start:end]

    def _header_value(self, data: bytes, start: int, end: int) -> None:
        self._hvalue += data[start:end]

    def _header_end(self) -> None:
        self._headers[bytes(self._hfield).decode("latin-1").strip().lower()] = bytes(self._hvalue).decode("latin-1")
        self._hfield, self._hvalue = bytearray(), bytearray()

    def _headers_finished(self) -> None:
        if self._headers.get("content-transfer-encoding", "binary").strip().lower() not in ("binary", "7bit", "8bit"):
            raise _malformed()  # S3 does not decode transfer encodings
        disposition, params = parse_options_header(self._headers.get("content-disposition", ""))
        if disposition.lower() != "form-data" or "name" not in params:
            raise _malformed()
        self._name = params["name"].encode("latin-1", "replace").decode("utf-8", "replace")
        lower = self._name.lower()
        if "filename" in params or lower == "file":
            self.files += 1
            if self.files > 1 or lower != "file":
                raise _one_file()
            if "key" not in self.fields:
                raise _bad("InvalidArgument", "Bucket POST must contain a field named 'key'.")
            self.on_file(self.fields)
            self._kind = "file"
        elif self.files:
            self._kind = "skip"
        elif lower in self.fields:
            raise _bad("InvalidArgument", f"POST requires exactly one value per field: {self._name!r} repeated.")
        elif len(self.fields) >= MAX_FIELDS:
            raise _bad("InvalidArgument", f"POST accepts at most {MAX_FIELDS} form fields.")
        else:
            self._kind = "field"

    def _data(self, data: bytes, start: int, end: int) -> None:
        if self._kind == "file":
            self.sink(data[start:end])
        elif self._kind == "field":
            self._pre_data += end - start
            if self._pre_data > MAX_PRE_DATA:
                raise _bad("MaxPostPreDataLengthExceeded",
                           "Your POST request fields preceeding the upload file were too large.")
            self._value += data[start:end]

    def _part_end(self) -> None:
        if self._kind == "field":
            self.fields[self._name.lower()] = bytes(self._value).decode("utf-8", "replace")
            self.names[self._name.lower()] = self._name
        self._kind = ""

    def _end(self) -> None:
        self.ended = True


def form_bucket(host: str, path: str) -> str:
    """The bucket a form POST targets: ``<bucket>.s3…amazonaws.com`` / ``<bucket>.<name>`` (virtual host,
    path ``/``) or ``/<bucket>`` (path style). Anything else is not a form upload S3 accepts."""
    hostname = host.rsplit(":", 1)[0] if not host.endswith("]") else host
    segments = path.strip("/")
    if is_virtual_host(hostname):
        m = _S3_VHOST.match(hostname)
        bucket = m.group("bucket") if m else hostname.split(".", 1)[0]
        if not segments:
            return bucket
    elif segments and "/" not in segments:
        return segments
    raise S3Error("405 Method Not Allowed", "MethodNotAllowed",
                  "The specified method is not allowed against this resource.")


def is_virtual_host(hostname: str) -> bool:
    try:
        ipaddress.ip_address(hostname.strip("[]"))
        return False
    except ValueError:
        return "." in hostname and not hostname.startswith("localhost")


# ---------------------------------------------------------------------------------------- the middleware
class PostPolicyMiddleware:
    """Checks browser-form POSTs (any media-type case, path- or virtual-host style) while they stream: the
    fields and the policy before the file part is accepted, the file's length and checksum as it arrives
    (to an unnamed temp file, in ``CHUNK`` pieces). What passed goes on to ``app`` as a ``CheckedUpload`` in
    ``environ[UPLOAD_ENVIRON]`` on ``POST /<bucket>`` of this server's own address (``s3local.FormStore``
    stores it). At most ``max_uploads`` files stream at once; one more is ``503 SlowDown`` + ``Retry-After``."""

    def __init__(self, app: WsgiApp, secrets: dict[str, str], *, max_uploads: int = MAX_UPLOADS,
                 spool_dir: str | None = None) -> None:
        self.app, self.secrets, self.spool_dir = app, secrets, spool_dir
        self.slots = threading.BoundedSemaphore(max_uploads)

    def __call__(self, environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        if not is_form_post(environ):
            return self.app(environ, start_response)
        try:
            upload = self._receive(environ)
        except S3Error as err:
            return xml_error(start_response, err)
        bucket = upload.bucket
        environ.update({UPLOAD_ENVIRON: upload, "wsgi.input": io.BytesIO(b""), "CONTENT_LENGTH": "0",
                        "PATH_INFO": f"/{bucket}", "QUERY_STRING": "", "REQUEST_URI": f"/{bucket}",
                        "RAW_URI": f"/{bucket}",
                        "HTTP_HOST": f"{environ.get('SERVER_NAME', '127.0.0.1')}:{environ.get('SERVER_PORT', '')}"})
        try:
            return self.app(environ, start_response)
        finally:
            if environ.get(UPLOAD_ENVIRON) is upload:  # nobody took the file over
                upload.file.close()

    def _receive(self, environ: dict[str, Any]) -> CheckedUpload:
        """Read the form in ``CHUNK`` pieces; on any refusal the rest of the body is read and dropped (so the
        client sees the answer, not a reset) and the temp file is gone. A body declared over ``MAX_FORM_BYTES``
        is not read at all: the server stops reading the connection."""
        try:
            length = declared_length(environ, MAX_FORM_BYTES)
        except S3Error:
            stop_reading(environ)
            raise
        stream, remaining = environ["wsgi.input"], length
        spool: BinaryIO | None = None
        receiver: _FileReceiver | None = None
        deadline = time.monotonic() + max(MIN_BODY_S, length / MIN_BODY_RATE)
        try:
            bucket = form_bucket(environ.get("HTTP_HOST", ""), environ.get("PATH_INFO", ""))
            boundary = parse_options_header(environ.get("CONTENT_TYPE", ""))[1].get("boundary")
            if not boundary:
                raise _malformed()
            # cast: on Windows TemporaryFile is a wrapper object, not a BinaryIO subclass (same methods)
            spool = cast(BinaryIO, tempfile.TemporaryFile(dir=self.spool_dir))  # noqa: SIM115 - handed to moto
            receiver = _FileReceiver(spool, self.slots, bucket, self.secrets)
            reader = FormReader(boundary, receiver.start, receiver.write)
            read = getattr(stream, "read1", stream.read)  # what has arrived: read() would wait for a whole piece
            while remaining:
                chunk = read(min(CHUNK, remaining))
                if not chunk:
                    raise _bad("IncompleteBody",
                               "You did not provide the number of bytes specified by the Content-Length.")
                remaining -= len(chunk)
                reader.write(chunk)
                if time.monotonic() > deadline:  # a trickle would hold its upload slot for ever
                    raise S3Error("400 Bad Request", "RequestTimeout", "Your socket connection to the server was "
                                  "not read from or written to within the timeout period.")
            reader.finish()
            receiver.finish(reader.fields)
        except BaseException:
            if spool is not None:
                spool.close()
            discard(environ, remaining, deadline)
            raise
        finally:
            if receiver is not None:
                receiver.release()
        spool.seek(0)
        return CheckedUpload(bucket, reader.fields["key"], reader.fields, reader.names, spool, receiver.size,
                             receiver.md5.hexdigest(), receiver.sha256.hexdigest())


class _FileReceiver:
    """The file part's side of a form: the policy check and an upload slot when it begins, then its bytes
    to ``spool``, counted against the policy's length range and hashed (MD5 for the ETag, SHA-256)."""

    def __init__(self, spool: BinaryIO, slots: threading.BoundedSemaphore, bucket: str,
                 secrets: dict[str, str]) -> None:
        self.spool, self.slots, self.bucket, self.secrets = spool, slots, bucket, secrets
        self.size, self.held = 0, False
        self.length_range: tuple[int, int] | None = None
        self.md5, self.sha256 = hashlib.md5(usedforsecurity=False), hashlib.sha256()

    def start(self, fields: dict[str, str]) -> None:
        self.length_range = check_policy_fields(fields, self.bucket, self.secrets)
        if len(fields["key"].encode("utf-8")) > MAX_KEY_BYTES:
            raise _bad("KeyTooLongError", "Your key is too long")
        if not self.slots.acquire(blocking=False):
            raise S3Error("503 Service Unavailable", "SlowDown",
                          "Too many uploads at once; please retry shortly.", [("Retry-After", str(RETRY_AFTER_S))])
        self.held = True

    def write(self, data: bytes) -> None:
        self.size += len(data)
        if self.length_range is not None and self.size > self.length_range[1]:
            raise _too_large()
        self.spool.write(data)
        self.md5.update(data)
        self.sha256.update(data)

    def finish(self, fields: dict[str, str]) -> None:
        if self.length_range is not None:
            _check_length(*self.length_range, self.size)
        check_checksum_digest(fields, self.sha256.digest())

    def release(self) -> None:
        if self.held:
            self.slots.release()
            self.held = False


def declared_length(environ: dict[str, Any], limit: int) -> int:
    """The body's declared length, which must be there (S3: ``MissingContentLength``) and fit ``limit``."""
    try:
        length = int(environ.get("CONTENT_LENGTH") or -1)
    except ValueError:
        length = -1
    if length < 0:
        raise S3Error("411 Length Required", "MissingContentLength",
                      "You must provide the Content-Length HTTP header.")
    if length > limit:
        raise _too_large()
    return length


def discard(environ: dict[str, Any], remaining: int, deadline: float) -> None:
    """Read and drop what is left of a refused body, in ``CHUNK`` pieces (memory stays at one piece), so the
    client sees the answer rather than a reset; a body still arriving at ``deadline`` is not waited for."""
    stream = environ["wsgi.input"]
    read = getattr(stream, "read1", stream.read)
    try:
        while remaining > 0 and time.monotonic() < deadline:
            chunk = read(min(CHUNK, remaining))
            if not chunk:
                return
            remaining -= len(chunk)
    except OSError:
        return
    if remaining > 0:
        stop_reading(environ)


def stop_reading(environ: dict[str, Any]) -> None:
    """Refuse the rest of a body too big to read: werkzeug would otherwise drain it after the answer, 10 MB
    at a time. The answer still goes out; the client's further bytes are not read."""
    sock = environ.get("werkzeug.socket")
    if sock is not None:
        try:
            sock.shutdown(socket.SHUT_RD)
        except OSError:
            pass


def read_body(environ: dict[str, Any], limit: int) -> bytes:
    """The whole request body (signed S3 and SQS requests), which must declare its length and fit ``limit``."""
    length = declared_length(environ, limit)
    body: bytes = environ["wsgi.input"].read(length) if length else b""
    if len(body) != length:
        raise _bad("IncompleteBody", "You did not provide the number of bytes specified by the Content-Length.")
    return body
