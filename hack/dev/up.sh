#!/usr/bin/env bash
# `make dev`: a real local Kubernetes with one real node, the operator deployed from config/default, a
# demo teacher, and the sample DistillationJob (config/samples) applied with kubectl: it annotates,
# trains, serves, and the student answers a prediction. Prints each step's time and, at the end, the
# commands to try. `make dev-down` removes everything.
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
source "$root/hack/cluster/lib.sh"
T0=$(date +%s.%N)
job=compare-numbers
sample=$root/config/samples/distillery_v1alpha1_distillationjob.yaml

step "python environment (.venv)" "$root/hack/python-env.sh"
step "cluster (hack/cluster/up.sh)" "$root/hack/cluster/up.sh"
export KUBECONFIG=$KUBECONFIG_ADMIN
step "local volumes and the tiny base model" "$root/hack/dev/volumes.sh"
step "CRDs" kc apply --server-side -f "$root/config/crd/bases"
# A rebuilt operator image keeps its tag, so the pod template carries the hash of the image's inputs: a
# changed image rolls the Deployment. The annotation goes in with the first apply (an overlay over
# hack/dev/manifests): patching it on afterwards rolled a pod that was still starting, and on a CI machine
# that pod sat in Terminating past the rollout wait.
overlay=$DEV/operator-manifests
inputs_file=$CACHE/images/operator.tar.inputs
[ -s "$inputs_file" ] || die "$inputs_file is missing: the operator image was not built (hack/images/all.sh)"
inputs=$(sha256sum <"$inputs_file" | cut -c1-16)
mkdir -p "$overlay"
base=$(realpath --relative-to="$overlay" "$root/hack/dev/manifests")  # kustomize refuses absolute paths
cat >"$overlay/kustomization.yaml" <<EOF
resources:
- $base
patches:
- patch: |-
    apiVersion: apps/v1
    kind: Deployment
    metadata: {name: distillery-controller-manager, namespace: distillery-system}
    spec: {template: {metadata: {annotations: {distillery.dev/image-inputs: "$inputs"}}}}
EOF
# --force-conflicts: a cluster made before the annotation moved here has it owned by kubectl-patch
step "operator (config/default)" kc apply --server-side --force-conflicts -k "$overlay"
step "demo teacher" kc apply -f "$root/hack/dev/manifests/demo-teacher.yaml"
python3 "$root/hack/dev/dataset.py" 1000 1 >"$DEV/train.jsonl"
step "dataset ConfigMap" bash -c "kubectl create configmap $job-data --from-file=train.jsonl=$DEV/train.jsonl --dry-run=client -o yaml | kubectl apply -f - >/dev/null"
step "operator ready" rollout distillery-system distillery-controller-manager
step "demo teacher ready" rollout distillery-demo demo-teacher

if [ "${DISTILLERY_DEV_RERUN:-0}" = 1 ]; then
  kc delete dj "$job" --ignore-not-found --wait
  kc delete sm "$job" --ignore-not-found --wait
fi
step "kubectl apply -f config/samples/$(basename "$sample")" kc apply -f "$sample"

log "waiting for the job (Pending -> Annotating -> Training -> Succeeded)"
last=""
deadline=$(( $(date +%s) + ${DISTILLERY_DEV_TIMEOUT:-1800} ))
while :; do
  line=$(kc get dj "$job" --no-headers 2>/dev/null | awk '{$NF=""; print}')
  if [ "$line" != "$last" ]; then log "  $line"; last=$line; fi
  stage=$(kc get dj "$job" -o jsonpath='{.status.stage}' 2>/dev/null)
  [ "$stage" = Succeeded ] && break
  if [ "$stage" = Failed ]; then
    kc get dj "$job" -o jsonpath='{range .status.conditions[?(@.type=="Failed")]}{.reason}: {.message}{"\n"}{end}' >&2
    die "the job failed"
  fi
  [ "$(date +%s)" -lt "$deadline" ] || die "the job did not finish in time"
  sleep 3
done
step "StudentModel Ready" kc wait --for=condition=Ready "sm/$job" --timeout=600s

printf '%s\n' '{"inputs":["First: 12\nSecond: 48","First: 73\nSecond: 56"],"explain":true}' >"$DEV/predict.json"
answer=$(kc create --raw "/api/v1/namespaces/default/services/$job-student:http/proxy/v1/predict" -f "$DEV/predict.json")
log "prediction: $answer"
kc get dj,sm
log "make dev done in $(elapsed_since "$T0")s"
cat <<TRY

The demo job ran end to end. Try:
  export KUBECONFIG=$KUBECONFIG_ADMIN
  kubectl get dj,sm
  kubectl describe dj $job
  kubectl get pods,jobs -l distillery.dev/job=$job
  kubectl create --raw /api/v1/namespaces/default/services/$job-student:http/proxy/v1/predict -f $DEV/predict.json
  # in the cluster: curl http://$job-student.default.svc:8080/v1/predict -d '{"inputs":["First: 3\nSecond: 9"]}'
Tear down: make dev-down
TRY
