#!/usr/bin/env bash
# Docker Hub is unreachable here, so the Dockerfiles' base image is made locally: Debian bookworm
# (debootstrap, minbase) plus this machine's Node 20 and npm, tagged as the official image the
# Dockerfiles name. On a normal machine `docker pull` provides the real one instead.
set -euo pipefail
tag="${1:-node:20.20.2-bookworm-slim}"
if docker image inspect "$tag" >/dev/null 2>&1; then echo "base image $tag present"; exit 0; fi
root="$(mktemp -d /tmp/oauth3-rootfs.XXXXXX)"
trap 'rm -rf "$root"' EXIT
debootstrap --variant=minbase bookworm "$root" http://deb.debian.org/debian >/dev/null
install -m 0755 "$(command -v node)" "$root/usr/local/bin/node"
npm_dir="$(dirname "$(dirname "$(readlink -f "$(command -v npm)")")")"
mkdir -p "$root/usr/local/lib/node_modules"
cp -a "$npm_dir" "$root/usr/local/lib/node_modules/npm"
ln -sf ../lib/node_modules/npm/bin/npm-cli.js "$root/usr/local/bin/npm"
rm -rf "$root/var/cache/apt/archives/"*.deb "$root/var/lib/apt/lists/"*
tar -C "$root" -c . | docker import \
  -c 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
  -c 'CMD ["node"]' - "$tag" >/dev/null
echo "base image $tag built"
