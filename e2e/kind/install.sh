#!/usr/bin/env bash
# helm install (or upgrade) the chart with the kind-loaded image, then apply the Ulsan samples.
set -euo pipefail
# shellcheck source=e2e/kind/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
need "${HELM}" "${KUBECTL}"

repository="${IMAGE%:*}"
tag="${IMAGE##*:}"
say "installing release ${RELEASE} in ${NAMESPACE} with image ${repository}:${tag}"
"${HELM}" upgrade --install "${RELEASE}" "${REPO_ROOT}/helm/wattsched" \
  --kube-context "${CONTEXT}" --namespace "${NAMESPACE}" --create-namespace \
  --set-string "image.repository=${repository}" --set-string "image.tag=${tag}" \
  --set-string image.pullPolicy=Never \
  --wait --timeout 5m "$@"
k label namespace "${NAMESPACE}" --overwrite pod-security.kubernetes.io/enforce=restricted

say "applying examples/ulsan (pools and budgets)"
k apply --server-side -f "${REPO_ROOT}/examples/ulsan/pools.yaml" \
  -f "${REPO_ROOT}/examples/ulsan/budgets.yaml"
k get acceleratorpools
k get powerbudgets
say "watch the budgets with: kubectl --context ${CONTEXT} get pb -w"
