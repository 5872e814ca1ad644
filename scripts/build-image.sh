#!/usr/bin/env bash
# Build deploy/Dockerfile with buildah where no image registry is reachable: the two base images the
# Dockerfile names (RUST_IMAGE, PYTHON_IMAGE) are made here from Debian's packages (debootstrap), the
# Rust one with this machine's rustup toolchain copied in. With a registry, just `docker build`.
#   scripts/build-image.sh [TAG]      (as root: apt-get install buildah debootstrap)
# Then: buildah run --isolation chroot $(buildah from TAG) -- rewind --version
set -euo pipefail
cd "$(dirname "$0")/.."
TAG=${1:-localhost/kafka-rewind:$(python3 -c 'import tomllib; print(tomllib.load(open("pyproject.toml","rb"))["project"]["version"])')}
CACHE=${CACHE:-$HOME/.cache/kafka-rewind/images}
BUILDAH=(buildah --storage-driver vfs)
mkdir -p "$CACHE"

for tool in buildah debootstrap; do
  command -v "$tool" >/dev/null || { echo "build-image: $tool is missing (apt-get install $tool)" >&2; exit 1; }
done

rootfs="$CACHE/rootfs-bookworm"
if [ ! -x "$rootfs/usr/bin/python3" ]; then
  echo "build-image: debootstrap bookworm into $rootfs (once)"
  debootstrap --variant=minbase --include=python3,python3-venv,ca-certificates bookworm "$rootfs" \
    http://deb.debian.org/debian >"$CACHE/debootstrap.log"
fi

# This machine's trust store goes into both bases, so a build behind a TLS-inspecting proxy reaches
# PyPI and crates.io as the machine does.
TRUST=/etc/ssl/certs/ca-certificates.crt

image_exists() { "${BUILDAH[@]}" inspect --type image "$1" >/dev/null 2>&1; }

# The runtime base: Debian's Python 3.11 in a venv on PATH (as the official image's python and pip are).
if ! image_exists localhost/python-bookworm-local; then
  ctr=$("${BUILDAH[@]}" from scratch)
  "${BUILDAH[@]}" copy "$ctr" "$rootfs" / >/dev/null
  "${BUILDAH[@]}" copy "$ctr" "$TRUST" "$TRUST" >/dev/null
  "${BUILDAH[@]}" run --isolation chroot "$ctr" -- python3 -m venv /opt/python
  "${BUILDAH[@]}" config --env PATH=/opt/python/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin "$ctr"
  "${BUILDAH[@]}" commit -q "$ctr" localhost/python-bookworm-local >/dev/null
  "${BUILDAH[@]}" rm "$ctr" >/dev/null
fi

# The build base: a C toolchain from Debian, and this machine's stable Rust.
if ! image_exists localhost/rust-bookworm-local; then
  toolchain=$(rustc --print sysroot)
  ctr=$("${BUILDAH[@]}" from scratch)
  "${BUILDAH[@]}" copy "$ctr" "$rootfs" / >/dev/null
  "${BUILDAH[@]}" copy "$ctr" "$TRUST" "$TRUST" >/dev/null
  "${BUILDAH[@]}" run --isolation chroot "$ctr" -- sh -c \
    'apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends gcc libc6-dev >/dev/null'
  "${BUILDAH[@]}" copy "$ctr" "$toolchain" /usr/local/rust >/dev/null
  "${BUILDAH[@]}" config --env PATH=/usr/local/rust/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin "$ctr"
  "${BUILDAH[@]}" commit -q "$ctr" localhost/rust-bookworm-local >/dev/null
  "${BUILDAH[@]}" rm "$ctr" >/dev/null
fi

"${BUILDAH[@]}" bud --isolation chroot -f deploy/Dockerfile \
  --build-arg RUST_IMAGE=localhost/rust-bookworm-local \
  --build-arg PYTHON_IMAGE=localhost/python-bookworm-local \
  --build-arg SOURCE_URL="$(git remote get-url origin 2>/dev/null || echo unknown)" \
  -t "$TAG" .
echo "build-image: built $TAG"
