#!/usr/bin/env bash
# Image size and idle RSS of a gateway and a vault-runner image, by hand (docs/benchmarks.md).
# usage: bench/images.sh <label> <gateway image> <runner image> [<label> <gateway> <runner>]...
# Each pair is started alone with compose's read-only root, tmpfs and capabilities (the gateway
# beside the runner's socket); VmRSS of each Node process is read after 20 s. Needs a Docker engine.
set -euo pipefail
rss() {
  docker exec "$1" sh -c 'for p in /proc/[0-9]*; do c=$(tr "\0" " " < $p/cmdline 2>/dev/null); case "$c" in node*) echo "  $(grep VmRSS $p/status | tr -s " " | cut -d" " -f2) kB  $c";; esac; done'
}
while [ "$#" -ge 3 ]; do
  label=$1 gw=$2 rn=$3; shift 3
  docker rm -f bench-gw bench-rn >/dev/null 2>&1 || true
  docker run -d --name bench-rn --read-only --tmpfs /tmp:size=256m,mode=1777 --cap-drop ALL \
    --cap-add SETUID --cap-add SETGID --cap-add KILL --cap-add CHOWN --cap-add NET_ADMIN \
    -e SECRETS_DIR= -v "bench-sock-$label:/run/oauth3" -v "bench-state-$label:/var/lib/oauth3-runner" "$rn" >/dev/null
  sleep 8
  docker run -d --name bench-gw --read-only --tmpfs /tmp:size=64m,mode=1777 --cap-drop ALL \
    -v "bench-sock-$label:/run/oauth3" -v "bench-data-$label:/data" "$gw" >/dev/null
  sleep 20
  echo "== $label: gateway $(docker image inspect -f '{{.Size}}' "$gw") bytes, runner $(docker image inspect -f '{{.Size}}' "$rn") bytes"
  echo "gateway:"; rss bench-gw
  echo "runner:"; rss bench-rn
  docker rm -f bench-gw bench-rn >/dev/null
  docker volume rm "bench-sock-$label" "bench-state-$label" "bench-data-$label" >/dev/null
done
