#!/bin/sh
# Seeds the compose stack's S3-compatible server (versitygw) with the repository's scripts/, the way the
# worker's S3 repository expects them: one gzip-compressed tar per script folder at
# s3://$S3_BUCKET_NAME/$S3_PREFIX<name>.tar.gz, entries relative to the folder, with the bundle's SHA-256 in
# the object metadata (x-amz-meta-sha256), which the worker checks. Runs in the amazon/aws-cli image with
# /scripts mounted read-only; idempotent (run it again after changing a script:
# `docker compose -f local/compose.yaml run --rm s3-seed`).
set -eu
: "${S3_BUCKET_NAME:?}" "${S3_ENDPOINT_URL:?}" "${S3_PREFIX:=scripts/}"
s3() { aws --endpoint-url "$S3_ENDPOINT_URL" "$@"; }

s3 s3api head-bucket --bucket "$S3_BUCKET_NAME" >/dev/null 2>&1 || s3 s3api create-bucket --bucket "$S3_BUCKET_NAME" >/dev/null
work=$(mktemp -d)
for dir in /scripts/*/; do
  name=$(basename "$dir")
  [ -f "$dir/scraper.py" ] || continue
  bundle="$work/$name.tar.gz"
  tar -C "$dir" --exclude=__pycache__ --exclude='./.*' -czf "$bundle" .
  sum=$(sha256sum "$bundle" | cut -d' ' -f1)
  s3 s3 cp --only-show-errors --metadata "sha256=$sum" "$bundle" "s3://$S3_BUCKET_NAME/$S3_PREFIX$name.tar.gz"
  echo "seeded $name ($sum)"
done
