#!/usr/bin/env bash
# npm test: type-check, format and lint, the import rules, then every *.test.ts under the workspaces and test/ with node's test runner.
# (Node 20's --test neither expands globs nor finds .ts files, so the list is built here.)
# OAUTH3_TEST_TAP=<file> also writes the TAP stream there (.ci/run counts its skips and failures).
set -euo pipefail
cd "$(dirname "$0")/.."
npx tsc -p .
# Formatting (140 columns) and lint (biome.json): `npx biome check --write .` fixes what it can.
npx biome ci . --reporter=summary
# The import rules of ARCHITECTURE.md (rooms, the privilege split, a CLI without the server).
npx depcruise gateway/src vault-runner/src shared/src cli/src proto --config .dependency-cruiser.cjs --output-type err
mapfile -t files < <(find shared gateway vault-runner cli test -name '*.test.ts' -not -path '*/node_modules/*' | sort)
if [ "${#files[@]}" -eq 0 ]; then echo "no test files found" >&2; exit 1; fi
reporters=(--test-reporter=spec --test-reporter-destination=stdout)
if [ -n "${OAUTH3_TEST_TAP:-}" ]; then reporters+=(--test-reporter=tap "--test-reporter-destination=$OAUTH3_TEST_TAP"); fi
# A test (or hook) that hangs fails after 15 minutes instead of holding CI. (Not --test-force-exit:
# it ends the run before the TAP file reporter has written everything, and .ci/run counts that file.)
exec node --import tsx --test "${reporters[@]}" --test-concurrency="${TEST_CONCURRENCY:-2}" \
  --test-timeout="${TEST_TIMEOUT_MS:-900000}" "$@" "${files[@]}"
