"""The one place settings are read. Environment variable names (``HUMANPARSE_*``) appear only here and in
``infra/template.yaml``; everything else receives a ``Settings`` object."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


def default_cache_dir() -> Path:
    return Path.home() / ".cache" / "humanparse"


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="HUMANPARSE_", extra="ignore", protected_namespaces=())

    # --- model
    model_kind: Literal["auto", "m2fp", "lite"] = "auto"
    model_dir: Path | None = None  # an M2FP folder (configuration.json + pytorch_model.pt)
    model_id: str = "damo/cv_resnet101_image-multiple-human-parsing"
    model_cache_dir: Path = Field(default_factory=default_cache_dir)
    lite_model_dir: Path | None = None
    threads: int | None = None  # None: from the container's CPU quota
    person_score_thr: float = 0.3
    precision: Literal["auto", "fp32", "bf16"] = "auto"  # M2FP arithmetic; auto: bf16 on AMX hosts only

    # --- storage
    upload_bucket: str = "humanparse-uploads"
    results_bucket: str = ""  # empty: same bucket, under results_prefix
    upload_prefix: str = "uploads/"
    results_prefix: str = "results/"
    s3_endpoint_url: str | None = None  # the local runner's embedded S3; unset on AWS
    region: str | None = None  # unset on AWS: boto3 takes the function's own AWS_REGION

    # --- limits
    max_upload_bytes: int = 15 * 1024 * 1024
    sync_max_bytes: int = 4 * 1024 * 1024  # POST /parse body: Lambda's 6 MB payload cap, with headroom
    max_megapixels: float = 100.0  # largest photo accepted (header check; JPEGs decode scaled, see below)
    allowed_content_types: tuple[str, ...] = ("image/jpeg", "image/png", "image/webp")
    presign_expires_s: int = 300
    result_url_expires_s: int = 3600
    # (engine: photo size, decode and parse cost — #23, #20.5)
    max_output_megapixels: float = 12.5  # outputs at the photo's size up to this (4032x3024 = 12.2 MP)
    max_decode_megabytes: float = 400.0  # decoded pixels x bytes per pixel, checked before decoding
    max_jpeg_scans: int = 100  # progressive JPEGs from cameras have ~10 scans
    parse_time_budget_s: float = 60.0  # a parse still running after this fails with parse_timeout

    # --- HTTP
    cors_origins: tuple[str, ...] = ()
    overlay_alpha: float = 0.6

    @property
    def output_bucket(self) -> str:
        return self.results_bucket or self.upload_bucket


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """Read once per process (a Lambda container keeps it across invocations)."""
    return Settings()
