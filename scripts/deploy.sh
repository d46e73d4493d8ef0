#!/usr/bin/env bash
# Deploy humanparse to an AWS account, fresh or not, in one command:
#   ECR repository (created if missing) -> docker login -> a single-manifest image for the functions'
#   architecture (the M2FP weights are downloaded inside the build, see Dockerfile) -> push -> sam deploy ->
#   the page's CloudFront origin wired into the buckets' and the API's CORS -> the page published.
#
#   bash scripts/deploy.sh [options] [Parameter=Value ...]
#     --stack NAME          stack name (default: humanparse); also the ECR repository's name
#     --region REGION       default: AWS_REGION, AWS_DEFAULT_REGION, then the CLI's configured region
#     --architecture ARCH   x86_64 (default) or arm64: the image's platform and the functions' Architectures
#     --lite                build without M2FP weights (the lite ONNX tier only; no model hub needed)
#     --tag TAG             image tag (default: git commit + UTC time, so every deploy is a new image)
#     --skip-build          deploy the image already pushed under --tag
#     --model-revision REV  the M2FP revision (tag or commit) the build downloads (default: the hub's default)
#     Parameter=Value       any template parameter (infra/template.yaml), e.g. MemorySize=6144
#                           ReservedConcurrency=20 BackfillConcurrency=10 AuthMode=JWT JwtIssuer=...
#
# Needs: aws (CLI v1 or v2, credentials configured), docker with buildx/BuildKit, sam (AWS SAM CLI).
# Bash 3.2 (macOS) compatible: no associative arrays, no ${x,,}, empty arrays guarded.
set -euo pipefail
cd "$(dirname "$0")/.."

stack=humanparse region=${AWS_REGION:-${AWS_DEFAULT_REGION:-}} arch=x86_64 lite=0 tag="" build=1 revision=""
params=()
while [ $# -gt 0 ]; do
  case "$1" in
    --stack) stack=${2:?--stack needs a name}; shift 2 ;;
    --region) region=${2:?--region needs a region}; shift 2 ;;
    --architecture) arch=${2:?--architecture needs x86_64 or arm64}; shift 2 ;;
    --lite) lite=1; shift ;;
    --tag) tag=${2:?--tag needs a tag}; shift 2 ;;
    --skip-build) build=0; shift ;;
    --model-revision) revision=${2:?--model-revision needs a tag or commit}; shift 2 ;;
    -h|--help) sed -n '2,18p' "$0"; exit 0 ;;
    Architecture=*) arch=${1#*=}; shift ;;  # the image's platform follows it: one place decides both
    *=*) params+=("$1"); shift ;;
    *) echo "deploy.sh: unknown argument '$1' (see --help)" >&2; exit 2 ;;
  esac
done

[ "$build" = 1 ] || [ -n "$tag" ] || { echo "deploy.sh: --skip-build needs the --tag of a pushed image" >&2; exit 2; }
case "$arch" in
  x86_64) platform=linux/amd64 ;;
  arm64) platform=linux/arm64 ;;
  *) echo "deploy.sh: --architecture must be x86_64 or arm64, not '$arch'" >&2; exit 2 ;;
esac
[ -n "$region" ] || region=$(aws configure get region 2>/dev/null || true)
[ -n "$region" ] || { echo "deploy.sh: no region: pass --region or set AWS_REGION" >&2; exit 2; }
export AWS_REGION=$region AWS_DEFAULT_REGION=$region   # CLI v1 reads the second, v2 and SAM the first

# A parameter the caller gave (Key=Value among the arguments), else empty.
param() {
  local p
  for p in ${params[@]+"${params[@]}"}; do
    case "$p" in "$1="*) echo "${p#*=}"; return ;; esac
  done
}

