# syntax=docker/dockerfile:1.7
# humanparse: the Lambda container image (also runs the local server on non-Lambda hosts).
#
#   docker build -t humanparse .                                   # M2FP weights fetched by hub id at build
#   docker build --build-arg WITH_M2FP=0 -t humanparse-lite .      # lite tier only (no weights download)
#   docker build --build-arg EXTRAS=local -t humanparse-server .    # + the local runner's server and S3 emulation
# For Lambda, build with --platform linux/amd64 (or arm64) --provenance=false: scripts/deploy.sh does.
# Python packages: exact versions from constraints.txt (scripts/lock_constraints.py); torch pinned below.
# The lite ONNX models are package data of `humanparse` (sha256-pinned): `pip install .` below carries them.
#
# Why Debian slim + awslambdaric and not the AWS Lambda python:3.11 base: that base is Amazon Linux 2
# (glibc 2.26) and current CPU PyTorch wheels need glibc >= 2.28.

ARG PYTHON=3.11

# ---------------------------------------------------------------------------------------------- build
FROM python:${PYTHON}-slim-bookworm AS build
ARG WITH_M2FP=1
ARG MODEL_ID=damo/cv_resnet101_image-multiple-human-parsing
# The model hub's revision (a tag or commit of the model repository); empty = the hub's default branch
ARG MODEL_REVISION=""
# Extras of the package: none for Lambda (the local runner's uvicorn and S3/SQS emulation stay out of the
# image); "local" for an image that runs `local_runner.py serve` on a plain host.
ARG EXTRAS=""
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /src
# binutils: `strip` for the prune step below (build stage only; bookworm's one version)
RUN apt-get update && apt-get install -y --no-install-recommends binutils=2.40-2 && rm -rf /var/lib/apt/lists/*
# CPU-only torch from PyTorch's CPU index: a plain `torch` from PyPI is a multi-GB CUDA build.
RUN python -m venv /opt/venv \
 && /opt/venv/bin/pip install --no-compile --index-url https://download.pytorch.org/whl/cpu torch==2.13.0
COPY pyproject.toml setup.py MANIFEST.in README.md constraints.txt ./
COPY function/ function/
# setup.py copies the page into the package (humanparse/frontend), so `humanparse serve` finds it when installed
COPY frontend/ frontend/
COPY scripts/prune_venv.sh ./
# Then what a CPU Lambda never uses goes (scripts/prune_venv.sh names each cut; bench/image_size.py measures them:
# the venv 1,299 -> 991 MB before bytecode, docs/deployment.md "The image"). The AWS API models are cut in the
# Lambda image only (no extras): the [local] extra's S3/SQS emulation reads others.
RUN /opt/venv/bin/pip install --no-compile -c constraints.txt ".${EXTRAS:+[$EXTRAS]}" awslambdaric \
 && sh prune_venv.sh /opt/venv torch-headers torch-tests strip-torch package-tests type-stubs pip \
 && if [ -z "$EXTRAS" ]; then sh prune_venv.sh /opt/venv botocore-models; fi
COPY local_runner.py ./
# M2FP: the explicit download step (builders never download), then the fp32/bf16 calibration whose verdict lets
# precision=auto use bf16 on AMX hosts (without it, auto runs fp32).
RUN if [ "$WITH_M2FP" = "1" ]; then \
      python -m venv /opt/dl && /opt/dl/bin/pip install modelscope \
      && /opt/dl/bin/python -c "from modelscope.hub.snapshot_download import snapshot_download as d; import shutil; r='${MODEL_REVISION}'; p=d('${MODEL_ID}', cache_dir='/tmp/hub', **({'revision': r} if r else {})); shutil.copytree(p, '/opt/models/m2fp')" \
      && test -f /opt/models/m2fp/configuration.json && test -f /opt/models/m2fp/pytorch_model.pt \
      && /opt/venv/bin/python local_runner.py calibrate --model-dir /opt/models/m2fp; \
    else mkdir -p /opt/models/m2fp; fi
# Bytecode for every module, compiled here once: Lambda's filesystem is read-only (and PYTHONDONTWRITEBYTECODE
# is set below), so a module without its .pyc is compiled from source at EVERY cold start and thrown away —
# `import torch` took 5.96 s against 2.47 s with it (bench/bytecode.py; README: Deploying). unchecked-hash: the
# .pyc is used without comparing the source's mtime, which COPY may change; -f rewrites the timestamp .pycs
# the calibration run above left. After the last step that writes /opt/venv (pip, calibrate). A file that does
# not compile under this Python is never imported (torch 2.13 ships testing/_internal/py312_intrinsics.py): it
# is listed and passed over, and the build fails only if torch's own bytecode is missing.
RUN /opt/venv/bin/python -m compileall -q -j0 -f --invalidation-mode unchecked-hash /opt/venv/lib/python*/site-packages \
      || echo "compileall: the files listed above do not compile under this Python; passed over" \
 && ls /opt/venv/lib/python*/site-packages/torch/__pycache__/__init__.cpython-*.pyc

# -------------------------------------------------------------------------------------------- runtime
FROM python:${PYTHON}-slim-bookworm
RUN useradd --uid 1000 --no-create-home --home-dir /tmp app
COPY --from=build /opt/venv /opt/venv
COPY --from=build --chmod=0444 /opt/models /opt/models
RUN chmod -R a+X /opt/models
WORKDIR /var/task
COPY function/ /var/task/function/
COPY frontend/ /var/task/frontend/
COPY local_runner.py /var/task/
# Our own package's bytecode (same reasons as site-packages above), and the standard library's where the base
# image lacks it (no -f there: .pycs it ships stay as they are).
RUN /opt/venv/bin/python -m compileall -q -j0 -f --invalidation-mode unchecked-hash /var/task/function \
 && { /opt/venv/bin/python -m compileall -q -j0 --invalidation-mode unchecked-hash \
        "$(/opt/venv/bin/python -c 'import sysconfig; print(sysconfig.get_path("stdlib"))')" \
      || echo "compileall: the standard library files listed above do not compile (test data); passed over"; }
COPY --chmod=0555 scripts/entrypoint.sh /usr/local/bin/entrypoint
# Read-only everywhere but /tmp (as on Lambda); HOME points there for any library cache.
ENV PATH=/opt/venv/bin:$PATH PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 HOME=/tmp \
    PYTHONPATH=/var/task/function
USER 1000
EXPOSE 8000
# Non-Lambda hosts: `docker run -p 8000:8000 humanparse python local_runner.py serve --host 0.0.0.0
#   --model-dir /opt/models/m2fp --data-dir /tmp/data`
# (exec form: an unreachable server raises, and Python's exit status 1 marks the container unhealthy)
HEALTHCHECK --interval=30s --timeout=5s --start-period=60s \
  CMD ["python", "-c", "import urllib.request,sys; sys.exit(0 if urllib.request.urlopen('http://127.0.0.1:8000/api/healthz', timeout=4).status == 200 else 1)"]
ENTRYPOINT ["/usr/local/bin/entrypoint"]
# The template overrides this per function (http_handler / s3_handler); `handler` dispatches both.
CMD ["humanparse.handler.handler"]
