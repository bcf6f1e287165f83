# edgegw build, test and release targets. `make help` lists them.

GO      ?= go
BIN     := bin/edgegw
PKG     := ./cmd/edgegw
VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
COMMIT  ?= $(shell git rev-parse --short HEAD 2>/dev/null || echo unknown)
DATE    ?= $(shell date -u +%Y-%m-%dT%H:%M:%SZ)
LDFLAGS := -s -w -X main.version=$(VERSION) -X main.commit=$(COMMIT) -X main.date=$(DATE)
# Cross targets: GOOS/GOARCH[/GOARM].
CROSS   := linux/amd64 linux/arm64 linux/arm/7

.PHONY: help build run test vet fmt-check cross bench soak clean

help:
	@echo "make run        run the gateway on the shipped config (configs/edgegw.yaml)"
	@echo "make test       vet, format check, and every test with the race detector"
	@echo "make build      build $(BIN)"
	@echo "make cross      static binaries for $(CROSS) into dist/"
	@echo "make bench      benchmarks, printed side by side"
	@echo "make soak       the long forms of the failure tests"
	@echo "make dist       release binaries for $(DIST_PLATFORMS), size budget, SHA256SUMS"
	@echo "make packages   make dist, then .deb and .rpm packages (nfpm) into $(DIST)/"

build:
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags '$(LDFLAGS)' -o $(BIN) $(PKG)

run: build
	./$(BIN) run -c configs/edgegw.yaml

vet:
	$(GO) vet ./...

fmt-check:
	@out=$$(gofmt -l cmd internal compat); if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi

# The whole suite; keep it under 15 minutes on 2 cores. compat/dissdk is a
# separate module (the official Huawei Cloud Go SDK against our DIS server) so
# the main module does not carry the SDK.
test: vet fmt-check
	$(GO) test -race -timeout 12m ./...
	cd compat/dissdk && $(GO) vet ./... && $(GO) test -count=1 -timeout 5m ./...

cross:
	@mkdir -p dist
	@set -e; for t in $(CROSS); do \
		os=$$(echo $$t | cut -d/ -f1); arch=$$(echo $$t | cut -d/ -f2); arm=$$(echo $$t | cut -d/ -f3); \
		out=dist/edgegw-$$os-$$arch$${arm:+v$$arm}; \
		echo "building $$out"; \
		CGO_ENABLED=0 GOOS=$$os GOARCH=$$arch GOARM=$$arm $(GO) build -trimpath -ldflags '$(LDFLAGS)' -o $$out $(PKG); \
	done

bench:
	$(GO) test -run '^$$' -bench . -benchmem ./...
	$(GO) run ./cmd/edgegw-bench   # ingest vs bare mochi, backlog drain, publish->DIS latency

soak:
	$(GO) test -tags soak -timeout 60m ./...

clean:
	rm -rf bin dist

# ---- Release artifacts: make dist, make packages, make image-rootfs ----------
# (issue 8; proven by internal/release, which runs these targets.)

# DIST is where release artifacts go; the tests point it at a temporary directory.
DIST             ?= dist
# GOOS/GOARCH[/GOARM]. arm/6 is for ARMv6 boards (Raspberry Pi Zero and 1), where
# a GOARM=7 binary dies with SIGILL; the armhf .deb carries it for that reason.
DIST_PLATFORMS   ?= linux/amd64 linux/arm64 linux/arm/7 linux/arm/6
# 30 MB per binary: issue 8's budget for edge boxes (small flash, updates over
# slow links). The binaries are 16-17 MB, so a doubling fails the build.
MAX_BINARY_BYTES ?= 30000000
# Package version: tag vX.Y.Z gives X.Y.Z; N commits after it, X.Y.Z+N.gSHA;
# with no tag, 0.0.0+N.gSHA, N counting all commits, so a later build always
# upgrades an earlier one (dpkg and rpm both order by N).
PKG_VERSION      ?= $(shell d=$$(git describe --tags --match 'v[0-9]*' --long 2>/dev/null) \
	&& echo "$$d" | sed -E 's/^v//; s/-0-g[0-9a-f]+$$//; s/-([0-9]+)-g([0-9a-f]+)$$/+\1.g\2/' \
	|| echo "0.0.0+$$(git rev-list --count HEAD 2>/dev/null || echo 0).g$$(git rev-parse --short HEAD 2>/dev/null || echo unknown)")
# nfpm is pinned in tools/go.mod (a separate module, so the gateway's own
# dependency graph does not carry the packager's).
NFPM             ?= bin/nfpm
# format:binary:nfpm-arch. The armhf .deb takes the ARMv6 binary: Raspberry Pi OS
# armhf also runs on ARMv6 Pis; Debian armhf boards (ARMv7) run it too. RPM's
# armv7hl distributions are ARMv7 only.
PKG_MATRIX       := deb:amd64:amd64 deb:arm64:arm64 deb:armv6:arm6 rpm:amd64:amd64 rpm:arm64:arm64 rpm:armv7:arm7
# The container image's file tree (see deploy/Dockerfile); built for GOOS/GOARCH/GOARM of the environment.
ROOTFS           ?= bin/rootfs
CA_BUNDLE        ?= /etc/ssl/certs/ca-certificates.crt
IMAGE_UID        := 65532

