"""The one place settings are read. Environment variable names (``HUMANPARSE_*``) appear only here and in
``infra/template.yaml``; everything else receives a ``Settings`` object."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from humanparse.engine.registry import DEFAULT_M2FP_ID, ModelKind, ModelSpec, kind_names, model_kinds
from humanparse.jobs.keys import EXTENSIONS
from humanparse.pipeline.imageio import MAX_DECODE_MEGABYTES, MAX_JPEG_SCANS, MAX_OUTPUT_MEGAPIXELS


def default_cache_dir() -> Path:
    return Path.home() / ".cache" / "humanparse"


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="HUMANPARSE_", extra="ignore", protected_namespaces=())

    # --- model
    model_kind: str = "auto"  # "auto" or a kind of engine/registry.py (m2fp, lite, ...)
    model_dir: Path | None = None  # a folder of model_kind (M2FP: configuration.json + pytorch_model.pt)
    model_id: str = DEFAULT_M2FP_ID
    model_cache_dir: Path = Field(default_factory=default_cache_dir)
    lite_model_dir: Path | None = None
    threads: int | None = None  # None: from the container's CPU quota
    person_score_thr: float = 0.3
    precision: Literal["auto", "fp32", "bf16"] = "auto"  # M2FP arithmetic; auto: bf16 only if calibrated, on AMX
    # M2FP fast path kernels: auto = measured at load per CPU model + threads and cached in
    # kernel_cache_dir/kernels.json (unset: $XDG_CACHE_HOME or ~/.cache/humanparse, else /tmp/humanparse);
    # "default"; or forced per group, e.g. "deform_sampling=csr,encoder_ffn_linear=mkl" (README: fast path)
    kernels: str = "auto"
    kernel_cache_dir: Path | None = None
    # Lambda entry: the verdict is also shared through the results bucket (<results_prefix>_system/kernels.json),
    # fetched before the model loads and put back after a measurement, so one cold start per CPU model and
    # thread count measures instead of every one (kernel_share.py). Off: each environment measures for itself.
    share_kernel_verdict: bool = True
    # Lambda entry: "eager" loads the model at import (the parser function: every event needs it); "lazy" at
    # the first request that uses it (the API function: status polls and upload signing never do)
    model_load: Literal["eager", "lazy"] = "eager"
    # Lambda entry: the handler the container was started with (the image's entrypoint sets it from the CMD the
    # template gives each function). ``humanparse.handler.s3_handler`` (the parser function) leaves the HTTP
    # stack out of its init; any other (or unset) builds it there.
    lambda_handler: str = ""

    # --- storage
    upload_bucket: str = "humanparse-uploads"
    results_bucket: str = ""  # empty: same bucket, under results_prefix
    upload_prefix: str = "uploads/"
    results_prefix: str = "results/"
    s3_endpoint_url: str | None = None  # the local runner's embedded S3; unset on AWS
    region: str | None = None  # unset on AWS: boto3 takes the function's own AWS_REGION
    local_min_free_mb: int = 64  # local runner: uploads get 503 while less would stay free on the data disk
    local_max_uploads: int = Field(default=16, ge=1)  # local runner: form uploads streaming at once; then 503

    # --- limits
    max_upload_bytes: int = 15 * 1024 * 1024
    sync_max_bytes: int = 4 * 1024 * 1024  # POST /parse body: Lambda's 6 MB payload cap, with headroom
    max_megapixels: float = 100.0  # largest photo accepted (header check; JPEGs decode scaled, see below)
    allowed_content_types: tuple[str, ...] = tuple(EXTENSIONS)  # spelled once, in jobs.EXTENSIONS
    max_json_bytes: int = 64 * 1024  # JSON request bodies (POST /uploads needs < 1 KB; Lambda caps at 6 MB)
    max_filename_bytes: int = 200  # x-amz-meta-filename, after control characters are stripped
    presign_expires_s: int = 300
    result_url_expires_s: int = 3600
    # (engine: photo size, decode and parse cost)
    max_output_megapixels: float = MAX_OUTPUT_MEGAPIXELS  # outputs at the photo's size up to this (12.5)
    max_decode_megabytes: float = MAX_DECODE_MEGABYTES  # decoded pixels x bytes per pixel, before decoding (400)
    max_jpeg_scans: int = MAX_JPEG_SCANS  # progressive JPEGs from cameras have ~10 scans (100)
    parse_time_budget_s: float = 60.0  # a parse still running after this fails with parse_timeout

    # --- video: MP4/MOV/WebM uploads; long clips are split into frame ranges (video/chunks.py)
    video_max_bytes: int = 200 * 1024 * 1024
    video_max_seconds: float = 120.0
    video_max_frames: int = 1200  # sampled frames parsed per clip
    video_sample_fps: float = 10.0  # 0: every frame
    video_max_corrupt_share: float = 0.25
    video_max_frame_megapixels: float = 8.5  # one frame's width x height (decoder bombs): 4K UHD is 8.3 MP
    video_chunk_frames: int | None = None  # force chunks of at most this many frames (tests, small hosts)
    video_seconds_per_frame: float | None = None  # None: measured figure per model kind (video/job.py)
    video_timeout_s: float = 300.0  # one chunk invocation's budget (< ParserFunction Timeout in the template)
    # The join's budget (video/chunks.estimate_join_s; a clip over it is refused before any chunk runs): two thirds
    # of the parser function's 900 s timeout, the rest for fetching the clip and chunk zips and storing outputs
    video_join_budget_s: float = 900.0 * 2 / 3
    video_progress_interval_s: float = 3.0  # frames_done written to status.json at most this often
    video_state_machine_arn: str = ""  # AWS: long clips fan out through this Step Functions state machine

    # --- HTTP
    cors_origins: tuple[str, ...] = ()
    overlay_alpha: float = 0.6
    # every job also stores each person's try-on mask, agnostic image and parse for all four categories
    # (docs/tryon.md): about as much again as a lite parse, so off; keypoints.json, atr.png, lip.png always are
    job_tryon_masks: bool = False

    # --- who may call the API. On AWS the template's AuthMode (JWT / IAM) is the gate; this shared
    # token is the local runner's (``serve --token``). Set: every API call but /healthz needs
    # ``Authorization: Bearer <token>``. Empty or unset: open.
    api_token: SecretStr | None = None

    # --- result cache: identical bytes + same model and output settings → the stored result is reused
    cache_enabled: bool = True  # off: every upload is parsed, no index is read or written
    # local runner: write an AWS CLI / boto3 profile "humanparse-local" (endpoint + this run's key, mode 0600)
    # here at start, for `aws s3 cp` into its bucket; unset: the key stays in the process only
    local_aws_config: Path | None = None

    @field_validator("model_kind")
    @classmethod
    def _known_model_kind(cls, kind: str) -> str:
        if kind != "auto" and kind not in kind_names():
            raise ValueError(f"unknown model kind {kind!r}: one of auto, {', '.join(kind_names())}")
        return kind

    @property
    def output_bucket(self) -> str:
        return self.results_bucket or self.upload_bucket

    def model_spec(self, threads: int | None = None) -> ModelSpec:
        """The engine's view of these settings: every registered kind's places (``model_places``)."""
        return ModelSpec(kind=self.model_kind, places={k.name: self.model_places(k) for k in model_kinds()},
                         threads=threads or self.threads or 2, precision=self.precision, model_id=self.model_id,
                         person_score_thr=self.person_score_thr, kernels=self.kernels,
                         kernel_cache_dir=self.kernel_cache_dir)

    def model_places(self, kind: ModelKind) -> tuple[Path, ...]:
        """Where ``kind`` is looked for, in order: the folder its own setting names (M2FP: ``model_dir``; lite:
        ``lite_model_dir``, ``--lite-dir``), the folder shipped in the package (lite), then the model cache
        (M2FP: under the id's damo/ and iic/ names; lite: ``download lite``)."""
        own = getattr(self, kind.dir_setting, None) if kind.dir_setting else None
        return tuple(([Path(own)] if own else []) + ([kind.packaged()] if kind.packaged else [])
                     + [self.model_cache_dir / sub for sub in kind.cache_subdirs(self.model_id)])


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """Read once per process (a Lambda container keeps it across invocations)."""
    return Settings()
