# Distributed scraping platform. `make help` lists the targets.
SHELL := /bin/bash
.DEFAULT_GOAL := help

GO          ?= go
BIN         := $(CURDIR)/bin
TOOLS       := $(CURDIR)/.tools/bin
STATICCHECK := $(TOOLS)/staticcheck
STATICCHECK_VERSION := v0.8.2
# The S3-compatible server the S3 repository's tests run against (posix backend, on loopback).
VERSITYGW   := $(TOOLS)/versitygw
VERSITYGW_VERSION := v1.8.0
RIE         := $(TOOLS)/aws-lambda-rie
RIE_VERSION := v0.0.0-20261030222936-bef5c4ba774d
MODULES     := $(shell $(GO) list -f '{{.Dir}}' -m)
PYTHON      ?= python3
# Interpreter for the scripts' own unit tests; it needs each script's requirements (CI: Debian's python3-bs4).
SCRIPTS_PYTHON ?= $(PYTHON)
FUZZTIME    ?= 10s
# Attempts to shrink each new interesting input; the default (60s) would spend a short FUZZTIME shrinking
# the first archive-sized input a target finds.
FUZZMINIMIZE ?= 200x
# `make test` runs the fuzz targets for untrusted input briefly (module:package:target); their seed corpora in
# testdata/fuzz/ also run on every plain `go test`.
FUZZ_CI_TIME ?= 4s
FUZZ_CI_TARGETS := shared:./auth:FuzzParseJWKS shared:./contract:FuzzParseRequest shared:./contract:FuzzParseReply \
  functions:./gateway:FuzzDecodeScrapeBody worker:./internal/runner:FuzzParseResult shared:./auth:FuzzVerify \
  shared:./job:FuzzRequestID

.PHONY: help
help: ## Show this help
	@awk 'BEGIN {FS = ":[^#]*## "} /^[a-zA-Z_-]+:.*## / {n++; name[n] = $$1; text[n] = $$2; if (length($$1) > w) w = length($$1)} \
	  END {fmt = "  %-" w "s  %s\n"; for (i = 1; i <= n; i++) printf fmt, name[i], text[i]}' $(MAKEFILE_LIST)

.PHONY: build
build: ## Build the local binaries into bin/
	@mkdir -p $(BIN)
	cd functions && $(GO) build -o $(BIN)/gateway-local ./cmd/gateway-local && $(GO) build -o $(BIN)/devtoken ./cmd/devtoken
	cd worker && $(GO) build -o $(BIN)/worker ./cmd/worker && $(GO) build -o $(BIN)/scrapectl ./cmd/scrapectl
	cd local && $(GO) build -o $(BIN)/localstack ./cmd/localstack
	cd test && $(GO) build -o $(BIN)/bench ./cmd/bench

.PHONY: lambda
lambda: ## Build the gateway Lambda (bootstrap, arm64, provided.al2023) into dist/gateway/
	@mkdir -p dist/gateway
	cd functions && GOOS=linux GOARCH=arm64 CGO_ENABLED=0 $(GO) build -tags lambda.norpc -trimpath -ldflags='-s -w' -o $(CURDIR)/dist/gateway/bootstrap ./cmd/gateway

.PHONY: lambda-queuedepth
lambda-queuedepth: ## Build the queue-depth Lambda (bootstrap, arm64, provided.al2023) into dist/queuedepth/
	@mkdir -p dist/queuedepth
	cd functions && GOOS=linux GOARCH=arm64 CGO_ENABLED=0 $(GO) build -tags lambda.norpc -trimpath -ldflags='-s -w' -o $(CURDIR)/dist/queuedepth/bootstrap ./cmd/queuedepth

.PHONY: lambda-brokerusers
lambda-brokerusers: ## Build the BrokerUsers custom resource's Lambda (bootstrap, arm64, provided.al2023) into dist/brokerusers/
	@mkdir -p dist/brokerusers
	cd functions && GOOS=linux GOARCH=arm64 CGO_ENABLED=0 $(GO) build -tags lambda.norpc -trimpath -ldflags='-s -w' -o $(CURDIR)/dist/brokerusers/bootstrap ./cmd/brokerusers

.PHONY: run
run: build $(VERSITYGW) ## Run the whole local stack in the foreground (broker, S3 server, gateway on 127.0.0.1:8080, two workers, Prometheus); Ctrl-C stops it
	$(BIN)/localstack -bin $(BIN)

