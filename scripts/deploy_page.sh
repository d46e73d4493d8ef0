#!/usr/bin/env bash
# Publish the static page for a deployed stack: writes config.js with the stack's API URL, then syncs.
#   bash scripts/deploy_page.sh <stack-name>
set -euo pipefail
stack=${1:?stack name}
out() { aws cloudformation describe-stacks --stack-name "$stack" \
          --query "Stacks[0].Outputs[?OutputKey=='$1'].OutputValue" --output text; }
api=$(out ApiUrl); bucket=$(out PageBucketName)
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
cp -r "$(dirname "$0")/../frontend/." "$tmp/"
printf 'window.HUMANPARSE_CONFIG = {"apiBase": "%s"};\n' "${api%/}" > "$tmp/config.js"
aws s3 sync "$tmp/" "s3://$bucket/" --delete --cache-control "max-age=300"
echo "page published to s3://$bucket (apiBase ${api%/}); URL: $(out PageUrl)"
