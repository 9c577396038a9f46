# layerkeeper — build, generate, verify, test.
# `make test` and `make demo` install what they need (Debian packages, tools built from the Go
# module proxy into ./bin, cached by version) and may be run on a fresh machine as root.

SHELL := /usr/bin/env bash -o pipefail
.SHELLFLAGS := -ec
.DEFAULT_GOAL := help

VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
IMG ?= layerkeeper:$(VERSION)
BIN := $(CURDIR)/bin
GO_TEST_FLAGS ?= -count=1
CONTROLLER_GEN = $(shell hack/build-tool.sh controller-gen)

##@ General

.PHONY: help
help: ## Show the targets.
	@awk 'BEGIN {FS = ":.*##"; printf "Usage: make <target>\n"} /^[a-zA-Z_0-9-]+:.*?##/ { printf "  \033[36m%-18s\033[0m %s\n", $$1, $$2 } /^##@/ { printf "\n\033[1m%s\033[0m\n", substr($$0, 5) }' $(MAKEFILE_LIST)

##@ Development

.PHONY: generate
generate: ## Generate deepcopy code from the API types.
	$(CONTROLLER_GEN) object:headerFile=hack/boilerplate.go.txt paths=./api/...

.PHONY: manifests
manifests: ## Generate CRDs and RBAC into config/ from the API types and RBAC markers.
	$(CONTROLLER_GEN) crd paths=./api/... output:crd:artifacts:config=config/crd/bases
	$(CONTROLLER_GEN) rbac:roleName=layerkeeper-controller paths=./controllers/... output:rbac:artifacts:config=config/rbac/controller
	$(CONTROLLER_GEN) rbac:roleName=layerkeeper-agent paths=./nodeagent/... output:rbac:artifacts:config=config/rbac/agent

.PHONY: chart
chart: ## Sync the chart's CRDs and RBAC from config/ and render its README from values.yaml.
	hack/sync-chart.sh
	go run ./hack/chartdoc charts/layerkeeper

.PHONY: fmt
fmt: ## Format the Go code.
	gofmt -w $$(git ls-files '*.go')

.PHONY: lint
lint: ## go vet and gofmt.
	go vet ./...
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt would change:"; echo "$$out"; exit 1; fi

.PHONY: docs
docs: ## Generate the API reference (docs/reference.md) from the CRDs.
	go run ./hack/crddoc config/crd/bases docs/reference.md

.PHONY: verify
verify: generate manifests chart docs lint ## Regenerate everything and fail if anything changed.
	go mod tidy
	@if [ -n "$$(git status --porcelain -- api config charts docs/reference.md go.mod go.sum)" ]; then \
	  echo "generated files are out of date; run 'make generate manifests chart docs' and commit:"; \
	  git status --porcelain -- api config charts docs/reference.md go.mod go.sum; git --no-pager diff --stat; exit 1; fi

##@ Build

.PHONY: build
build: ## Build the layerkeeper binary into ./bin.
	CGO_ENABLED=0 go build -trimpath -ldflags "-s -w -X main.version=$(VERSION)" -o $(BIN)/layerkeeper .

.PHONY: docker-build
docker-build: ## Build the container image (needs a Docker engine).
	docker build --build-arg VERSION=$(VERSION) -t $(IMG) .

##@ Test

.PHONY: deps
deps: ## Install the Debian packages the tests use (root).
	hack/install-deps.sh

.PHONY: envtest
envtest: deps ## Build kube-apiserver and kubectl from source and prepare the envtest assets.
	hack/envtest-assets.sh

.PHONY: test
test: deps ## Run every test against the real parts (installs and builds what it needs).
	hack/test.sh

.PHONY: test-unit
test-unit: ## Run the tests that need nothing but Go.
	go test $(GO_TEST_FLAGS) -short ./...

.PHONY: bench
bench: deps ## Run the benchmarks against their baselines and print the figures.
	hack/bench.sh

##@ Cluster

.PHONY: cluster-up
cluster-up: deps ## Start a real single-node cluster on 127.0.0.1 in _output/cluster (when up: rebuilds and re-imports the images).
	hack/cluster.sh up

.PHONY: cluster-down
cluster-down: ## Stop the cluster by its recorded PIDs and clean up.
	hack/cluster.sh down

##@ Demo

.PHONY: demo
demo: deps ## Bring up the local setup and run the scenario.
	hack/demo.sh
