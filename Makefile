# modelhub — see README.md. Every target works on a fresh machine: it installs what it needs.
SHELL := /bin/bash
PY ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
export MODELHUB_CACHE ?= $(HOME)/.cache/modelhub
N ?= 100

.PHONY: dev tools prometheus gateway-api crds crds-check cluster-up cluster-down test test-unit test-e2e demo lint image install real-node-deps \
        bench-verify bench-rollout bench-revocation fuzz clean

$(BIN)/python:
	$(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip

$(VENV)/.installed: pyproject.toml | $(BIN)/python
	$(BIN)/pip install -q -e '.[dev]'
	touch $@

dev: $(VENV)/.installed ## virtualenv with the operator and the test tools

tools: ## build the pinned control-plane binaries into $(MODELHUB_CACHE)/bin (once per version)
	hack/build-tools.sh etcd kube kwok helm registry oras controller-gen

gateway-api: ## the Gateway API CRDs (from the Go module sigs.k8s.io/gateway-api) into $(MODELHUB_CACHE)/gateway-api
	hack/gateway-api-crds.sh

prometheus: ## Debian's prometheus package: promtool and a server for the alert, dashboard and scrape tests
	hack/install-prometheus.sh

crds: dev ## regenerate crds/ from the pydantic API types (and the chart's copy)
	$(BIN)/python -m modelhub.api.crdgen --out crds
	rm -f charts/modelhub/crds/*.yaml && cp crds/*.yaml charts/modelhub/crds/

crds-check: dev
	$(BIN)/python -m modelhub.api.crdgen --out crds --check

cluster-up: ## local control plane on 127.0.0.1 with fake GPU/CPU/edge nodes
	hack/cluster.sh up

cluster-down: ## stop it and leave no process behind
	hack/cluster.sh down

real-node-deps: ## containerd, runc, CNI plugins, buildah, debootstrap from Debian (for the real node and images)
	hack/real-node.sh deps

image: real-node-deps ## build localhost/modelhub:dev and localhost/modelhub-model-server:dev (buildah), load into real-0
	hack/image.sh load

install: ## helm install the chart with the dev image into the cluster of KUBECONFIG (default: the local control plane)
	hack/install.sh

test: dev tools prometheus gateway-api image ## every test: unit, then e2e on the local control plane (brought up and down if none runs)
	hack/with-cluster.sh $(BIN)/python -m pytest -q -ra tests/unit tests/e2e

test-unit: dev prometheus
	$(BIN)/python -m pytest -q -ra tests/unit

fuzz: dev ## property-based fuzzing of bundles and admission: 10,000+ examples per property (HYPOTHESIS_PROFILE=fuzz)
	HYPOTHESIS_PROFILE=fuzz $(BIN)/python -m pytest -q -ra -p no:cacheprovider tests/unit/test_fuzz.py

test-e2e: dev tools prometheus gateway-api image
	hack/with-cluster.sh $(BIN)/python -m pytest -q -ra tests/e2e

# The demo installs the chart with the images on the real node; MODELHUB_DEMO_MODE=process needs neither.
demo: dev tools $(if $(filter process,$(MODELHUB_DEMO_MODE)),,image) ## cluster + real node, helm install, sign -> verify -> roll out on real-0 -> tamper -> revoke
	hack/demo.sh

lint: dev
	$(BIN)/ruff check operator tests
	$(BIN)/mypy
	$(BIN)/lint-imports

bench-verify: dev
	$(BIN)/python tests/bench/bench_verify.py

bench-rollout: dev tools
	hack/with-cluster.sh $(BIN)/python tests/bench/bench_rollout.py

bench-revocation: dev tools
	hack/with-cluster.sh $(BIN)/python tests/bench/bench_revocation.py --n $(N)

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache .mypy_cache
