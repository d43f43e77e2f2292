#!/usr/bin/env bash
# Runs the fuzz targets (nightly, cargo-fuzz, libFuzzer with AddressSanitizer).
#
#   fuzz/run.sh --smoke [TARGET...]   every target (or those named) for $FUZZ_SMOKE_SECONDS
#                                  (default 20) each (CI)
#   fuzz/run.sh [SECONDS] [TARGET...]   a longer run (default 600 s per target, every target)
#
# Installs cargo-fuzz (`cargo install cargo-fuzz --locked`) if it is missing. New inputs a run
# discovers go to fuzz/scratch/<target>/, never into the checked-in seeds under
# fuzz/corpus/<target>/ (add an input there by hand when it should become a seed). A crash
# leaves its input in fuzz/artifacts/<target>/ and fails the script.
set -euo pipefail
cd "$(dirname "$0")"

TARGETS=(log_record log_recovery checkpoint page_record open_dir)
# A run may use at most 2 GiB, and no single allocation may exceed 256 MiB: no input of a few
# kilobytes should make a decoder allocate more than that (records are at most 8 MiB).
LIMITS=(-rss_limit_mb=2048 -malloc_limit_mb=256 -timeout=20)

seconds=600
if [[ "${1:-}" == "--smoke" ]]; then
    seconds="${FUZZ_SMOKE_SECONDS:-20}"
    shift
elif [[ "${1:-}" =~ ^[0-9]+$ ]]; then
    seconds="$1"
    shift
fi
if [[ $# -gt 0 ]]; then
    TARGETS=("$@")
fi

if ! cargo fuzz --version >/dev/null 2>&1; then
    echo "installing cargo-fuzz"
    cargo install cargo-fuzz --locked
fi

cargo +nightly fuzz build -O
mkdir -p logs
for target in "${TARGETS[@]}"; do
    mkdir -p "scratch/$target"
    echo "=== fuzz $target for ${seconds}s"
    log="logs/$target.log"
    status=0
    run_limit=(-max_total_time="$seconds")
    cargo +nightly fuzz run -O "$target" "scratch/$target" "corpus/$target" -- \
        "${LIMITS[@]}" "${run_limit[@]}" -print_final_stats=1 >"$log" 2>&1 || status=$?
    grep -E '^#[0-9]+[[:space:]]+(INITED|DONE)|^stat::number_of_executed_units|^stat::peak_rss_mb' "$log" || true
    if [[ "$status" -ne 0 ]]; then
        grep -E -A30 'ERROR|panicked' "$log" | head -60 || true
        echo "fuzz target $target failed (exit $status): input in fuzz/artifacts/$target/, log in fuzz/$log"
        exit 1
    fi
done
