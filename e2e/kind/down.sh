#!/usr/bin/env bash
# Delete the kind cluster (and with it everything the scripts and the suite created).
set -euo pipefail
# shellcheck source=e2e/kind/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
need "${KIND}"
"${KIND}" delete cluster --name "${CLUSTER_NAME}"
