#!/usr/bin/env bash
# Installs Kueue into the dev cluster for the e2e tests (`make test-e2e` runs it after hack/dev/up.sh):
# builds Kueue's manager from its Go module (hack/kueue/build.sh) and packs it as an image (both cached in
# bin/), imports it, applies Kueue's own manifests from the module's config/default with the changes in
# hack/kueue/manifests, and waits until Kueue's webhooks answer. Idempotent: a second run changes nothing
# that runs. `make dev-down` removes it with the cluster.
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
source "$root/hack/cluster/lib.sh"
export KUBECONFIG=$KUBECONFIG_ADMIN
T0=$(date +%s.%N)

tar=$("$root/hack/images/build.sh" kueue)
step "import the kueue image" "$root/hack/images/import.sh" "$tar"

# Kueue's manifests come from the Kueue module itself (the Go module cache), never copied into this repo.
module=$(cd "$root/hack/kueue" && go mod download -json sigs.k8s.io/kueue | sed -n 's/^[[:space:]]*"Dir": "\(.*\)",$/\1/p')
[ -d "$module/config/default" ] || die "no config/default in the Kueue module ($module)"
overlay=$DEV/kueue
rm -rf "$overlay" && mkdir -p "$overlay"
cp "$root"/hack/kueue/manifests/*.yaml "$overlay/"
ln -s "$module/config/default" "$overlay/upstream"
# A rebuilt image keeps its tag and the config file is mounted by subPath (never refreshed): the pod
# template carries a hash of both, so a change rolls the Deployment and a rerun without one does not.
inputs=$(cat "$tar.inputs" "$root"/hack/kueue/manifests/*.yaml | sha256sum | cut -c1-16)
cat >>"$overlay/kustomization.yaml" <<YAML
- patch: |-
    apiVersion: apps/v1
    kind: Deployment
    metadata: {name: kueue-controller-manager, namespace: kueue-system}
    spec: {template: {metadata: {annotations: {distillery.dev/kueue-inputs: "$inputs"}}}}
YAML
kc kustomize "$overlay" >"$overlay/kueue.yaml"
step "kueue manifests ($(basename "$module"))" kc apply --server-side -f "$overlay/kueue.yaml" -o name >/dev/null
DISTILLERY_ROLLOUT_TIMEOUT=300s step "kueue ready" rollout kueue-system kueue-controller-manager

# Ready means its certificates are made and injected; the webhooks answer once the Service routes to it.
probe='{"apiVersion":"kueue.x-k8s.io/v1beta2","kind":"ResourceFlavor","metadata":{"name":"install-probe"}}'
for i in $(seq 1 60); do
  if out=$(echo "$probe" | kc apply --dry-run=server -f - 2>&1); then break; fi
  [ "$i" -lt 60 ] || die "Kueue's webhooks do not answer: $out"
  sleep 1
done
log "kueue installed in $(elapsed_since "$T0")s"
