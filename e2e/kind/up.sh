#!/usr/bin/env bash
# Everything for a kind cluster running wattsched:
#   create the cluster, build and load the image, advertise accelerators, install the chart.
#
#   e2e/kind/up.sh               # all of it
#   e2e/kind/up.sh --no-install  # stop before helm install (what the e2e suite wants)
#
# Settings (environment): CLUSTER_NAME (wattsched), IMAGE (wattsched:e2e), NAMESPACE
# (wattsched-system), RELEASE (wattsched), KIND, KUBECTL, HELM (binaries on PATH by default).
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"

install=1
for arg in "$@"; do
  case "${arg}" in
    --no-install) install=0 ;;
    -h|--help) sed -n '2,10p' "${BASH_SOURCE[0]}"; exit 0 ;;
    *) echo "unknown argument: ${arg}" >&2; exit 2 ;;
  esac
done

"${here}/create-cluster.sh"
"${here}/build-image.sh"
"${here}/advertise-accelerators.sh"
if (( install )); then
  "${here}/install.sh"
fi
