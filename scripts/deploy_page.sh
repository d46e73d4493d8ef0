#!/usr/bin/env bash
# Publish the static page for a deployed stack: writes config.js (the API: /api on the page's CloudFront, which
# routes it to the HTTP API behind the per-client WAF limit, else the HTTP API's URL; auth: true when the
# stack's AuthMode is JWT, so the page shows its token field), narrows the page's Content-Security-Policy
# connect-src to that API and the stack's buckets, then syncs.
#   bash scripts/deploy_page.sh <stack-name>
set -euo pipefail
stack=${1:?stack name}
out() { aws cloudformation describe-stacks --stack-name "$stack" \
          --query "Stacks[0].Outputs[?OutputKey=='$1'].OutputValue" --output text; }
direct=$(out ApiUrl); direct=${direct%/}; bucket=$(out PageBucketName); auth=$(out AuthMode)
uploads=$(out UploadBucketName); results=$(out ResultsBucketName); page_url=$(out PageUrl)
region=$(sed -E 's#^https://[^.]+\.execute-api\.([a-z0-9-]+)\..*#\1#' <<<"$direct")
api=$direct; [ -n "$page_url" ] && [ "$page_url" != None ] && api=/api
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
cp -r "$(dirname "$0")/../frontend/." "$tmp/"
jwt=false; [ "$auth" = JWT ] && jwt=true
printf 'window.HUMANPARSE_CONFIG = {"apiBase": "%s", "auth": %s};\n' "$api" "$jwt" > "$tmp/config.js"
hosts="'self' $direct"
for b in "$uploads" "$results"; do hosts="$hosts https://$b.s3.amazonaws.com https://$b.s3.$region.amazonaws.com"; done
# no `sed -i`: GNU and BSD (macOS) sed disagree on its argument, and BSD would leave a backup file in the page
sed -E "s#connect-src [^;]*;#connect-src $hosts;#" "$tmp/index.html" > "$tmp/csp.html"
mv "$tmp/csp.html" "$tmp/index.html"
grep -q "connect-src $hosts;" "$tmp/index.html" || { echo "CSP not rewritten" >&2; exit 1; }
# index.html and config.js change on each deploy; the modules are small: short cache everywhere
aws s3 sync "$tmp/" "s3://$bucket/" --delete --cache-control "max-age=300"
echo "page published to s3://$bucket (apiBase $api, auth $auth); URL: $page_url"
