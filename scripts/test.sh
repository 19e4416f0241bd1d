#!/usr/bin/env bash
# The project's test command (README "Quick start"; .ci/run runs it on a fresh clone as root).
#   1. install the Debian packages the build needs (scripts/deps.sh; as root)
#   2. check formatting: clang-format --dry-run -Werror over every *.c and *.h
#   3. build in ./build with -Dwerror=true -Dfault_points=true (a test build: --version must say
#      "(fault points)") and run the unit, consensus and integration suites, then the chaos
#      suite (docs/chaos.md: one scenario per test, two at a time, about 6 minutes)
#   4. build in ./build-asan with ASan+UBSan (in the background during the chaos suite, at low
#      priority; output in build-asan.log) and run the unit and consensus suites
# Every step runs even if an earlier check failed; the exit status is non-zero if any failed.
# ARAGORA_SKIP_ASAN=1 skips step 4.
set -uo pipefail
cd "$(dirname "$0")/.." || exit 1
top=$(pwd)

failed=()
step() { printf '\n== %s\n' "$*"; }

step "dependencies (scripts/deps.sh)"
bash scripts/deps.sh || { echo "test.sh: dependencies could not be installed" >&2; exit 1; }

# Configure DIR with OPTIONS; a directory configured by another meson version or with other
# options is reconfigured, or wiped and set up again.
setup() {
    local dir=$1; shift
    if [ -f "$dir/meson-private/coredata.dat" ]; then
        meson setup --reconfigure "$dir" "$@" >/dev/null || meson setup --wipe "$dir" "$@"
    else
        rm -rf "$dir"
        meson setup "$dir" "$@"
    fi
}

# Step 4's build, started once, in the background (its output in build-asan.log).
asan_pid=
asan_build_start() {
    [ "${ARAGORA_SKIP_ASAN:-0}" != 1 ] && [ -z "$asan_pid" ] || return 0
    {
        setup build-asan -Dwerror=true -Db_sanitize=address,undefined -Db_lundef=false &&
            nice -n 19 ninja -C build-asan -j 1
    } >build-asan.log 2>&1 &
    asan_pid=$!
}

# The closing count must describe this run only.
rm -f build/meson-logs/testlog.json build/meson-logs/chaoslog.json build-asan/meson-logs/testlog.json

step "format (clang-format --dry-run -Werror)"
mapfile -t sources < <(find . \( -path ./build -o -path './build-*' -o -path ./.git \) -prune -o \
    -type f \( -name '*.c' -o -name '*.h' \) -print | sort)
if clang-format --dry-run -Werror "${sources[@]}"; then
    echo "${#sources[@]} files formatted"
else
    failed+=("format")
fi

step "build (build/, -Dwerror=true -Dfault_points=true: a test build)"
# The test build compiles in the named fault points (docs/operations.md); it must say so.
if setup build -Dwerror=true -Dfault_points=true && ninja -C build &&
    { build/aragora-coordinator --version | grep -qF "(fault points)" ||
        { echo "test.sh: build/ is not a test build (no '(fault points)' in --version)" >&2; false; }; }; then
    step "tests: unit, consensus, integration"
    # two at a time (the integration tests mostly wait on their processes; 2 cores on CI)
    meson test -C build --print-errorlogs --num-processes 2 --suite unit --suite consensus \
        --suite integration ||
        failed+=("tests")
    # The chaos scenarios (docs/chaos.md): each runs a lab, a workload and its faults, then
    # asserts its checkers; a separate run so that their logs are easy to find. The scenarios
    # mostly wait on their labs, so the sanitizer build (step 4) compiles meanwhile, one job at
    # nice 19: it only takes CPU the scenarios leave idle.
    step "tests: chaos scenarios (the sanitizer build compiles beside them)"
    asan_build_start
    meson test -C build --print-errorlogs --num-processes 2 --suite chaos --logbase chaoslog ||
        failed+=("chaos")
else
    failed+=("build")
fi

if [ "${ARAGORA_SKIP_ASAN:-0}" != 1 ]; then
    step "sanitizers (build-asan/, ASan+UBSan): unit, consensus"
    asan_build_start # no-op when it already runs
    if wait "$asan_pid"; then
        UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1 \
            meson test -C build-asan --print-errorlogs --suite unit --suite consensus ||
            failed+=("sanitizer tests")
    else
        cat build-asan.log
        failed+=("sanitizer build")
    fi
fi

# One closing count over every meson test run above (both build directories).
count_results() {
    python3 - "$@" <<'PY'
import json, sys
passed = failed = 0
for path in sys.argv[1:]:
    try:
        with open(path) as f:
            for line in f:
                r = json.loads(line).get("result")
                if r in ("OK", "EXPECTEDFAIL"):
                    passed += 1
                elif r in ("FAIL", "TIMEOUT", "ERROR", "UNEXPECTEDPASS"):
                    failed += 1
    except OSError:
        pass
print("%d passed, %d failed" % (passed, failed))
PY
}
logs=()
for f in build/meson-logs/testlog.json build/meson-logs/chaoslog.json \
    build-asan/meson-logs/testlog.json; do
    [ -f "$f" ] && logs+=("$f")
done

if [ ${#failed[@]} -gt 0 ]; then
    printf '\ntest.sh: FAILED: %s (in %s)\n' "${failed[*]}" "$top" >&2
    printf 'tests: %s\n' "$(count_results "${logs[@]}")"
    exit 1
fi
printf '\ntest.sh: all checks passed\n'
printf 'tests: %s\n' "$(count_results "${logs[@]}")"
