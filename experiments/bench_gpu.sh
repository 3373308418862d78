#!/usr/bin/env bash
# Moved to benchmarks/bench_gpu.sh; this forwarder keeps the old path working.
exec bash "$(dirname "$0")/../benchmarks/bench_gpu.sh" "$@"
