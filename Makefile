# aimachine — make targets. `make test` is what CI runs (.ci/run); `make demo` is the first thing to try.
SHELL := /bin/bash
.DEFAULT_GOAL := help

# testcontainers on an offline machine (shared/reference/testing.md §18).
export TESTCONTAINERS_RYUK_DISABLED := true
export TESTCONTAINERS_HOST_OVERRIDE ?= 127.0.0.1
export GOTOOLCHAIN ?= local
export CGO_ENABLED ?= 0

# Scenario selection for the simulator suite; keep in step with steps.DefaultTags.
TAGS ?= @fake && ~@wip
# Scenario order: -1 picks a random seed (printed in the summary), 0 keeps file order.
RANDOM_SEED ?= -1
REPORTS ?= reports
CATALOG ?= infrastructure-catalog.yml
# `aimachine version` names the commit even where Go stamps no VCS information (a git worktree,
# -buildvcs=false): -dirty marks uncommitted changes.
COMMIT := $(shell git rev-parse --short=12 HEAD 2>/dev/null)$(shell git diff --quiet HEAD 2>/dev/null || echo -dirty)
LDFLAGS := -X main.commit=$(COMMIT)

.PHONY: help test fuzz bench reliability vet unit bdd demo sim deploy-vm-llm-aimachine lint fmt build clean clean-docker

help: ## list the targets
	@grep -hE '^[a-zA-Z0-9_-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-26s %s\n", $$1, $$2}'

test: vet ## vet + unit tests + the reliability suites + every @fake scenario (strict, random order, container target when Docker answers)
	@mkdir -p $(REPORTS)
	GODOG_TAGS='$(TAGS)' GODOG_RANDOM='$(RANDOM_SEED)' AIMACHINE_REPORTS='$(abspath $(REPORTS))' \
		go test -count=1 -timeout 40m -tags reliability ./...
	$(MAKE) fuzz

# Fuzz targets run briefly in CI, one per command (go test -fuzz takes one target at a time);
# a failing input lands in the package's testdata/fuzz/ and then runs with every go test.
FUZZTIME ?= 10s
fuzz: ## fuzz the catalog loader and validator for FUZZTIME (no panic, no hang, bounded memory)
	go test -run='^$$' -fuzz='^FuzzLoad$$' -fuzztime=$(FUZZTIME) ./catalog

bench: ## the benchmarks: round trips at 50 ms (plan / converged deploy / verify), the fleet (8 VMs on 4 nodes vs 1), vLLM tok/s against concurrency
	go test -count=1 -run='^$$' -bench='^BenchmarkRoundTrips$$' -benchtime=1x ./cmd/aimachine/
	go test -count=1 -run='^$$' -bench='^BenchmarkFleetDeploy$$' -benchtime=1x ./provision/fleet/
	go test -count=1 -run='^$$' -bench='^BenchmarkBenchThroughput$$' -benchtime=1x ./provision/internal/guestsimtest/

reliability: ## only the reliability suites (fault matrix, crash, concurrency; RELIABILITY.md), about 5 minutes
	go test -count=1 -timeout 20m -tags reliability ./provision/internal/reliability/

vet: ## go vet every package (with the reliability suites)
	go vet -tags reliability ./...

bdd: ## the same scenarios through the godog CLI (go tool godog), strict, random order; fails on any skipped step
	@mkdir -p $(REPORTS)
	go tool godog run --strict --no-colors --random=$(RANDOM_SEED) -t '$(TAGS)' \
		-f 'pretty,junit:$(REPORTS)/junit.xml,cucumber:$(REPORTS)/cucumber.json' features
	go run ./scripts/checkreport $(REPORTS)/cucumber.json

demo: ## deploy VM 140 against the simulator (Docker if present, else in-process), then verify it
	@mkdir -p bin $(REPORTS)
	@echo "… building bin/aimachine and bin/demo (the first build compiles every dependency: a minute or two)"
	@go build -ldflags '$(LDFLAGS)' -o bin/ ./cmd/aimachine ./scripts/demo
	@echo "✓ built $$(bin/aimachine version)"
	bin/demo bin/aimachine $(CATALOG)

sim: ## run the simulator in the foreground and print the two lines that point another shell at it
	@mkdir -p bin
	@echo "… building bin/aimachine and bin/demo (the first build compiles every dependency: a minute or two)"
	@go build -ldflags '$(LDFLAGS)' -o bin/ ./cmd/aimachine ./scripts/demo
	@bin/demo --serve bin/aimachine $(CATALOG)

deploy-vm-llm-aimachine: ## deploy VM 140 on the real Proxmox host: aimachine doctor, then the @live scenarios in order
	@if [ "$${CI:-}" = "true" ]; then echo "deploy-vm-llm-aimachine: refusing to touch a real Proxmox host from CI" >&2; exit 2; fi
	@missing=""; \
	[ -n "$${PROXMOX_VE_ENDPOINT:-}" ] || missing="$$missing PROXMOX_VE_ENDPOINT"; \
	if [ -z "$${PROXMOX_VE_API_TOKEN:-}" ] && { [ -z "$${PROXMOX_VE_USERNAME:-}" ] || [ -z "$${PROXMOX_VE_PASSWORD:-}" ]; }; then \
		missing="$$missing PROXMOX_VE_API_TOKEN(or PROXMOX_VE_USERNAME+PROXMOX_VE_PASSWORD)"; fi; \
	if [ -n "$$missing" ]; then \
		echo "deploy-vm-llm-aimachine: missing credentials:$$missing" >&2; \
		echo "hint: export them (see README, 'Deploying to a real host'), e.g. PROXMOX_VE_ENDPOINT=https://pve.example:8006/" >&2; \
		exit 2; fi
	@# Read-only readiness first: every problem of the host with its fix; a ✗ stops here, before
	@# anything is created (aimachine prepare does the host steps the API allows).
	go run ./cmd/aimachine doctor --vm vm-llm-aimachine --catalog '$(CATALOG)'
	@mkdir -p $(REPORTS)
	@# In file order; AIMACHINE_STOP_ON_FAILURE=1 fails every scenario after the first failure without
	@# touching the host (godog's --stop-on-failure makes its cucumber formatter panic: godog#387).
	AIMACHINE_TARGET=live AIMACHINE_STOP_ON_FAILURE=1 AIMACHINE_CATALOG='$(CATALOG)' AIMACHINE_REPORTS='$(REPORTS)' \
		go tool godog run --strict --no-colors -t '@live && ~@wip' \
		-f 'pretty,junit:$(REPORTS)/junit.xml,cucumber:$(REPORTS)/cucumber.json' features

lint: ## gofmt check + go vet
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi
	go vet ./...

fmt: ## gofmt every Go file
	gofmt -w $$(git ls-files '*.go')

build: ## build bin/aimachine and bin/pvesim
	go build -ldflags '$(LDFLAGS)' -o bin/ ./cmd/aimachine ./fakes/cmd/pvesim

clean: clean-docker ## remove bin/, reports/, the simulator state (.state/) and leftover test containers
	rm -rf bin $(REPORTS) .state

clean-docker: ## remove this project's leftover test containers (Ryuk is off)
	@if command -v docker >/dev/null 2>&1 && docker info >/dev/null 2>&1; then \
		docker ps -aq --filter label=aimachine.test=1 | xargs -r docker rm -f; \
	else echo "clean-docker: Docker is not available: no containers to remove"; fi
