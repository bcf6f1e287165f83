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
