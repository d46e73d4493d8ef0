"""The embedded S3/SQS's front door: a WSGI middleware in front of moto's server app.

moto answers anyone: it does not check signatures (its IAM mode checks ``Authorization`` headers only and
fails with a 500 on presigned URLs and form POSTs, and it is one process-wide switch), it serves its admin
API (``POST /moto-api/reset`` wipes every bucket and queue) and it sends ``Access-Control-Allow-Origin: *``.
This gate makes the local runner's storage behave like S3 towards everyone else on the machine:

* every request is SigV4-signed with this run's credentials (``new_local_credentials``): ``Authorization``
  header (S3 or SQS) or a presigned URL (S3), recomputed with botocore's own signer over the request as
  received; S3 bodies must match their signed SHA-256; a browser form POST is checked against its signed
  policy instead (``policy.PostPolicyMiddleware``). Anything else gets S3's 403 XML error;
* ``/moto-api/…`` is not served (404);
* CORS: moto's headers are dropped; only the page's origins get ``Access-Control-Allow-Origin`` (never ``*``),
  and preflights are answered here.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import hmac
import io
import re
import secrets
from collections.abc import Iterable, Sequence
from typing import Any
from urllib.parse import parse_qsl, quote, unquote, urlsplit

from botocore.auth import S3SigV4Auth, S3SigV4QueryAuth, SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

from humanparse.local.policy import (
    MAX_KEY_BYTES,
    MAX_UPLOADS,
    PostPolicyMiddleware,
    S3Error,
    StartResponse,
    WsgiApp,
    is_form_post,
    is_virtual_host,
    read_body,
    xml_error,
)

SERVICES = ("s3", "sqs")  # what the local runner uses; moto's other services are not reachable
CORS_METHODS = ("GET", "HEAD", "POST")
MAX_SKEW = dt.timedelta(minutes=15)  # S3's RequestTimeTooSkewed window
MAX_PRESIGN_S = 7 * 24 * 3600  # S3's longest presigned URL
MAX_S3_BODY = 5 * 1024**3  # S3's single-PUT limit; read only after the signature holds
MAX_OTHER_BODY = 2 * 1024 * 1024  # SQS bodies are signed in the canonical request: read before checking
_AUTH = re.compile(r"^AWS4-HMAC-SHA256 Credential=(?P<cred>[^,\s]+),\s*SignedHeaders=(?P<signed>[a-z0-9;-]+),"
                   r"\s*Signature=(?P<sig>[0-9a-f]{64})$")
_HEX64 = re.compile(r"^[0-9a-f]{64}$")
_TS = "%Y%m%dT%H%M%SZ"
_VARY = "Origin, Access-Control-Request-Headers, Access-Control-Request-Method"


def new_local_credentials() -> dict[str, str]:
    """Fresh random credentials for one run (boto3 keyword names); the presign secret is this secret."""
    key_id = "AKIA" + base64.b32encode(secrets.token_bytes(10)).decode()
    return {"aws_access_key_id": key_id, "aws_secret_access_key": secrets.token_urlsafe(30)}


def _denied(message: str = "Access Denied") -> S3Error:
    return S3Error("403 Forbidden", "AccessDenied", message)


def _mismatch() -> S3Error:
    return S3Error("403 Forbidden", "SignatureDoesNotMatch",
                   "The request signature we calculated does not match the signature you provided.")


class S3Gate:
    """Auth, admin blocking and CORS in front of ``app`` (moto's ``DomainDispatcherApplication``)."""

    def __init__(self, app: WsgiApp, credentials: dict[str, str], origins: Sequence[str] = (), *,
                 max_uploads: int = MAX_UPLOADS) -> None:
        self.app = app
        self.credentials = Credentials(credentials["aws_access_key_id"], credentials["aws_secret_access_key"])
        self.forms = PostPolicyMiddleware(app, {self.credentials.access_key: self.credentials.secret_key},
                                          max_uploads=max_uploads)
        self.origins: frozenset[str] = frozenset()
        self.allow_origins(origins)

    def allow_origins(self, origins: Iterable[str]) -> None:
        """The page origins allowed to read and upload cross-origin (exact ``scheme://host:port``)."""
        self.origins = frozenset(o.rstrip("/") for o in origins if o and o != "*")

    def __call__(self, environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        if environ.get("REQUEST_METHOD") == "OPTIONS":
            return self._preflight(environ, start_response)
        respond = self._cors(environ.get("HTTP_ORIGIN", ""), start_response)
        try:
            if ("/" + environ.get("PATH_INFO", "").lstrip("/")).startswith("/moto-api"):
                raise S3Error("404 Not Found", "NotFound", "Not Found")
            if is_form_post(environ):
                return self.forms(environ, respond)
            self._authenticate(environ)
            check_key(environ)
        except S3Error as err:
            return xml_error(respond, err)
        return self.app(environ, respond)

    # ------------------------------------------------------------------------------------------- CORS
    def _cors(self, origin: str, start_response: StartResponse) -> StartResponse:
        allowed = origin in self.origins

        def respond(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
            kept = [(k, v) for k, v in headers if not k.lower().startswith("access-control-") and k.lower() != "vary"]
            kept.append(("Vary", _VARY))
            if allowed:
                kept += [("Access-Control-Allow-Origin", origin), ("Access-Control-Expose-Headers", "ETag")]
            return start_response(status, kept, exc_info)

        return respond

    def _preflight(self, environ: dict[str, Any], start_response: StartResponse) -> list[bytes]:
        """Answered here (moto would allow anything): the page's origins, S3's methods, any headers."""
        origin = environ.get("HTTP_ORIGIN", "")
        if origin not in self.origins or environ.get("HTTP_ACCESS_CONTROL_REQUEST_METHOD", "") not in CORS_METHODS:
            return xml_error(start_response, S3Error("403 Forbidden", "AccessForbidden",
                                                     "CORSResponse: This CORS request is not allowed."))
        headers = [("Access-Control-Allow-Origin", origin), ("Access-Control-Allow-Methods", ", ".join(CORS_METHODS)),
                   ("Access-Control-Max-Age", "600"), ("Access-Control-Expose-Headers", "ETag"),
                   ("Vary", _VARY), ("Content-Length", "0")]
        asked = environ.get("HTTP_ACCESS_CONTROL_REQUEST_HEADERS")
        if asked:
            headers.append(("Access-Control-Allow-Headers", asked))
        start_response("200 OK", headers)
        return [b""]

    # ------------------------------------------------------------------------------------------- SigV4
    def _authenticate(self, environ: dict[str, Any]) -> None:
        if environ.get("HTTP_AUTHORIZATION"):
            self._check_header_auth(environ)
        elif "X-Amz-Signature=" in environ.get("QUERY_STRING", ""):
            self._check_query_auth(environ)
        else:
            raise _denied()

    def _scope(self, credential: str, amz_date: str) -> tuple[str, str]:
        """(region, service) of a credential scope that names this run's key, today's date and our services."""
        parts = credential.split("/")
        if len(parts) != 5 or parts[4] != "aws4_request":
            raise S3Error("400 Bad Request", "AuthorizationHeaderMalformed", "Malformed credential scope.")
        if not hmac.compare_digest(parts[0], self.credentials.access_key):
            raise S3Error("403 Forbidden", "InvalidAccessKeyId",
                          "The AWS Access Key Id you provided does not exist in our records.")
        if parts[3] not in SERVICES or parts[1] != amz_date[:8]:
            raise _mismatch()
        return parts[2], parts[3]

    def _check_header_auth(self, environ: dict[str, Any]) -> None:
        m = _AUTH.match(environ["HTTP_AUTHORIZATION"])
        if not m:
            raise S3Error("400 Bad Request", "AuthorizationHeaderMalformed", "Only SigV4 is accepted.")
        signed = m["signed"].split(";")
        amz_date = environ.get("HTTP_X_AMZ_DATE", "")
        if "host" not in signed or "x-amz-date" not in signed:
            raise _mismatch()
        _check_fresh(amz_date, 0)
        region, service = self._scope(m["cred"], amz_date)
        if service == "s3":
            auth: SigV4Auth = S3SigV4Auth(self.credentials, service, region)
            payload_hash = environ.get("HTTP_X_AMZ_CONTENT_SHA256", "")
            if "x-amz-content-sha256" not in signed or not (_HEX64.match(payload_hash)
                                                            or payload_hash == "UNSIGNED-PAYLOAD"):
                raise S3Error("400 Bad Request", "InvalidRequest", "x-amz-content-sha256 must be signed: a "
                              "SHA-256 hex digest or UNSIGNED-PAYLOAD")
            _verify(auth, _aws_request(environ, signed, b"", amz_date), m["sig"])
            body = read_body(environ, MAX_S3_BODY) if environ.get("CONTENT_LENGTH") else b""
            if _HEX64.match(payload_hash) and hashlib.sha256(body).hexdigest() != payload_hash:
                raise S3Error("400 Bad Request", "XAmzContentSHA256Mismatch",
                              "The provided 'x-amz-content-sha256' header does not match what was computed.")
        else:
            body = read_body(environ, MAX_OTHER_BODY) if environ.get("CONTENT_LENGTH") else b""
            _verify(SigV4Auth(self.credentials, service, region), _aws_request(environ, signed, body, amz_date),
                    m["sig"])
        environ["wsgi.input"], environ["CONTENT_LENGTH"] = io.BytesIO(body), str(len(body))

    def _check_query_auth(self, environ: dict[str, Any]) -> None:
        query = environ.get("QUERY_STRING", "")
        params = dict(parse_qsl(query, keep_blank_values=True))
        if params.get("X-Amz-Algorithm") != "AWS4-HMAC-SHA256":
            raise S3Error("400 Bad Request", "AuthorizationQueryParametersError", "Only SigV4 is accepted.")
        amz_date, expires = params.get("X-Amz-Date", ""), params.get("X-Amz-Expires", "")
        if not expires.isdigit() or not 1 <= int(expires) <= MAX_PRESIGN_S:
            raise S3Error("400 Bad Request", "AuthorizationQueryParametersError", "X-Amz-Expires is invalid.")
        _check_fresh(amz_date, int(expires))
        region, service = self._scope(params.get("X-Amz-Credential", ""), amz_date)
        signed = params.get("X-Amz-SignedHeaders", "").split(";")
        if service != "s3" or "host" not in signed:
            raise _mismatch()
        unsigned_query = "&".join(p for p in query.split("&") if not p.startswith("X-Amz-Signature="))
        request = _aws_request(environ, signed, b"", amz_date, query=unsigned_query)
        _verify(S3SigV4QueryAuth(self.credentials, service, region, int(expires)), request,
                params.get("X-Amz-Signature", ""))


def check_key(environ: dict[str, Any]) -> None:
    """S3's key rules on a signed request: at most ``MAX_KEY_BYTES`` of UTF-8 (``KeyTooLongError``, nothing
    stored), and any character, newline included. moto reads the key from the raw path (``RAW_URI``), but routes
    on ``PATH_INFO`` with patterns whose ``.`` stops at a newline (a plain 404, the key never stored): the
    newline is hidden from the routing only."""
    path = unquote(urlsplit(str(environ.get("RAW_URI") or environ.get("REQUEST_URI") or "")).path)
    host = str(environ.get("HTTP_HOST", "")).rsplit(":", 1)[0]
    key = path.lstrip("/") if is_virtual_host(host) else path.lstrip("/").partition("/")[2]
    if len(key.encode("utf-8", "surrogatepass")) > MAX_KEY_BYTES:
        raise S3Error("400 Bad Request", "KeyTooLongError", "Your key is too long")
    if "\n" in environ.get("PATH_INFO", ""):
        environ["PATH_INFO"] = environ["PATH_INFO"].replace("\n", " ")


def _check_fresh(amz_date: str, valid_s: int) -> None:
    """S3's clock rules: signed at most 15 minutes from now; a presigned URL also not past its expiry."""
    try:
        signed_at = dt.datetime.strptime(amz_date, _TS).replace(tzinfo=dt.UTC)
    except ValueError as exc:
        raise _denied("X-Amz-Date is missing or malformed.") from exc
    now = dt.datetime.now(dt.UTC)
    if valid_s and now > signed_at + dt.timedelta(seconds=valid_s):
        raise _denied("Request has expired")
    if signed_at - now > MAX_SKEW or (not valid_s and now - signed_at > MAX_SKEW):
        raise S3Error("403 Forbidden", "RequestTimeTooSkewed",
                      "The difference between the request time and the current time is too large.")


def _header(environ: dict[str, Any], name: str) -> str:
    key = name.upper().replace("-", "_")
    value = environ.get(key if key in ("CONTENT_TYPE", "CONTENT_LENGTH") else "HTTP_" + key)
    if value is None:
        raise _mismatch()  # a header the client signed but did not send
    return str(value)


def _raw_path(environ: dict[str, Any]) -> str:
    """The path exactly as sent (SigV4 signs the encoded path); werkzeug keeps it in REQUEST_URI."""
    raw = environ.get("REQUEST_URI") or environ.get("RAW_URI")
    if raw:
        return str(raw).split("?", 1)[0]
    return quote(str(environ.get("PATH_INFO", "")).encode("latin-1").decode("utf-8", "replace"), safe="/~")


def _aws_request(environ: dict[str, Any], signed: list[str], body: bytes, amz_date: str,
                 query: str | None = None) -> AWSRequest:
    """The received request as botocore sees one it signs: method, raw path and query, the signed headers."""
    query = environ.get("QUERY_STRING", "") if query is None else query
    url = f"http://{_header(environ, 'host')}{_raw_path(environ)}" + (f"?{query}" if query else "")
    headers = {name: _header(environ, name) for name in signed}
    request = AWSRequest(method=environ.get("REQUEST_METHOD", "GET"), url=url, headers=headers, data=body)
    request.context["timestamp"] = amz_date
    return request


def _verify(auth: SigV4Auth, request: AWSRequest, signature: str) -> None:
    want = auth.signature(auth.string_to_sign(request, auth.canonical_request(request)), request)
    if not hmac.compare_digest(want, signature):
        raise _mismatch()

