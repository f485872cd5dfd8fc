#!/usr/bin/env bash
# Create the kind cluster (1 control plane + 3 workers); a no-op when it already exists.
set -euo pipefail
# shellcheck source=e2e/kind/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
need "${KIND}" "${KUBECTL}" docker

if "${KIND}" get clusters 2>/dev/null | grep -qx "${CLUSTER_NAME}"; then
  say "kind cluster ${CLUSTER_NAME} exists"
else
  say "creating kind cluster ${CLUSTER_NAME}"
  "${KIND}" create cluster --name "${CLUSTER_NAME}" \
    --config "${REPO_ROOT}/e2e/kind/kind-config.yaml" --wait 120s
fi
k wait --for=condition=Ready nodes --all --timeout=180s
