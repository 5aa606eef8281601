# imagebake — `make demo` runs the main job on the embedded example,
# `make test` runs the tests. Both install what they need.
SHELL := /bin/bash
GO    ?= go
BIN   := bin/imagebake
PKGS  := ./...
# the Packer plugin is a module of its own (its go.mod says why)
PLUGIN := builders/packer/plugin
VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo devel)
LDFLAGS := -trimpath -ldflags "-s -w -X main.version=$(VERSION)"

.PHONY: all build test test-tools test-vet test-plain test-apart test-race test-plugin test-install demo repro lint bench fuzz clean tidy

all: build

build:
	$(GO) build $(LDFLAGS) -o $(BIN) ./cmd/imagebake
	$(GO) build -C $(PLUGIN) $(LDFLAGS) -o $(CURDIR)/bin/packer-plugin-imagebake ./cmd/packer-plugin-imagebake

# Debian packages the tests run for real: git, skopeo and umoci (reading
# the images), minisign (checking that the stock tool accepts our
# signatures). g10k, r10k and GNU time are the benchmarks' (make bench).
# busybox-static gives the Packer acceptance test a base with /bin/sh and tar.
# docker-registry (distribution 2.8) is the real registry pushes are tested on.
# python3-jsonschema is the real validator the JSON Schemas are checked with.
# rpm (rpm and rpmbuild) makes the real rpm databases bases are read from;
# mmdebstrap the real Debian base (scripts/ensure-debian-base).
TEST_PKGS := git skopeo umoci minisign busybox-static docker-registry rpm mmdebstrap bubblewrap octocatalog-diff gcc libc6-dev python3-jsonschema chromium
# packer 1.9.4, built once from the Go module cache (scripts/ensure-packer).
PACKER := $(CURDIR)/.cache/packer/packer
# versitygw v1.8.0, the S3 gateway (POSIX backend) S3 stores are tested on.
VERSITYGW := $(CURDIR)/.cache/versitygw/versitygw
# a real Debian 12 root file system (mmdebstrap), built once.
DEBIAN_BASE := $(CURDIR)/.cache/debian/bookworm-essential.tar
# a real Debian 12 with Debian's puppet (7.23): the base's Puppet and the
# compile gate (mmdebstrap --variant=apt --include=puppet), built once.
DEBIAN_PUPPET_BASE := $(CURDIR)/.cache/debian/bookworm-puppet.tar
# an AIO-style base (puppet-agent, /opt/puppetlabs/bin/puppet) made from
# it: the real AIO package cannot be fetched here.
AIO_PUPPET_BASE := $(CURDIR)/.cache/debian/bookworm-aio.tar
# the SPDX 2.3 JSON schema every SBOM is validated against (pinned sha256).
SPDX_SCHEMA := $(CURDIR)/.cache/spdx/spdx-schema-2.3.json
# cosign v3.0.4, built once (scripts/ensure-cosign): the tests check it
# verifies imagebake's signatures and attestations.
COSIGN := $(CURDIR)/.cache/cosign/cosign
# local-kms, an AWS KMS API server on loopback, built once
# (scripts/ensure-local-kms): push signs for cosign with an awskms:// key.
LOCAL_KMS := $(CURDIR)/.cache/local-kms/local-kms
# the OSV JSON schema (osv-schema v1.7.5, pinned sha256): the embedded copy
# catalog audit validates OSV records with is checked against it.
OSV_SCHEMA := $(CURDIR)/.cache/osv/osv-schema-1.7.5.json
test-tools:
	@./scripts/ensure-packages $(TEST_PKGS)
	@./scripts/ensure-packer $(PACKER)
	@./scripts/ensure-debian-base $(DEBIAN_BASE)
	@./scripts/ensure-debian-puppet-base $(DEBIAN_PUPPET_BASE)
	@./scripts/ensure-aio-puppet-base $(DEBIAN_PUPPET_BASE) $(AIO_PUPPET_BASE)
	@./scripts/ensure-versitygw $(VERSITYGW)
	@./scripts/ensure-spdx-schema $(SPDX_SCHEMA)
	@./scripts/ensure-osv-schema $(OSV_SCHEMA)
	@./scripts/ensure-cosign $(COSIGN)
	@./scripts/ensure-local-kms $(LOCAL_KMS)

# packages whose code runs goroutines: make test runs their tests with the
# race detector (and the others without), both runs side by side
RACE_PKGS := ./release ./internal/osv ./manifests/catalog ./puppet/... ./registry
TEST_ENV := IMAGEBAKE_NO_SKIP=1 IMAGEBAKE_PACKER=$(PACKER) IMAGEBAKE_VERSITYGW=$(VERSITYGW) IMAGEBAKE_DEBIAN_BASE=$(DEBIAN_BASE) IMAGEBAKE_DEBIAN_PUPPET_BASE=$(DEBIAN_PUPPET_BASE) IMAGEBAKE_AIO_PUPPET_BASE=$(AIO_PUPPET_BASE) IMAGEBAKE_SPDX_SCHEMA=$(SPDX_SCHEMA) IMAGEBAKE_OSV_SCHEMA=$(OSV_SCHEMA) IMAGEBAKE_COSIGN=$(COSIGN) IMAGEBAKE_LOCAL_KMS=$(LOCAL_KMS)
# the parts of make test run side by side, each one's output shown whole
# when it ends
test: test-tools
	@$(MAKE) --no-print-directory -j6 -Otarget test-vet test-plain test-apart test-race test-plugin test-install