.PHONY: dist dist-check checksums packages pkg image-rootfs

dist:
	@mkdir -p $(DIST) && rm -f $(DIST)/edgegw-* $(DIST)/edgegw_* $(DIST)/SHA256SUMS
	@set -e; for t in $(DIST_PLATFORMS); do \
		os=$$(echo $$t | cut -d/ -f1); arch=$$(echo $$t | cut -d/ -f2); arm=$$(echo $$t | cut -d/ -f3); \
		out=$(DIST)/edgegw-$$os-$$arch$${arm:+v$$arm}; \
		echo "building $$out"; \
		CGO_ENABLED=0 GOOS=$$os GOARCH=$$arch GOARM=$$arm $(GO) build -trimpath -ldflags '$(LDFLAGS)' -o $$out $(PKG); \
	done
	@$(MAKE) --no-print-directory dist-check checksums DIST=$(DIST)

# Fails when a binary is over MAX_BINARY_BYTES; prints every size.
dist-check:
	@set -e; fail=0; found=0; for f in $(DIST)/edgegw-linux-*; do \
		[ -f "$$f" ] || continue; found=1; \
		size=$$(stat -c %s "$$f"); \
		printf '%-34s %9d bytes  %2d.%d MB\n' "$$f" $$size $$((size / 1000000)) $$((size % 1000000 / 100000)); \
		if [ $$size -gt $(MAX_BINARY_BYTES) ]; then \
			echo "dist-check: $$f is $$size bytes, over the budget of $(MAX_BINARY_BYTES) bytes (MAX_BINARY_BYTES)" >&2; fail=1; \
		fi; \
	done; \
	if [ $$found = 0 ]; then echo "dist-check: no binaries in $(DIST); run make dist" >&2; exit 1; fi; \
	exit $$fail

checksums:
	@cd $(DIST) && files=$$(find . -maxdepth 1 -type f -name 'edgegw[-_]*' | sed 's|^\./||' | sort) && \
		{ [ -n "$$files" ] || { echo "checksums: no artifacts in $(DIST)" >&2; exit 1; }; } && \
		sha256sum $$files > SHA256SUMS && echo "wrote $(DIST)/SHA256SUMS ($$(echo $$files | wc -w) files)"

$(NFPM): tools/go.mod tools/go.sum
	$(GO) build -C tools -o $(abspath $(NFPM)) github.com/goreleaser/nfpm/v2/cmd/nfpm

# .deb and .rpm packages of the binaries in DIST (make dist first, or make packages).
pkg: $(NFPM)
	@set -e; epoch=$${SOURCE_DATE_EPOCH:-$$(git log -1 --format=%ct 2>/dev/null || date +%s)}; \
	for p in $(PKG_MATRIX); do \
		fmt=$${p%%:*}; rest=$${p#*:}; bin=$${rest%%:*}; arch=$${rest#*:}; \
		[ -f $(DIST)/edgegw-linux-$$bin ] || { echo "pkg: $(DIST)/edgegw-linux-$$bin is missing; run make dist" >&2; exit 1; }; \
		SOURCE_DATE_EPOCH=$$epoch EDGEGW_BINARY=$(DIST)/edgegw-linux-$$bin PKG_ARCH=$$arch PKG_VERSION='$(PKG_VERSION)' \
			$(abspath $(NFPM)) package --config deploy/nfpm.yaml --packager $$fmt --target $(DIST)/; \
	done
	@$(MAKE) --no-print-directory checksums DIST=$(DIST)

packages: dist
	@$(MAKE) --no-print-directory pkg DIST=$(DIST)

# The container image's files, laid out for deploy/Dockerfile (which runs this
# in its build stage): the binary, the image's config, CA certificates for
# HTTPS to DIS, a passwd entry for the non-root user, the state directory.
image-rootfs:
	@if [ -e $(ROOTFS) ]; then echo "image-rootfs: $(ROOTFS) exists; remove it or set ROOTFS" >&2; exit 1; fi
	install -d -m 0755 $(ROOTFS)/usr/bin $(ROOTFS)/etc/edgegw $(ROOTFS)/etc/ssl/certs
	install -d -m 1777 $(ROOTFS)/tmp
	install -d -m 0750 $(ROOTFS)/var/lib/edgegw
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags '$(LDFLAGS)' -o $(ROOTFS)/usr/bin/edgegw $(PKG)
	install -m 0644 deploy/docker/edgegw.yaml $(ROOTFS)/etc/edgegw/edgegw.yaml
	install -m 0644 $(CA_BUNDLE) $(ROOTFS)/etc/ssl/certs/ca-certificates.crt
	printf 'root:x:0:0:root:/root:/sbin/nologin\nedgegw:x:$(IMAGE_UID):$(IMAGE_UID):edgegw:/var/lib/edgegw:/sbin/nologin\n' > $(ROOTFS)/etc/passwd
	printf 'root:x:0:\nedgegw:x:$(IMAGE_UID):\n' > $(ROOTFS)/etc/group
