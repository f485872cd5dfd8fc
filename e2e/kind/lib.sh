# Shared settings for the e2e/kind scripts; sourced, not run.
# shellcheck shell=bash

CLUSTER_NAME="${CLUSTER_NAME:-wattsched}"
IMAGE="${IMAGE:-wattsched:e2e}"
NAMESPACE="${NAMESPACE:-wattsched-system}"
RELEASE="${RELEASE:-wattsched}"
KUBECTL="${KUBECTL:-kubectl}"
HELM="${HELM:-helm}"
KIND="${KIND:-kind}"
CONTEXT="kind-${CLUSTER_NAME}"
REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
export CLUSTER_NAME IMAGE NAMESPACE RELEASE KUBECTL HELM KIND CONTEXT REPO_ROOT

say() { printf '[wattsched kind] %s\n' "$*" >&2; }
die() { say "error: $*"; exit 1; }

need() {
  local tool
  for tool in "$@"; do
    command -v "${tool}" >/dev/null 2>&1 || die "${tool} is not on PATH"
  done
}

k() { "${KUBECTL}" --context "${CONTEXT}" "$@"; }
