#!/usr/bin/env bash
# Build the operator image from operator/Dockerfile and load it into the kind nodes.
set -euo pipefail
# shellcheck source=e2e/kind/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
need docker "${KIND}"

say "building ${IMAGE}"
docker build -f "${REPO_ROOT}/operator/Dockerfile" -t "${IMAGE}" "${REPO_ROOT}"
say "loading ${IMAGE} into kind cluster ${CLUSTER_NAME}"
"${KIND}" load docker-image "${IMAGE}" --name "${CLUSTER_NAME}"
