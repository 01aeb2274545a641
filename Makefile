# fracd: `make run` starts the daemon on the default config; `make test` runs
# the whole test suite (the command CI runs). Both install missing Debian
# packages first.
GO ?= go
BIN := bin/fracd

.PHONY: deps build test run vet fmt bench clean

deps:
	./scripts/install-deps.sh

build: deps
	$(GO) build -o $(BIN) ./cmd/fracd

test: deps
	$(GO) vet ./...
	$(GO) test -count=1 -timeout 25m ./...

# OMP_WAIT_POLICY=passive: oneDNN's OpenMP threads sleep instead of spinning
# between convolutions. It matters with workers: 1 only; with more, each
# file's inference runs on one thread and has no OpenMP team (README, Speed).
run: build
	OMP_WAIT_POLICY=$${OMP_WAIT_POLICY:-passive} ./$(BIN) serve

vet:
	$(GO) vet ./...

fmt:
	gofmt -w .

bench: deps
	$(GO) test -run '^$$' -bench . -benchmem ./...

clean:
	rm -rf bin
