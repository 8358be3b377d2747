# Thin wrapper: CMake is the build. These targets only chain set-up,
# configure, build and run so that a fresh Debian 12 machine needs two
# commands (`make run`, `make test`).
BUILD ?= build
SAN_BUILD ?= build-sanitize
FUZZ_BUILD ?= build-fuzz
JOBS ?= $(shell nproc)
CONFIG ?=

.PHONY: all setup build run test test-sanitize fuzz-smoke lint format bench clean

all: build

setup:
	@scripts/setup.sh

build: setup
	@cmake -S . -B $(BUILD) -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
	@cmake --build $(BUILD) -j $(JOBS)

run: build
	./$(BUILD)/respan-collector $(if $(CONFIG),--config $(CONFIG))

test: setup
	@scripts/setup.sh --tests
	@cmake -S . -B $(BUILD) -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
	@cmake --build $(BUILD) -j $(JOBS)
	cd $(BUILD) && ctest --output-on-failure -j $(JOBS)

# The same suite against an ASan+UBSan build made with clang.
test-sanitize: setup
	@scripts/setup.sh --tests
	@CC=clang cmake -S . -B $(SAN_BUILD) -DCMAKE_BUILD_TYPE=Debug -DRC_SANITIZE=ON >/dev/null
	@cmake --build $(SAN_BUILD) -j $(JOBS)
	cd $(SAN_BUILD) && ctest --output-on-failure -j $(JOBS)

# Builds the libFuzzer targets and runs each briefly from its seed corpus.
fuzz-smoke: setup
	@CC=clang cmake -S . -B $(FUZZ_BUILD) -DCMAKE_BUILD_TYPE=Debug -DRC_FUZZ=ON >/dev/null
	@cmake --build $(FUZZ_BUILD) -j $(JOBS)
	fuzz/run.sh $(FUZZ_BUILD) $${FUZZ_SECONDS:-30}

lint:
	scripts/lint.sh

format:
	clang-format -i $$(git ls-files '*.c' '*.h')

bench: build
	bench/run.sh $(BUILD)

clean:
	rm -rf $(BUILD) $(SAN_BUILD) $(FUZZ_BUILD)
