# Thin wrapper around CMake: installs what is missing from Debian, configures, builds.
#   make run    build and start the demo (two backends + the proxy)
#   make test   every unit and integration test, normal build and ASan+UBSan build,
#               then `make fuzz` (FUZZ_SECONDS=0 skips that step)
#   make fuzz   builds the libFuzzer drivers in build-fuzz/ (clang) and runs each
#               for FUZZ_SECONDS (default 60), two at a time (tests/fuzz/run)
#   make bench  switchyard side by side with HAProxy and nginx (bench/run), then
#               how fast a failing candidate is taken out (bench/rollback), then
#               a fleet of three sharing one Redis (bench/fleet)
#   make bench-rollback  bench/rollback alone
#   make bench-fleet     bench/fleet alone

BUILD      ?= build
BUILD_SAN  ?= build-san
BUILD_FUZZ ?= build-fuzz
FUZZ_SECONDS ?= 60
FUZZ_JOBS  ?= 2
JOBS       ?= $(shell nproc 2>/dev/null || echo 2)

DEB_PACKAGES := build-essential cmake pkg-config libevent-dev libssl-dev libjansson-dev \
                libhiredis-dev libcmocka-dev redis-server curl jq tzdata clang libclang-rt-14-dev \
                valgrind openssl

.PHONY: all deps build build-san run test test-unit test-integration bench bench-rollback bench-fleet fuzz clean

all: build

deps:
	@./bench/install-deps $(DEB_PACKAGES)

$(BUILD)/Makefile:
	cmake -S . -B $(BUILD) -DCMAKE_BUILD_TYPE=RelWithDebInfo

$(BUILD_SAN)/Makefile:
	cmake -S . -B $(BUILD_SAN) -DCMAKE_BUILD_TYPE=Debug -DSY_SANITIZE=ON

build: deps $(BUILD)/Makefile
	cmake --build $(BUILD) -j $(JOBS)

build-san: deps $(BUILD_SAN)/Makefile
	cmake --build $(BUILD_SAN) -j $(JOBS)

run: build
	./bench/demo $(BUILD)

test: build build-san
	cd $(BUILD) && ctest --output-on-failure -j $(JOBS)
	cd $(BUILD_SAN) && ctest --output-on-failure -j $(JOBS)
	./tests/fuzz/run $(BUILD_FUZZ) $(FUZZ_SECONDS) $(FUZZ_JOBS)

fuzz: deps
	./tests/fuzz/run $(BUILD_FUZZ) $(FUZZ_SECONDS) $(FUZZ_JOBS)

bench: build
	./bench/run $(BUILD)
	./bench/rollback $(BUILD)
	./bench/fleet $(BUILD)

bench-rollback: build
	./bench/rollback $(BUILD)

bench-fleet: build
	./bench/fleet $(BUILD)

clean:
	rm -rf $(BUILD) $(BUILD_SAN) $(BUILD_FUZZ)
