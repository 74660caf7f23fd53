#!/usr/bin/env bash
# Builds what the container test runs: the local base image (make-base-image.sh) and both images
# from the real Dockerfiles, tagged :test. The test calls it; .ci/run calls it first too, so that the
# heavy builds do not run while other test files race their timeouts beside them.
set -euo pipefail
cd "$(dirname "$0")/../.."
bash test/containers/make-base-image.sh
# Behind a TLS-inspecting egress the builds need its CA (used in the build stages only).
if [ -n "${NODE_EXTRA_CA_CERTS:-}" ]; then cp "$NODE_EXTRA_CA_CERTS" .build-ca.pem; fi
trap 'rm -f .build-ca.pem' EXIT
export DOCKER_BUILDKIT=0
docker build -q -f Dockerfile.runner -t oauth3-proxy/vault-runner:test . >/dev/null
docker build -q -f Dockerfile.gateway -t oauth3-proxy/gateway:test . >/dev/null
echo "images oauth3-proxy/vault-runner:test and oauth3-proxy/gateway:test built"
