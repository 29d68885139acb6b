#!/usr/bin/env bash
# jetflow-worker is the SDK for handler authors: it must build on the
# protocol and async-nats alone, without the service runtime's HTTP server,
# metrics, tracing exporters or allocator.
set -euo pipefail
cd "$(dirname "$0")/.."
tree=$(cargo tree -p jetflow-worker -e normal --prefix none --offline 2>/dev/null || cargo tree -p jetflow-worker -e normal --prefix none)
forbidden='^(axum|prometheus|opentelemetry[a-z_-]*|tracing-opentelemetry|mimalloc|libmimalloc-sys|jetflow-runtime) '
if found=$(grep -E "$forbidden" <<<"$tree" | sort -u) && [ -n "$found" ]; then
    echo "jetflow-worker depends on what a worker author should not compile:"
    echo "$found"
    exit 1
fi
echo "jetflow-worker: $(sort -u <<<"$tree" | wc -l) crates, none of axum, prometheus, opentelemetry, mimalloc or jetflow-runtime"
