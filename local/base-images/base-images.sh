#!/usr/bin/env bash
# make base-images: stand-ins, built from Debian packages, for the official base images the Dockerfiles
# default to, on machines where no image registry answers. Each stand-in is tagged with the official name,
# so `FROM debian:bookworm-slim` (and the others) use it without pulling. An image that already exists
# (official or stand-in) is kept: delete it (docker rmi) to rebuild it. With PULL_BASE_IMAGES=1 the missing
# official images are pulled instead.
#
#   debian:bookworm-slim          debootstrap --variant=minbase bookworm, imported (also tagged debian:12-slim,
#                                 the runtime stages' pinned name for the same release)
#   golang:$GO_VERSION-bookworm   debian:bookworm-slim + the Go installed on this machine (go env GOROOT)
#                                 + this machine's CA bundle (the module proxy is reached through it)
#   python:3.12-slim-bookworm     debian:bookworm-slim + Debian's python3 (3.11), python3-venv, python3-pip
#   rabbitmq:4.2-management       debian:bookworm-slim + Debian's rabbitmq-server (3.10)
#   versity/versitygw:v1.8.0      debian:bookworm-slim + wget + the versitygw make installs (.tools/bin,
#                                 VERSITYGW), the same version
#   prom/prometheus:v2.53.3       debian:bookworm-slim + wget + this machine's prometheus (Debian's, 2.42;
#                                 apt-get install prometheus), laid out as the official image is
# (compose's) grafana/grafana has no Debian package: no stand-in; the compose test says it skipped it.
#
# PREBUILT=1 (make images PREBUILT=1 copies host-built binaries into the images): the Go image is not needed
# and not built.
set -euo pipefail
cd "$(dirname "$0")"

# One run at a time on a machine: .ci/run starts one in the background while the Go tests run, and make
# test's own waits here for it, then keeps what it built.
exec 9>"${TMPDIR:-/tmp}/scraping-platform-base-images.lock"
flock 9

DOCKER="${DOCKER:-docker}"
GO="${GO:-go}"
# The versions the Dockerfiles and compose file default to.
GO_VERSION="${GO_VERSION:-$(sed -n 's/^ARG GO_VERSION=//p' ../../worker/Dockerfile)}"
PYTHON_VERSION="${PYTHON_VERSION:-$(sed -n 's/^ARG PYTHON_VERSION=//p' ../../worker/Dockerfile)}"
RABBITMQ_IMAGE="${RABBITMQ_IMAGE:-$(sed -n 's/^ *image: \(rabbitmq:.*\)$/\1/p' ../compose.yaml | head -1)}"
# The Debian mirror: the first one of this machine's apt sources.
MIRROR="${DEBIAN_MIRROR:-$({ grep -hoE 'https?://[^ ]+/debian/?( |$)' /etc/apt/sources.list /etc/apt/sources.list.d/* 2>/dev/null | head -1 | tr -d ' ' || true; })}"
MIRROR="${MIRROR:-http://deb.debian.org/debian}"

# PULL_BASE_IMAGES=1 (where Docker Hub answers): pull the official images that are missing instead of
# building stand-ins.
have() {
  "$DOCKER" image inspect "$1" >/dev/null 2>&1 && return 0
  if [ "${PULL_BASE_IMAGES:-}" = 1 ]; then
    say "$1: pulling the official image (PULL_BASE_IMAGES=1)"
    "$DOCKER" pull -q "$1" >/dev/null || { say "$1: docker pull failed"; exit 1; }
    return 0
  fi
  return 1
}
say() { echo "base-images: $*"; }

if have debian:bookworm-slim; then
  say "debian:bookworm-slim exists; kept"
