#!/bin/sh
# Publishes the repository's scripts/ to the compose stack's S3 server (the s3-seed service: the scrapectl
# image built from worker/Dockerfile, /scripts mounted read-only), the way `make publish-scripts` publishes
# them to a deployed stage: one checked bundle per script folder, s3://$S3_BUCKET_NAME/$S3_PREFIX<name>.tar.gz
# with its SHA-256 in the object metadata. The bucket is created by the s3 service. Idempotent: run it again
# after changing a script (`docker compose -f local/compose.yaml run --rm s3-seed`).
set -eu
for dir in "${SCRIPTS_DIR:-/scripts}"/*/; do
  [ -f "${dir}scraper.py" ] || continue
  scrapectl scripts push --progress never "$dir"
done
