#!/usr/bin/env bash
# Local storage for the dev cluster, which has no volume provisioner: hostPath PersistentVolumes with no
# storage class (PVCs without a class bind to them), plus the "distillery-models" claim holding a tiny
# T5 base model for the demo. Idempotent.
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
source "$root/hack/cluster/lib.sh"
count=${DISTILLERY_DEV_VOLUMES:-24}
vols=$DEV/volumes
mkdir -p "$vols"

# A volume released by a deleted claim still holds the old job's files: wipe it and offer it again.
for pv in $(kc get pv -l distillery.dev/dev-volume=true -o jsonpath='{range .items[?(@.status.phase=="Released")]}{.metadata.name}{" "}{end}' 2>/dev/null); do
  [ "$pv" = dev-models ] && continue
  dir=$(kc get pv "$pv" -o jsonpath='{.spec.hostPath.path}')
  kc delete pv "$pv" --wait=true >/dev/null
  case "$dir" in "$vols"/pv-*) rm -rf "$dir" ;; esac
done

for i in $(seq 1 "$count"); do
  dir=$vols/pv-$i
  mkdir -p "$dir" && chmod 0777 "$dir"
  cat <<YAML
---
apiVersion: v1
kind: PersistentVolume
metadata: {name: dev-pv-$i, labels: {distillery.dev/dev-volume: "true"}}
spec:
  capacity: {storage: 20Gi}
  accessModes: [ReadWriteOnce, ReadWriteMany, ReadOnlyMany]
  persistentVolumeReclaimPolicy: Retain
  storageClassName: ""
  hostPath: {path: $dir, type: Directory}
YAML
done >"$DEV/volumes.yaml"

models=$vols/models
want=$(sha256sum "$root/hack/dev/tiny_model.py" | cut -c1-16)
if [ "$(cat "$models/tiny-t5/.made-by" 2>/dev/null)" != "$want" ]; then
  mkdir -p "$models"
  "$root/.venv/bin/python" "$root/hack/dev/tiny_model.py" "$models/tiny-t5.tmp"
  echo "$want" >"$models/tiny-t5.tmp/.made-by"
  rm -rf "$models/tiny-t5" && mv "$models/tiny-t5.tmp" "$models/tiny-t5"
fi
chmod -R a+rX "$models"
cat >>"$DEV/volumes.yaml" <<YAML
---
apiVersion: v1
kind: PersistentVolume
metadata: {name: dev-models, labels: {distillery.dev/dev-volume: "true"}}
spec:
  capacity: {storage: 5Gi}
  accessModes: [ReadOnlyMany, ReadWriteOnce]
  persistentVolumeReclaimPolicy: Retain
  storageClassName: ""
  claimRef: {namespace: default, name: distillery-models}
  hostPath: {path: $models, type: Directory}
---
apiVersion: v1
kind: PersistentVolumeClaim
metadata: {name: distillery-models, namespace: default}
spec:
  accessModes: [ReadOnlyMany]
  storageClassName: ""
  volumeName: dev-models
  resources: {requests: {storage: 5Gi}}
YAML
kc apply -f "$DEV/volumes.yaml" >/dev/null
