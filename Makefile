# Distillery's build, test and deploy targets (kubebuilder conventions).
# The two commands a new user needs: `make dev` (the main job on an embedded local cluster) and `make test`.

IMG ?= distillery/operator:dev
STUDENT_IMG ?= distillery/student:dev
BIN := $(CURDIR)/bin
CONTROLLER_GEN := $(BIN)/controller-gen
KUBECTL ?= $(BIN)/k8s/kubectl
PYTHON_VENV := $(CURDIR)/.venv
export KUBEBUILDER_ASSETS := $(BIN)/k8s
GO_TEST_FLAGS ?= -count=1

.PHONY: all
all: build

##@ Development

.PHONY: controller-gen
controller-gen: ## Build controller-gen (controller-tools v0.23.0) into bin/.
	@hack/build-k8s-binaries.sh controller-gen

.PHONY: envtest
envtest: ## Build etcd, kube-apiserver and kubectl for envtest into bin/k8s (cached).
	@hack/build-k8s-binaries.sh etcd kube-apiserver kubectl

.PHONY: manifests
manifests: controller-gen ## Generate CRDs and RBAC from the API markers.
	$(CONTROLLER_GEN) rbac:roleName=manager-role crd paths="./api/..." paths="./controllers/..." \
		output:crd:artifacts:config=config/crd/bases output:rbac:artifacts:config=config/rbac

.PHONY: generate
generate: controller-gen ## Generate deepcopy code.
	$(CONTROLLER_GEN) object:headerFile="hack/boilerplate.go.txt" paths="./api/..."

.PHONY: fmt
fmt: ## go fmt.
	go fmt ./...

.PHONY: vet
vet: ## go vet, the e2e, simulation and local-run tiers included.
	go vet ./...
	go vet -tags e2e ./test/e2e/...
	go vet -tags sim ./test/sim/...
	go vet -tags local ./test/local/...

.PHONY: verify-generated
verify-generated: generate manifests ## Fail when generated files differ from what is committed.
	@hack/verify-generated.sh

.PHONY: python-env
python-env: ## Create the student runtime's virtualenv in .venv (cached by requirements hash).
	@hack/python-env.sh

##@ Local cluster

.PHONY: dev
dev: ## The main job on an embedded local cluster: cluster, operator, demo teacher, sample job to a served model.
	@hack/dev/up.sh

.PHONY: dev-down
dev-down: ## Remove everything `make dev` made (processes, mounts, bridge, iptables chains, state). Safe twice.
	@hack/cluster/down.sh

##@ Test

.PHONY: test
test: verify-generated vet test-go test-python test-local ## Run every test: generated-file check, go vet, Go (unit + envtest), Python, the local run.

.PHONY: test-go
test-go: envtest ## Go unit and envtest integration tests.
	go test $(GO_TEST_FLAGS) ./...

.PHONY: test-e2e
test-e2e: ## End-to-end tests on the local cluster (brings it up with `make dev` first, then installs Kueue).
	@hack/dev/up.sh
	@hack/kueue/install.sh
	go test -tags e2e -count=1 -timeout 60m ./test/e2e/...

.PHONY: test-sim
test-sim: ## Simulation tests: the operator against a KWOK cluster (real scheduler, Job controller, GC); brings it up and down.
	go test -tags sim ./test/sim/... -count=1 -timeout 20m

.PHONY: sim-down
sim-down: ## Remove the KWOK simulation cluster, if one is left.
	@hack/kwok/down.sh

.PHONY: bench-scale
bench-scale: ## Scale benchmark on KWOK: N=100 and 1000 DistillationJobs, a fresh cluster each; prints a table.
	hack/bench/scale/run.sh 100 1000

.PHONY: test-python
test-python: python-env ## The student runtime's pytest suite (CPU).
	cd student && $(PYTHON_VENV)/bin/python -m pytest -q

.PHONY: test-local
test-local: python-env ## `distillery run` on the demo sample against the demo teacher, no cluster, to a served model (CPU, minutes).
	DISTILLERY_TEST_PYTHON=$(PYTHON_VENV)/bin/python go test -tags local -count=1 -timeout 60m ./test/local/...

##@ Build

.PHONY: build
build: ## Build the operator and the annotator.
	go build -o $(BIN)/manager ./cmd/manager
	go build -o $(BIN)/annotator ./cmd/annotator

.PHONY: cli
cli: ## Build the distillery CLI into bin/distillery, and bin/kubectl-distillery (the same binary) for kubectl.
	go build -o $(BIN)/distillery ./cmd/distillery
	ln -sf distillery $(BIN)/kubectl-distillery

CLI_PLATFORMS ?= linux/amd64 linux/arm64 darwin/amd64 darwin/arm64
.PHONY: cli-dist
cli-dist: ## Build the krew archives dist/kubectl-distillery_<os>_<arch>.tar.gz and their sha256 (hack/krew/distillery.yaml).
	@hack/krew/archives.sh $(CLI_PLATFORMS)

.PHONY: run
run: manifests ## Run the operator against the current kubeconfig.
	go run ./cmd/manager

##@ Deployment

.PHONY: install
install: manifests ## Install the CRDs into the current cluster.
	$(KUBECTL) apply --server-side -f config/crd/bases

.PHONY: uninstall
uninstall: ## Remove the CRDs (and every DistillationJob and StudentModel) from the current cluster.
	$(KUBECTL) delete --ignore-not-found -f config/crd/bases

.PHONY: deploy
deploy: manifests ## Deploy the operator (config/default) to the current cluster.
	$(KUBECTL) apply --server-side -k config/default

.PHONY: undeploy
undeploy: ## Remove the operator from the current cluster.
	$(KUBECTL) delete --ignore-not-found -k config/default

.PHONY: build-installer
build-installer: manifests ## Render config/default into one dist/install.yaml.
	mkdir -p dist
	$(KUBECTL) kustomize config/default > dist/install.yaml

.PHONY: help
help: ## Show this help.
	@awk 'BEGIN {FS = ":.*##"} /^[a-zA-Z_-]+:.*?##/ { printf "  %-18s %s\n", $$1, $$2 } /^##@/ { printf "\n%s\n", substr($$0, 5) }' $(MAKEFILE_LIST)
