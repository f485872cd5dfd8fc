#!/usr/bin/env bash
# Make the kind workers look like Ulsan accelerator nodes: the labels that the pools and
# budgets of examples/ulsan select on, and extended-resource capacity in their status (as a
# device plugin would advertise it; the kubelet keeps it and derives allocatable).
set -euo pipefail
# shellcheck source=e2e/kind/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
need "${KUBECTL}"

# pool  hall  resource  devices-per-node, one line per worker, in the order kind names them.
LAYOUT=(
  "h200-hall-a a nvidia.com/gpu 8"
  "rngd-hall-b b furiosa.ai/rngd 8"
  "atom-hall-b b rebellions.ai/npu 8"
)

mapfile -t workers < <(k get nodes -l '!node-role.kubernetes.io/control-plane' \
  -o jsonpath='{range .items[*]}{.metadata.name}{"\n"}{end}' | sort)
(( ${#workers[@]} >= ${#LAYOUT[@]} )) \
  || die "need ${#LAYOUT[@]} workers, found ${#workers[@]} (see e2e/kind/kind-config.yaml)"

for i in "${!LAYOUT[@]}"; do
  read -r pool hall resource devices <<<"${LAYOUT[$i]}"
  node="${workers[$i]}"
  say "${node}: pool ${pool}, hall ${hall}, ${devices} x ${resource}"
  k label node "${node}" --overwrite \
    wattsched.io/site=ulsan wattsched.io/phase=1 "wattsched.io/hall=${hall}" \
    "wattsched.io/pool=${pool}" "wattsched.io/rack=${hall}-r001"
  # JSON Pointer escapes "/" in the resource name as "~1".
  escaped="${resource//\//~1}"
  k patch node "${node}" --subresource=status --type=json -p "[
    {\"op\": \"add\", \"path\": \"/status/capacity/${escaped}\", \"value\": \"${devices}\"},
    {\"op\": \"add\", \"path\": \"/status/allocatable/${escaped}\", \"value\": \"${devices}\"}
  ]"
done

for i in "${!LAYOUT[@]}"; do
  read -r _ _ resource devices <<<"${LAYOUT[$i]}"
  node="${workers[$i]}"
  jsonpath="{.status.allocatable.${resource//./\\.}}"
  for _ in $(seq 30); do
    [[ "$(k get node "${node}" -o jsonpath="${jsonpath}")" == "${devices}" ]] && continue 2
    sleep 1
  done
  die "${node} does not show ${devices} allocatable ${resource}"
done
say "workers advertise their accelerators"