# the command builds and vets on macOS and Windows too (select, check,
# upgrade, verify REGISTRY/REPO:TAG, catalog list; baking says it needs
# Linux); the tests run on Linux (their files say so)
CROSS := darwin/arm64 darwin/amd64 windows/amd64
test-vet:
	$(GO) vet $(PKGS)
	$(GO) vet -C $(PLUGIN) ./...
	@for t in $(CROSS); do echo "vet and build for $$t"; \
	  GOOS=$${t%/*} GOARCH=$${t#*/} $(GO) vet $(PKGS) && \
	  GOOS=$${t%/*} GOARCH=$${t#*/} $(GO) build -o /dev/null ./cmd/imagebake || exit 1; done

# the long tests that set the process environment (so cannot run beside the
# others of their package) run in a go test of their own, beside the rest
APART := TestReleasePlanShowsCatalogChanges|TestDSAStory|TestCompileGateHoldsHostileModule
test-plain:
	$(TEST_ENV) $(GO) test -count=1 -skip '^($(APART))$$' $$($(GO) list $(PKGS) | grep -vxF -f <($(GO) list $(RACE_PKGS)))

test-apart:
	$(TEST_ENV) $(GO) test -count=1 -run '^($(APART))$$' ./bake ./cmd/imagebake

test-race:
	$(TEST_ENV) $(GO) test -race -count=1 $(RACE_PKGS)

test-plugin:
	$(TEST_ENV) $(GO) test -C $(PLUGIN) -count=1 ./...

test-install:
	@./scripts/check-go-install

demo:
	$(GO) build $(LDFLAGS) -o $(BIN) ./cmd/imagebake
	@./scripts/demo $(BIN)

# Bake the example twice with another directory, umask, TZ, GOMAXPROCS and
# clock, compare digests, run diffoscope on a mismatch. (make test runs a
# smaller version: bake.TestBakeReproducible.)
repro: build
	@./scripts/repro $(BIN)

lint:
	@test -z "$$(gofmt -l $$(git ls-files '*.go'))" || { gofmt -l $$(git ls-files '*.go'); exit 1; }
	$(GO) vet $(PKGS)
	$(GO) vet -C $(PLUGIN) ./...
	$(GO) run honnef.co/go/tools/cmd/staticcheck@v0.6.1 $(PKGS)
	cd $(PLUGIN) && $(GO) run honnef.co/go/tools/cmd/staticcheck@v0.6.1 ./...
	@# the plugin's HCL2 schemas are generated (packer-sdc mapstructure-to-hcl2): never stale
	$(GO) generate -C $(PLUGIN) ./... && git diff --exit-code -- '$(PLUGIN)/*.hcl2spec.go'

# Short fuzz runs of every parser (longer: FUZZTIME=5m make fuzz). The
# minimisation of each new input is capped: it is quadratic in the input's
# size and counts no executions while it runs.
FUZZTIME ?= 20s
FUZZ = $(GO) test -run '^$$' -fuzztime $(FUZZTIME) -fuzzminimizetime 2s
fuzz:
	$(FUZZ) ./puppet/puppetfile -fuzz FuzzParse
	$(FUZZ) ./puppet/metadata -fuzz FuzzParse
	$(FUZZ) ./manifests/lockfile -fuzz FuzzParse
	$(FUZZ) ./manifests/manifest -fuzz FuzzParse
	$(FUZZ) ./manifests/catalog -fuzz FuzzParse
	$(FUZZ) ./bake -fuzz FuzzParseConfig
	$(FUZZ) ./bake -fuzz FuzzSetBaseImage
	$(FUZZ) ./agents -fuzz FuzzParseIndex
	$(FUZZ) ./internal/versionq -fuzz FuzzParse
	$(FUZZ) ./tarball -fuzz FuzzExtract
	$(FUZZ) ./builders -fuzz FuzzScanTar
	$(FUZZ) ./internal/pkgversion -fuzz FuzzCompare
	$(FUZZ) ./internal/osv -fuzz FuzzRecord
	$(FUZZ) ./internal/osv -fuzz FuzzMayConcern
	$(FUZZ) ./internal/osv -fuzz FuzzZip
	$(FUZZ) ./internal/printable -fuzz FuzzString
	$(FUZZ) ./internal/gitcache -fuzz FuzzRedact
	$(FUZZ) ./internal/gitcache -fuzz FuzzIndexPack
	$(FUZZ) ./internal/gitarg -fuzz FuzzRef
	$(FUZZ) ./deploy -fuzz FuzzParse
	$(FUZZ) ./internal/strict -fuzz FuzzDecodeTOML
	$(FUZZ) ./internal/distro -fuzz FuzzParseOSRelease
	$(FUZZ) ./internal/distro -fuzz FuzzParseDpkgStatus
	$(FUZZ) ./internal/distro -fuzz FuzzParseApkInstalled
	$(FUZZ) ./internal/distro -fuzz FuzzParseRpmdb

# Side-by-side benchmarks, each against its peer tool in one run.
# r10k: the second peer of the Puppetfile benchmark (Ruby; not needed by the tests)
bench: build test-tools
	@./scripts/ensure-packages r10k g10k time
	./bench/puppetfile.sh $(BIN)
	./bench/agents-sync.sh $(BIN)
	./bench/bake.sh $(BIN)
	./bench/push.sh $(BIN)
	./bench/osv-audit.sh $(BIN)
	./bench/store-pool.sh $(BIN)
	./bench/base-cache.sh $(BIN)
	./bench/store-50.sh $(BIN)
	./bench/rootfs-vs-pigz.sh $(BIN)
	$(GO) test ./agents -run '^$$' -bench . -benchtime 20x

# both modules: the plugin's go.sum follows the main module's requirements
tidy:
	$(GO) mod tidy
	cd $(PLUGIN) && $(GO) mod tidy

clean:
	rm -rf bin dist demo
