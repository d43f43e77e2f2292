#!/usr/bin/env bash
# Runs the workspace's tests under AddressSanitizer (+ leak check), LeakSanitizer,
# ThreadSanitizer and Miri on the nightly toolchain. Exits non-zero if any run reports anything.
#
#   ./sanitizers.sh                 # everything, full length
#   ./sanitizers.sh --quick         # CI: the most telling tests, bounded time
#   ./sanitizers.sh asan tsan       # only these (asan, lsan, tsan, miri)
#
# Each sanitizer builds into its own target dir ($CARGO_TARGET_DIR/san-<name>, by default
# target/san-<name>) so runs do not invalidate each other or the normal build. Suppressions
# live in sanitizers/<name>.supp, one justification
# comment per entry. docs/VERIFICATION.md says what each run catches.
set -uo pipefail

cd "$(dirname "$0")"
quick=0
wanted=()
for arg in "$@"; do
    case "$arg" in
        --quick) quick=1 ;;
        asan|lsan|tsan|miri) wanted+=("$arg") ;;
        -h|--help) sed -n '2,12p' "$0"; exit 0 ;;
        *) echo "sanitizers.sh: unknown argument '$arg' (see --help)" >&2; exit 2 ;;
    esac
done
[ ${#wanted[@]} -eq 0 ] && wanted=(asan lsan tsan miri)

target=x86_64-unknown-linux-gnu
# Where the per-sanitizer target dirs go (a worktree shares one target dir per engineer).
base=${CARGO_TARGET_DIR:-target}
# The crates with tests that exercise real concurrency and I/O. Later layers add themselves here.
packages=(-p radix -p logstore -p pagecache -p bwtree)
# Tests that gain nothing under a sanitizer: the strace test checks system calls (and ptrace
# under LeakSanitizer does not work).
no_san_tests=(every_acknowledgement_follows_fsyncs_of_everything_it_covers)

need_nightly() {
    if ! rustup toolchain list 2>/dev/null | grep -q '^nightly'; then
        echo "sanitizers.sh: the nightly toolchain is missing; install it with" >&2
        echo "  rustup toolchain install nightly --profile minimal" >&2
        exit 3
    fi
    local missing=()
    rustup +nightly component list --installed 2>/dev/null | grep -q '^rust-src' || missing+=(rust-src)
    rustup +nightly component list --installed 2>/dev/null | grep -q '^miri' || missing+=(miri)
    if [ ${#missing[@]} -gt 0 ]; then
        echo "sanitizers.sh: adding nightly components: ${missing[*]}"
        if ! rustup component add "${missing[@]}" --toolchain nightly; then
            echo "sanitizers.sh: could not install ${missing[*]} for nightly" >&2
            exit 3
        fi
    fi
    command -v llvm-symbolizer >/dev/null || echo "note: no llvm-symbolizer on PATH (Debian package 'llvm'): reports will show raw addresses"
}

# Bounded work in quick mode: short stress runs, fewer proptest cases and crash cycles.
if [ "$quick" = 1 ]; then
    export RADIX_STRESS_MS=500 PROPTEST_CASES=16 LOG_STRESS_MS=500 LOG_CRASH_CYCLES=3 PC_STRESS_MS=500 BWTREE_STRESS_MS=300 BWTREE_FAULT_RUNS=100 BWTREE_FAULT_NTHS=40
else
    export RADIX_STRESS_MS=3000 PC_STRESS_MS=3000 BWTREE_STRESS_MS=3000
fi

failures=()
run() {
    local name=$1; shift
    echo "=== $name: $*"
    local start=$SECONDS
    if "$@"; then
        echo "=== $name: clean ($((SECONDS - start)) s)"
    else
        local code=$?
        echo "=== $name: FAILED with exit code $code ($((SECONDS - start)) s)" >&2
        failures+=("$name")
    fi
}

supp() { # the options string that loads sanitizers/<name>.supp
    echo "suppressions=$PWD/sanitizers/$1.supp"
}

# The verified stress soak (bench/src/stress/verify.rs) in the full mode: 2 threads for 30 s,
# every answer checked against per-thread models, then a clean reopen. Builds the benchmark's
# own dependencies first (a few minutes on 2 cores). Runs with the sanitizer's environment.
soak() {
    [ "$quick" = 1 ] && return 0
    cargo +nightly run -Zbuild-std --target "$target" --release -p bench \
        --no-default-features -- --suite stress --minutes 0.5 --verify \
        --out "$CARGO_TARGET_DIR"/stress-verify
}

asan() ( # a subshell: the exports stay in it
    export RUSTFLAGS="-Zsanitizer=address --cfg crossbeam_sanitize" \
        RUSTDOCFLAGS="-Zsanitizer=address" \
        ASAN_OPTIONS="detect_stack_use_after_return=1:detect_leaks=1" \
        LSAN_OPTIONS="$(supp lsan)" \
        CARGO_TARGET_DIR="$base"/san-asan
    cargo +nightly test -Zbuild-std --target "$target" --tests --release "${packages[@]}" -- --skip "${no_san_tests[@]}" || return 1
    soak
)

lsan() {
    RUSTFLAGS="-Zsanitizer=leak" LSAN_OPTIONS="$(supp lsan)" CARGO_TARGET_DIR="$base"/san-lsan \
        cargo +nightly test --target "$target" --tests --release "${packages[@]}" -- --skip "${no_san_tests[@]}"
}

tsan() ( # a subshell: the exports stay in it
    export RUSTFLAGS="-Zsanitizer=thread" TSAN_OPTIONS="$(supp tsan):halt_on_error=1" \
        CARGO_TARGET_DIR="$base"/san-tsan
    cargo +nightly test -Zbuild-std --target "$target" --tests --release "${packages[@]}" -- --skip "${no_san_tests[@]}" || return 1
    soak # about 17k ops/s under TSan
)

miri() {
    # Tree Borrows: crossbeam-epoch needs it. Leaks are ignored because crossbeam's global
    # collector keeps deferred garbage alive past the end of a test by design; LSan and ASan
    # (above) check leaks for real.
    MIRIFLAGS="-Zmiri-tree-borrows -Zmiri-ignore-leaks" CARGO_TARGET_DIR="$base"/san-miri \
        cargo +nightly miri test -p radix || return 1
    # The table's own code uses no epoch collector, so it is checked for leaks too (a level lost
    # by an installation race would show here), and for strict provenance.
    MIRIFLAGS="-Zmiri-tree-borrows -Zmiri-strict-provenance" CARGO_TARGET_DIR="$base"/san-miri \
        cargo +nightly miri test -p radix --lib -- table:: slot:: pid:: || return 1
    # The page cache's unsafe code (delta chains published through slot words, retired through
    # the epoch) over the simulated storage: allocate, prepend, consolidate, evict, page in,
    # checkpoint, restart (`tests/basic.rs` shrinks itself under Miri; ~1-2 minutes). It found
    # chains freed through pointers made from `&Node` (a Tree Borrows violation).
    MIRIFLAGS="-Zmiri-tree-borrows -Zmiri-ignore-leaks" CARGO_TARGET_DIR="$base"/san-miri \
        cargo +nightly miri test -p pagecache --test basic || return 1
    if [ "$quick" = 0 ]; then
        # The log's in-memory logic on the simulated storage (~6 minutes here).
        MIRIFLAGS="-Zmiri-tree-borrows -Zmiri-ignore-leaks" CARGO_TARGET_DIR="$base"/san-miri \
            cargo +nightly miri test -p logstore --lib --test basic --test regressions
    fi
}

need_nightly
for name in "${wanted[@]}"; do
    run "$name" "$name"
done

if [ ${#failures[@]} -gt 0 ]; then
    echo "sanitizers.sh: reports from: ${failures[*]}" >&2
    exit 1
fi
echo "sanitizers.sh: all clean (${wanted[*]})"
