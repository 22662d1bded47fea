# modelhub — see README.md. Every target works on a fresh machine: it installs what it needs.
SHELL := /bin/bash
PY ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
export MODELHUB_CACHE ?= $(HOME)/.cache/modelhub
N ?= 100

.PHONY: dev tools prometheus crds crds-check cluster-up cluster-down test test-unit test-e2e demo lint image install real-node-deps \
        bench-verify bench-rollout bench-revocation bench-scale fuzz clean

$(BIN)/python:
	$(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip

$(VENV)/.installed: pyproject.toml | $(BIN)/python
	$(BIN)/pip install -q -e '.[dev]'
	touch $@

dev: $(VENV)/.installed ## virtualenv with the operator and the test tools

tools: ## build the pinned control-plane binaries into $(MODELHUB_CACHE)/bin (once per version)
	hack/build-tools.sh etcd kube kwok helm

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

test: dev tools prometheus image ## every test: unit, then e2e on the local control plane (brought up and down if none runs)
	hack/with-cluster.sh $(BIN)/python -m pytest -q -ra tests/unit tests/e2e

test-unit: dev prometheus
	$(BIN)/python -m pytest -q -ra tests/unit

fuzz: dev ## property-based fuzzing of bundles and admission: 10,000+ examples per property (HYPOTHESIS_PROFILE=fuzz)
	HYPOTHESIS_PROFILE=fuzz $(BIN)/python -m pytest -q -ra -p no:cacheprovider tests/unit/test_fuzz.py

test-e2e: dev tools prometheus image
	hack/with-cluster.sh $(BIN)/python -m pytest -q -ra tests/e2e

demo: dev tools ## cluster up, CRDs, operator, sign -> verify -> roll out -> revoke
	hack/demo.sh

lint: dev
	$(BIN)/ruff check operator tests
	$(BIN)/mypy
	$(BIN)/lint-imports

bench-verify: dev
	$(BIN)/python tests/bench/bench_verify.py

bench-rollout: dev tools ## N versions applied at once until Available, against a floor; requests per version
	hack/with-cluster.sh $(BIN)/python tests/bench/bench_rollout.py --n $(N) --timeout $$(( 300 + $(N) ))

bench-revocation: dev tools ## one Revocation of N versions: deployments gone, traffic stopped, pods gone, vs a floor
	hack/with-cluster.sh $(BIN)/python tests/bench/bench_revocation.py --n $(N) $(if $(RUNS),--runs $(RUNS))

bench-scale: dev tools ## 1000 versions over 50 namespaces beside 5,000 unrelated objects: converge, RSS, idle CPU
	hack/with-cluster.sh $(BIN)/python tests/bench/bench_scale.py

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache .mypy_cache