else
  say "debian:bookworm-slim: STAND-IN from debootstrap --variant=minbase bookworm $MIRROR"
  rootfs="$(mktemp -d)"
  trap 'rm -rf "$rootfs"' EXIT
  debootstrap --variant=minbase bookworm "$rootfs" "$MIRROR" >/dev/null
  # What the official slim image leaves out: package lists, downloaded packages, documentation.
  rm -rf "$rootfs"/var/lib/apt/lists/* "$rootfs"/var/cache/apt/*.bin "$rootfs"/var/cache/apt/archives/*.deb \
    "$rootfs"/usr/share/doc/* "$rootfs"/usr/share/man/* "$rootfs"/usr/share/info/* "$rootfs"/var/log/*.log
  tar -C "$rootfs" -c . | "$DOCKER" import -c 'CMD ["bash"]' - debian:bookworm-slim >/dev/null
  rm -rf "$rootfs"
  trap - EXIT
fi
have debian:12-slim || "$DOCKER" tag debian:bookworm-slim debian:12-slim

golang="golang:${GO_VERSION}-bookworm"
if [ "${PREBUILT:-}" = 1 ]; then
  say "$golang: not needed (PREBUILT=1: the images copy binaries built on this machine)"
elif have "$golang"; then
  say "$golang exists; kept"
else
  goroot="$("$GO" env GOROOT)"
  installed="$("$GO" env GOVERSION)"
  [ "$installed" = "go$GO_VERSION" ] || say "warning: the installed Go is $installed, the Dockerfiles want $GO_VERSION"
  say "$golang: STAND-IN from debian:bookworm-slim + $goroot ($installed) + /etc/ssl/certs/ca-certificates.crt"
  ctx="$(mktemp -d)"
  trap 'rm -rf "$ctx"' EXIT
  cp -a "$goroot" "$ctx/go"
  rm -rf "$ctx/go/pkg/obj" "$ctx/go/test" "$ctx/go/.git"
  cp /etc/ssl/certs/ca-certificates.crt "$ctx/"
  cp golang.Dockerfile "$ctx/Dockerfile"
  "$DOCKER" build -q -t "$golang" "$ctx" >/dev/null
  rm -rf "$ctx"
  trap - EXIT
fi

python="python:${PYTHON_VERSION}-slim-bookworm"
if have "$python"; then
  say "$python exists; kept"
else
  say "$python: STAND-IN from debian:bookworm-slim + Debian's python3 (3.11, not $PYTHON_VERSION), python3-venv and python3-pip"
  "$DOCKER" build -q -t "$python" -f python.Dockerfile . >/dev/null
fi

if have "$RABBITMQ_IMAGE"; then
  say "$RABBITMQ_IMAGE exists; kept"
else
  say "$RABBITMQ_IMAGE: STAND-IN from debian:bookworm-slim + Debian's rabbitmq-server (3.10) with the management and Prometheus plugins"
  "$DOCKER" build -q -t "$RABBITMQ_IMAGE" -f rabbitmq.Dockerfile . >/dev/null
fi

# The compose stack's other images (the compose test). Both stand-ins add wget, which compose's health
# checks run (the official images have busybox's); the layer is shared.
# from_binary IMAGE NAME BINARY: a stand-in from debian:bookworm-slim + wget + BINARY (copied in as NAME)
# and NAME.Dockerfile.
from_binary() {
  local image="$1" name="$2" bin="$3" ctx
  say "$image: STAND-IN from debian:bookworm-slim + wget + $bin ($("$bin" --version 2>&1 | head -1))"
  ctx="$(mktemp -d)"
  trap 'rm -rf "$ctx"' EXIT
  cp "$bin" "$ctx/$name"
  cp "$name.Dockerfile" "$ctx/Dockerfile"
  "$DOCKER" build -q -t "$image" "$ctx" >/dev/null
  rm -rf "$ctx"
  trap - EXIT
}

versitygw_image="$(sed -n 's/^ *image: \(versity\/versitygw:.*\)$/\1/p' ../compose.yaml | head -1)"
if have "$versitygw_image"; then
  say "$versitygw_image exists; kept"
else
  bin="${VERSITYGW:-../../.tools/bin/versitygw}"
  [ -x "$bin" ] || { say "$versitygw_image: no versitygw binary at $bin (make versitygw)"; exit 1; }
  from_binary "$versitygw_image" versitygw "$bin"
fi

prometheus_image="$(sed -n 's/^ *image: \(prom\/prometheus:.*\)$/\1/p' ../compose.yaml | head -1)"
if have "$prometheus_image"; then
  say "$prometheus_image exists; kept"
else
  bin="$(command -v prometheus || true)"
  [ -n "$bin" ] || { say "$prometheus_image: no prometheus on PATH (apt-get install prometheus)"; exit 1; }
  from_binary "$prometheus_image" prometheus "$bin"
fi
