#!/usr/bin/env bash
# The auditor's install: `npm ci -w cli --omit=dev` in a copy of the workspace manifests and the
# lockfile must pull none of the server's packages (lmdb, grammy, hono, connect, pino), and the
# installed `oauth3` must run its verifier commands. .ci/run calls this.
set -euo pipefail
cd "$(dirname "$0")/.."
tmp=$(mktemp -d /tmp/oauth3-cli-install-XXXXXX)
trap 'rm -rf "$tmp"' EXIT
cp package.json package-lock.json "$tmp/"
for ws in proto shared vault-runner gateway cli; do mkdir -p "$tmp/$ws"; cp "$ws/package.json" "$tmp/$ws/"; done
cp -r shared/src "$tmp/shared/"
cp -r cli/src cli/bin "$tmp/cli/"
(cd "$tmp" && npm ci -w cli --omit=dev --no-audit --no-fund --loglevel=error)
found=$(cd "$tmp/node_modules" && ls -d lmdb grammy hono @hono @connectrpc pino prom-client @grammyjs deno 2>/dev/null || true)
if [ -n "$found" ]; then
  echo "check-cli-install: the CLI install pulled server packages: $found" >&2
  exit 1
fi
echo "check-cli-install: $(ls "$tmp/node_modules" | tr '\n' ' ')"
# The verifier runs (a usage error exits 2 with its message; --help exits 0).
node "$tmp/cli/bin/oauth3.js" --help | grep -q "verify" || { echo "check-cli-install: oauth3 --help does not run" >&2; exit 1; }
set +e
node "$tmp/cli/bin/oauth3.js" verify --nonce >/dev/null 2>&1
code=$?
set -e
[ "$code" = 2 ] || { echo "check-cli-install: oauth3 verify --nonce exited $code, expected the usage error 2" >&2; exit 1; }
echo "check-cli-install: ok (no server packages; oauth3 runs)"
