# The two commands a newcomer needs are `make run` and `make test`; see README.md.
SHELL := /bin/bash
CARGO ?= cargo
BIN := target/release
# A fresh key for the demo, so it never meets another run (or another user).
DEMO_KEY ?= 0x5e$(shell printf '%06x' $$(( $$$$ & 0xffffff )))

.PHONY: all setup build run lab lab-clean test lint bench clean

all: build

setup:
	@bash scripts/setup.sh

build:
	$(MAKE) -C peers/c
	$(CARGO) build --release --workspace --bins

run: setup build
	@bash scripts/demo.sh "$(BIN)" "$(DEMO_KEY)"

# The lab: writer, reader and the live inspector in three tmux panes on a fresh key,
# in slow motion, with the exercises (docs/lab.md) in a second window. See README.md.
lab: setup build
	@bash scripts/lab.sh "$(BIN)"

# After a detached lab: removes what is left at its key (KEY=0x...).
lab-clean:
	@$(BIN)/writer --remove --force --key $(KEY)

# Integration tests spawn the real binaries, the library's examples and the C peer
# (peers/c, built into target/c), so build them first (debug profile). A test that
# cannot run here (a tool or permission missing) is counted and listed at the end;
# with CI=true it fails instead.
SKIPS := $(CURDIR)/target/test-skips
test: setup
	$(MAKE) -C peers/c
	$(CARGO) build --workspace --bins --examples
	@bash scripts/check-clean.sh --before
	@rm -rf $(SKIPS)
	SHM_TEST_SKIPS=$(SKIPS) $(CARGO) test --workspace --no-fail-fast -- --test-threads=4
	@bash scripts/check-clean.sh
	@bash model/check.sh
	@SHM_TEST_SKIPS=$(SKIPS) bash scripts/test-summary.sh

lint:
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --workspace --all-targets -- -D warnings
	RUSTDOCFLAGS="-D warnings" $(CARGO) doc --workspace --no-deps

# The full comparison (a few minutes on 2 cores); writes bench-results/. See BENCHMARKS.md.
# Only the fault-injection suites (they also run in `make test`).
.PHONY: faults
faults:
	$(CARGO) build --workspace --bins
	$(CARGO) test -p e2e --no-fail-fast --test faults --test chaos -- --test-threads=4

# iceoryx2's children are a separate Cargo project (bench/iceoryx2, its own workspace
# and lock file), so that `make test` and the main workspace never build iceoryx2.
ICEORYX2_DIR := target/iceoryx2
ICEORYX2_BIN := $(ICEORYX2_DIR)/release/shm-bench-iceoryx2

bench: bench-iceoryx2
	$(CARGO) build --release --workspace --bins
	$(BIN)/shm-bench --iceoryx2 $(ICEORYX2_BIN)

# Only the iceoryx2 children (about a minute the first time).
.PHONY: bench-iceoryx2 lint-iceoryx2
bench-iceoryx2:
	$(CARGO) build --release --manifest-path bench/iceoryx2/Cargo.toml --target-dir $(ICEORYX2_DIR)

lint-iceoryx2:
	$(CARGO) fmt --manifest-path bench/iceoryx2/Cargo.toml -- --check
	$(CARGO) clippy --manifest-path bench/iceoryx2/Cargo.toml --target-dir $(ICEORYX2_DIR) --all-targets -- -D warnings

# A CI-sized run (well under a minute): shorter runs, one repetition, two placements.
# Its files go to target/bench-quick, so it never replaces the full run's results.
.PHONY: bench-quick
bench-quick:
	$(CARGO) build --release --workspace --bins
	$(BIN)/shm-bench --quick --out-dir target/bench-quick

# Removes our objects only: segments whose first bytes are our magic, and the
# semaphore set at the same key. KEY=0x... limits it to one key; a finished stream
# still waiting for its reader is kept unless FORCE=1.
clean:
	@FORCE=$(FORCE) bash scripts/clean.sh $(KEY)

# The race demonstration (shm-race, in crates/inspect): the ring WITHOUT semaphores
# (the handout's shared counter), then WITH them, each on its own fresh key that is
# removed at the end. FRAMES=N changes the run length.
.PHONY: race
FRAMES ?= 200000
race:
	$(CARGO) build --release -p shm_inspect --bin shm-race
	$(BIN)/shm-race --i-understand-this-is-broken --frames $(FRAMES)

# The long fault-injection schedule (issue 4): 300 seeded random runs; the seed is
# printed, CHAOS_SEED=<seed> [CHAOS_ONLY=<run>] replays. `make test` runs ~30.
.PHONY: chaos
CHAOS_RUNS ?= 300
chaos:
	$(CARGO) build --workspace --bins
	CHAOS_RUNS=$(CHAOS_RUNS) $(CARGO) test -p e2e --test chaos -- --nocapture

# Model check of the shared-mode protocol with spin (model/ring.pml, model/README.md):
# 21 runs with expected outcomes (the protocol passes, the old and deliberately broken
# variants are rejected), about 95 s on 2 cores; installs spin via apt if missing.
# MODEL_FULL=1 adds six long runs (about 5 minutes). Part of `make test`.
.PHONY: model
model:
	@bash model/check.sh
