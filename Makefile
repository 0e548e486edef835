# The two commands a newcomer needs are `make run` and `make test`; see README.md.
SHELL := /bin/bash
CARGO ?= cargo
BIN := target/release
# A fresh key for the demo, so it never meets another run (or another user).
DEMO_KEY ?= 0x5e$(shell printf '%06x' $$(( $$$$ & 0xffffff )))

.PHONY: all setup build run test lint bench clean

all: build

setup:
	@bash scripts/setup.sh

build:
	$(CARGO) build --release --workspace --bins

run: setup build
	@bash scripts/demo.sh "$(BIN)" "$(DEMO_KEY)"

# Integration tests spawn the real binaries, so build them first (debug profile).
test: setup
	$(CARGO) build --workspace --bins
	$(CARGO) test --workspace -- --test-threads=4
	@bash scripts/check-clean.sh

lint:
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --workspace --all-targets -- -D warnings
	RUSTDOCFLAGS="-D warnings" $(CARGO) doc --workspace --no-deps

bench:
	@echo "make bench: not yet (see the benchmark issue)"

# Removes our objects only: segments whose first bytes are our magic, and the
# semaphore set at the same key. KEY=0x... limits it to one key.
clean:
	@bash scripts/clean.sh $(KEY)