.PHONY: demo
demo: ## Serve the bundled demo page (local/demo/) on http://127.0.0.1:8765/ for the offline quick start; Ctrl-C stops it
	@echo "Serving local/demo/ on http://127.0.0.1:8765/ (scrape it with a stack started as EGRESS_ALLOW=127.0.0.1:8765 make run)"
	python3 -m http.server 8765 --bind 127.0.0.1 --directory local/demo

.PHONY: token
token: ## Print a dev JWT for the local stack: TOKEN=$(make -s token) (SCOPE="a b" adds scopes); with STAGE=dev, a deployed stage's token
	@if [ "$(origin STAGE)" = "command line" ]; then $(MAKE) -s --no-print-directory stage-token STAGE=$(STAGE); else \
	  cd functions && $(GO) build -o $(BIN)/devtoken ./cmd/devtoken && \
	  $(BIN)/devtoken -secret-file $(CURDIR)/.local/jwt-secret -scope "$(SCOPE)"; fi

.PHONY: test
test: ## Run every check: prerequisites, vet, staticcheck, tidy check, Go tests (unit, integration, end-to-end, faults), script tests, brief fuzzing, the images under Docker
	@# The tools make installs itself come first; if that fails (offline), prereq lists them with the rest.
	@$(MAKE) --no-print-directory $(VERSITYGW) $(RIE) || echo "make test: installing versitygw or aws-lambda-rie failed (above)"
	@$(MAKE) --no-print-directory prereq
	@# The container tests mostly wait (image layers, RabbitMQ nodes booting in containers): they run beside
	@# the rest, their output kept in $(CONTAINERS_LOG) and printed at the end; either failing fails make test.
	@mkdir -p $(dir $(CONTAINERS_LOG)); echo "make test: the container tests run in the background (output: $(CONTAINERS_LOG), printed at the end)"; \
	  $(MAKE) --no-print-directory test-containers-ci >$(CONTAINERS_LOG) 2>&1 & containers=$$!; \
	  r=0; $(MAKE) --no-print-directory lint test-go test-scripts fuzz-ci || r=1; \
	  c=0; wait $$containers || c=1; \
	  echo "== make test-containers-ci (test/docker)"; cat $(CONTAINERS_LOG); \
	  [ $$c = 0 ] || { echo "make test: the container tests failed (above)"; r=1; }; exit $$r

.PHONY: prereq
prereq: ## Check what make test needs (broker and its plugins, rabbitmq-server, prometheus, chromium, python3 with bs4, git, versitygw, rie) and list all that is missing
	@mkdir -p $(BIN) && cd test && $(GO) build -o $(BIN)/prereq ./cmd/prereq
	@SCRIPTS_PYTHON="$(SCRIPTS_PYTHON)" VERSITYGW="$(VERSITYGW)" AWS_LAMBDA_RIE="$${AWS_LAMBDA_RIE:-$(RIE)}" $(BIN)/prereq

# run-each LABEL, COMMAND runs COMMAND in every module, all of them even when some fail, then lists the
# modules that failed and fails itself if any did.
define run-each
	failed=""; for m in $(MODULES); do echo "== $(1) $$m"; (cd $$m && $(2)) || failed="$$failed $$m"; done; \
	if [ -n "$$failed" ]; then echo "$(1) failed in:$$failed"; exit 1; fi
endef

.PHONY: test-go
test-go: $(VERSITYGW) $(RIE) ## Go tests of every module, with the race detector (needs RabbitMQ; see README); every module runs, failures are listed at the end
	@$(call run-each,go test,$(GO) test -race -count=1 -timeout 15m ./...)

.PHONY: test-observability
test-observability: ## Dashboards and alerts against a real Prometheus; compose file and Dockerfiles (part of make test)
	cd test && $(GO) test -race -count=1 -timeout 10m ./observability/ ./container/

