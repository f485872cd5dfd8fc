#!/usr/bin/env bash
# The e2e suite against kind: prepare the cluster (no helm install: the suite installs the
# chart itself, and uninstalls it again), then run pytest with --cluster=kind.
#   e2e/kind/run-suite.sh [pytest arguments]
set -euo pipefail
# shellcheck source=e2e/kind/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
"${REPO_ROOT}/e2e/kind/up.sh" --no-install
cd "${REPO_ROOT}"
python="${PYTHON:-${REPO_ROOT}/.venv/bin/python}"
"${python}" -m pytest e2e/suite --cluster=kind --kind-name "${CLUSTER_NAME}" \
  --image "${IMAGE}" "$@"