# Map concurrency must stay below reserved concurrency, or a backfill (or one long video) takes every slot
# live uploads need. The defaults are the template's.
reserved=$(param ReservedConcurrency); backfill=$(param BackfillConcurrency); video=$(param VideoConcurrency)
below_reserved() {  # $1: parameter name, $2: its value
  if [ -n "$reserved" ] && [ "$reserved" != 0 ] && [ "$2" -ge "$reserved" ]; then
    echo "deploy.sh: $1 ($2) must be below ReservedConcurrency ($reserved):" \
         "the rest is what live uploads keep meanwhile" >&2
    exit 2
  fi
}
below_reserved BackfillConcurrency "${backfill:-4}"
below_reserved VideoConcurrency "${video:-4}"

account=$(aws sts get-caller-identity --query Account --output text)
registry="$account.dkr.ecr.$region.amazonaws.com"
repo=$stack
[ -n "$tag" ] || tag="$(git rev-parse --short HEAD 2>/dev/null || echo build)-$(date -u +%Y%m%d%H%M%S)"
image="$registry/$repo:$tag"

if ! aws ecr describe-repositories --repository-names "$repo" >/dev/null 2>&1; then
  echo "creating ECR repository $repo"
  aws ecr create-repository --repository-name "$repo" --image-scanning-configuration scanOnPush=true \
    --encryption-configuration encryptionType=AES256 >/dev/null
fi
aws ecr get-login-password | docker login --username AWS --password-stdin "$registry"

if [ "$build" = 1 ]; then
  # --platform: the functions' architecture whatever the build host is (an Apple-silicon Mac builds arm64 by
  # default). --provenance=false: BuildKit's attestation turns the push into a manifest list (an image index),
  # which Lambda rejects; without it the push is one image manifest.
  docker build --platform "$platform" --provenance=false --build-arg "WITH_M2FP=$((1 - lite))" \
    --build-arg "MODEL_REVISION=$revision" -t "$image" .
  docker push "$image"
fi

out() {  # one output of the stack, empty when the stack or the output does not exist
  local v
  v=$(aws cloudformation describe-stacks --stack-name "$stack" \
        --query "Stacks[0].Outputs[?OutputKey=='$1'].OutputValue" --output text 2>/dev/null || true)
  [ "$v" = None ] && v=""
  echo "$v"
}

sam_deploy() {  # $1: the PageOrigin to deploy with
  # --resolve-s3: SAM's managed bucket carries the template (over CloudFormation's 51,200-byte inline limit)
  sam deploy --template-file infra/template.yaml --stack-name "$stack" --region "$region" \
    --capabilities CAPABILITY_IAM CAPABILITY_AUTO_EXPAND --resolve-s3 \
    --image-repository "$registry/$repo" --no-confirm-changeset --no-fail-on-empty-changeset \
    --parameter-overrides "ImageUri=$image" "Architecture=$arch" "PageOrigin=$1" ${params[@]+"${params[@]}"}
}

# The page's origin for CORS: the caller's PageOrigin, else the stack's CloudFront domain. That domain exists
# only once the distribution does, so a first deploy runs with a placeholder and is followed by a second,
# CORS-only update; later deploys read it from the stack before deploying.
origin=$(param PageOrigin)
if [ -n "$origin" ]; then
  sam_deploy "$origin"
else
  origin=$(out PageUrl)
  sam_deploy "${origin:-https://example.com}"
  page_url=$(out PageUrl)
  if [ -n "$page_url" ] && [ "$page_url" != "$origin" ]; then
    echo "wiring the page origin $page_url into CORS"
    sam_deploy "$page_url"
    origin=$page_url
  elif [ -z "$page_url" ]; then
    echo "deploy.sh: no CloudFront page (CreateCdn=false): deploy again with PageOrigin=<the origin that" \
         "serves the page>, or the page cannot upload (bucket CORS)" >&2
    origin=""
  fi
fi

bash scripts/deploy_page.sh "$stack"
echo "deployed $image to stack $stack ($region, $arch); page origin: ${origin:-none}"