.PHONY: test-scripts
test-scripts: ## Unit tests of the example scripts (standard library only)
	@set -e; for d in scripts/*/; do if ls $$d/test_*.py >/dev/null 2>&1; then echo "== python tests $$d"; (cd $$d && $(SCRIPTS_PYTHON) -m unittest -v 2>&1); fi; done

.PHONY: lint
lint: $(STATICCHECK) ## go vet, staticcheck and a go mod tidy check in every module (all run; failures listed at the end), gofmt
	@fmt=$$(gofmt -l $(MODULES)); [ -z "$$fmt" ] || { echo "gofmt needed:"; echo "$$fmt"; }; \
	$(call run-each,lint,r=0; $(GO) vet ./... || r=1; $(STATICCHECK) ./... || r=1; $(GO) mod tidy -diff || r=1; exit $$r); \
	[ -z "$$fmt" ] || { echo "lint failed: gofmt needed (above)"; exit 1; }

$(STATICCHECK):
	GOBIN=$(TOOLS) $(GO) install honnef.co/go/tools/cmd/staticcheck@$(STATICCHECK_VERSION)

.PHONY: versitygw
versitygw: $(VERSITYGW) ## Install versitygw (the S3-compatible server of the S3 tests) into .tools/bin

.PHONY: rie
rie: $(RIE) ## Install the AWS Lambda runtime interface emulator (runs the bootstrap in tests) into .tools/bin

$(RIE):
	GOBIN=$(TOOLS) $(GO) install github.com/aws/aws-lambda-runtime-interface-emulator/cmd/aws-lambda-rie@$(RIE_VERSION)

$(VERSITYGW):
	GOBIN=$(TOOLS) $(GO) install github.com/versity/versitygw/cmd/versitygw@$(VERSITYGW_VERSION)

# --- Images (README.md, "Docker"). Every base image is a build argument defaulting to the official image;
# where no registry answers, base-images builds stand-ins from Debian packages under the official names.
DOCKER       ?= docker
IMAGE_TAG    ?= local

.PHONY: base-images
base-images: ## Build stand-ins for the official base images from Debian packages where they are missing (debootstrap; needs root; PULL_BASE_IMAGES=1 pulls the official ones instead; PREBUILT=1 skips the Go image)
	DOCKER=$(DOCKER) GO=$(GO) PREBUILT=$(PREBUILT) VERSITYGW=$(VERSITYGW) local/base-images/base-images.sh

# PREBUILT=1: the images get binaries built here (static, CGO_ENABLED=0) instead of compiling them inside
# (each Dockerfile's `prebuilt` target; no Go image, no module download in the build); the container tests
# build them so. The default compiles from the sources inside the build, as users and the CDK asset do.
PREBUILT     ?=
IMAGE_BIN    := $(BIN)/image
IMAGE_GOFLAGS := CGO_ENABLED=0 GOFLAGS=-trimpath

.PHONY: images
images: ## Build scraping-platform/{gateway,worker,scrapectl}:local (IMAGE_TAG; PREBUILT=1 copies host-built binaries in) (make base-images first where no registry answers)
ifeq ($(PREBUILT),1)
	@mkdir -p $(IMAGE_BIN)
	cd functions && $(IMAGE_GOFLAGS) $(GO) build -ldflags='-s -w' -o $(IMAGE_BIN)/gateway-local ./cmd/gateway-local && \
	  $(IMAGE_GOFLAGS) $(GO) build -ldflags='-s -w' -o $(IMAGE_BIN)/devtoken ./cmd/devtoken
	cd worker && $(IMAGE_GOFLAGS) $(GO) build -ldflags='-s -w' -o $(IMAGE_BIN)/worker ./cmd/worker && \
	  $(IMAGE_GOFLAGS) $(GO) build -ldflags='-s -w' -o $(IMAGE_BIN)/scrapectl ./cmd/scrapectl
	cp /etc/ssl/certs/ca-certificates.crt $(IMAGE_BIN)/
	printf 'FROM scratch\nCOPY . /out/\n' | $(DOCKER) build -q -t scraping-platform/binaries:$(IMAGE_TAG) -f - $(IMAGE_BIN) >/dev/null
	$(DOCKER) build --target prebuilt --build-arg BINARIES_IMAGE=scraping-platform/binaries:$(IMAGE_TAG) -f functions/Dockerfile -t scraping-platform/gateway:$(IMAGE_TAG) .
	$(DOCKER) build --target prebuilt --build-arg BINARIES_IMAGE=scraping-platform/binaries:$(IMAGE_TAG) -f worker/Dockerfile -t scraping-platform/worker:$(IMAGE_TAG) .
	$(DOCKER) build --target scrapectl-prebuilt --build-arg BINARIES_IMAGE=scraping-platform/binaries:$(IMAGE_TAG) -f worker/Dockerfile -t scraping-platform/scrapectl:$(IMAGE_TAG) .
else
	$(DOCKER) build -f functions/Dockerfile -t scraping-platform/gateway:$(IMAGE_TAG) .
	$(DOCKER) build -f worker/Dockerfile -t scraping-platform/worker:$(IMAGE_TAG) .
	$(DOCKER) build -f worker/Dockerfile --target scrapectl -t scraping-platform/scrapectl:$(IMAGE_TAG) .
endif
	@$(DOCKER) image ls --format '{{.Repository}}:{{.Tag}}  {{.Size}}' 'scraping-platform/*:$(IMAGE_TAG)'

# The container tests (test/docker, build tag containers). make test runs them with -short (the subset
# README.md's Docker section lists); make test-containers runs them all.
.PHONY: test-containers-ci
CONTAINERS_LOG ?= $(BIN)/test-containers.log

test-containers-ci: ## The container tests as make test runs them: base images and images (PREBUILT=1) first, then test/docker (no race detector: the code under test runs in the containers); fails without an engine
	@$(MAKE) --no-print-directory base-images images PREBUILT=1
	cd test && $(GO) test -tags containers -count=1 -v -timeout 20m ./docker/

.PHONY: test-containers
test-containers: ## The images under a real Docker engine (make test runs them too, through test-containers-ci), with the race detector: the worker as Fargate runs it, a RabbitMQ cluster in containers, the compose stack; builds base images and images (PREBUILT=1) first
	@$(MAKE) --no-print-directory base-images images PREBUILT=1
	cd test && $(GO) test -tags containers -race -count=1 -timeout 30m ./docker/

.PHONY: scrapectl
scrapectl: ## Build scrapectl (publishes scripts to the S3 repository) into bin/
	@mkdir -p $(BIN)
	cd worker && $(GO) build -o $(BIN)/scrapectl ./cmd/scrapectl

.PHONY: fuzz
fuzz: ## Run every fuzz target for FUZZTIME each (default 10s)
	@set -e; for m in $(MODULES); do (cd $$m && for pkg in $$($(GO) list ./...); do \
	  for f in $$($(GO) test -list '^Fuzz' $$pkg | grep '^Fuzz' || true); do \
	    echo "== $$pkg $$f"; $(GO) test -run '^$$' -fuzz "^$$f$$" -fuzztime $(FUZZTIME) -fuzzminimizetime $(FUZZMINIMIZE) $$pkg; done; done); done

.PHONY: fuzz-ci
fuzz-ci: ## Fuzz the parsers of untrusted input (requests, replies, script output, JWTs) for FUZZ_CI_TIME each (default 4s)
	@set -e; for t in $(FUZZ_CI_TARGETS); do IFS=: read -r m p f <<< "$$t"; echo "== fuzz $$m $$p $$f"; \
	  for try in 1 2 3; do \
	    if out=$$(cd $$m && $(GO) test -run '^$$' -fuzz "^$$f$$" -fuzztime $(FUZZ_CI_TIME) -fuzzminimizetime $(FUZZMINIMIZE) $$p 2>&1); then \
	      echo "$$out"; break; fi; \
	    echo "$$out"; \
	    if [ $$try != 3 ] && grep -q 'context deadline exceeded' <<< "$$out" && ! grep -q 'Failing input written' <<< "$$out"; then \
	      echo "== fuzz $$f: the fuzzing engine overran -fuzztime on a busy machine (no failing input); again"; continue; fi; \
	    exit 1; \
	  done; done

.PHONY: bench
bench: build ## Benchmark POST /scrape against raw AMQP RPC; cold vs warm runs; shared vs one-call-per-runner async runs; uncached vs cached environments
	$(BIN)/bench -bin $(BIN)
	cd worker && $(GO) test -run '^$$' -bench ColdVsWarm -benchtime 200x ./internal/runner/
	cd worker && $(GO) test -run '^$$' -bench SharedVsOneCallPerRunner -benchtime 3x ./internal/runner/
	cd worker && $(GO) test -run '^$$' -bench FirstRequestEnvironment -benchtime 3x ./internal/envcache/

.PHONY: tidy
tidy: ## go mod tidy in every module
	@for m in $(MODULES); do (cd $$m && $(GO) mod tidy); done

.PHONY: clean
clean: ## Remove build output: bin/, dist/, cdk.out/ (keeps .local/, which holds the dev JWT secret, and .tools/)
	rm -rf $(BIN) dist cdk.out

# --- Deploy: the CDK Go app in infra/ (README.md, "Deploy"). STAGE picks a stage of cdk.json. -------------
STAGE        ?= dev
CDK_DIR      := $(CURDIR)/.tools/cdk
# The CLI and Node.js 22 (the npm package "node", which ships the binary) are pinned by infra/package.json +
# package-lock.json; every CDK command runs with that Node first on PATH, so the CLI and the app's jsii
# runtime use Node 22 whatever Node installed them.
CDK_PATH     := $(CDK_DIR)/node_modules/.bin
CDK          := PATH="$(CDK_PATH):$$PATH" $(CDK_PATH)/cdk
CDK_BIN      := $(CDK_PATH)/cdk
# CDK_APP=cdk.out deploys a cloud assembly synthesized before (the pipeline's build job) as it is.
CDK_APP      ?=
# never in CI; locally the CLI asks before widening IAM or security groups.
CDK_APPROVAL ?= broadening
OUTPUTS      := $(CURDIR)/dist/outputs-$(STAGE).json
CDK_LAMBDAS  := $(if $(CDK_APP),,lambda lambda-queuedepth lambda-brokerusers)

# Installed outside the Go modules (gofmt and `go ./...` would otherwise walk its node_modules).
$(CDK_BIN): infra/package.json infra/package-lock.json
	@mkdir -p $(CDK_DIR)
	cp infra/package.json infra/package-lock.json $(CDK_DIR)/
	cd $(CDK_DIR) && npm ci --no-audit --no-fund
	@touch $@

.PHONY: cdk
cdk: $(CDK_BIN) ## Install the pinned AWS CDK CLI and Node.js 22 into .tools/cdk (make synth/deploy do it when needed)

.PHONY: synth
synth: lambda lambda-queuedepth lambda-brokerusers $(CDK_BIN) ## Synthesize every stage into cdk.out/ (cdk-nag or CloudFormation findings fail it)
	@# --quiet still ends with the CLI's "Supply a stack id … to display its template" hint, which reads as a
	@# request here: it is dropped, and the templates' paths are printed instead.
	@set -o pipefail; $(CDK) synth -c stage=all --quiet --output $(CURDIR)/cdk.out 2>&1 | grep -v '^Supply a stack id'
	@echo "make synth: CloudFormation templates, one per stack:"; ls -1 $(CURDIR)/cdk.out/*.template.json | sed 's#^$(CURDIR)/#  #'

.PHONY: diff
diff: $(CDK_LAMBDAS) $(CDK_BIN) ## Show what deploying a stage would change (make diff STAGE=prod [CDK_APP=cdk.out]; AWS credentials)
	$(CDK) diff --no-color $(if $(CDK_APP),--app $(CDK_APP),-c stage=$(STAGE)) $(STACKS)

# The stacks of a stage: the platform, and its Grafana stack where observability.grafana is on (deploy it
# with make deploy-grafana).
STACKS = ScrapingPlatform-$(STAGE)

.PHONY: deploy
deploy: $(CDK_LAMBDAS) $(CDK_BIN) scrapectl ## Deploy a stage (make deploy STAGE=dev; AWS credentials), publish scripts/, then smoke-check it
	@mkdir -p $(dir $(OUTPUTS))
	$(CDK) deploy $(if $(CDK_APP),--app $(CDK_APP),-c stage=$(STAGE)) --require-approval $(CDK_APPROVAL) \
	  --outputs-file $(OUTPUTS) ScrapingPlatform-$(STAGE)
	$(MAKE) --no-print-directory publish-scripts STAGE=$(STAGE)
	$(MAKE) --no-print-directory smoke STAGE=$(STAGE)

.PHONY: deploy-grafana
deploy-grafana: $(CDK_LAMBDAS) $(CDK_BIN) ## Deploy a stage's optional Grafana stack (observability.grafana; needs IAM Identity Center)
	$(CDK) deploy $(if $(CDK_APP),--app $(CDK_APP),-c stage=$(STAGE)) --require-approval $(CDK_APPROVAL) ScrapingGrafana-$(STAGE)

.PHONY: publish-scripts
publish-scripts: scrapectl ## Publish every script of scripts/ to a deployed stage's bucket (make publish-scripts STAGE=dev)
	@set -e; out() { cd infra && $(GO) run ./cmd/smoke -outputs $(OUTPUTS) -stack ScrapingPlatform-$(STAGE) -print $$1; }; \
	bucket=$$(out ScriptsBucketName); region=$$(out Region); \
	for d in scripts/*/; do \
	  S3_BUCKET_NAME=$$bucket S3_REGION=$$region S3_PREFIX=scripts/ $(BIN)/scrapectl scripts push --progress never $$d; \
	done

.PHONY: smoke
smoke: ## Smoke-check a deployed stage: authorizers, /health, one real scrape as a job, with a token it mints (make smoke STAGE=dev)
	cd infra && $(GO) run ./cmd/smoke -outputs $(OUTPUTS) -stack ScrapingPlatform-$(STAGE)

.PHONY: stage-token
stage-token: ## Print an access token of a deployed stage's machine client (client-credentials grant; make -s stage-token STAGE=dev)
	@cd infra && $(GO) run ./cmd/smoke -outputs $(OUTPUTS) -stack ScrapingPlatform-$(STAGE) -token
