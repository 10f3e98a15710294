#!/usr/bin/env bash
# The LSP proxy's added latency per request: hover round trips against the
# same pylsp on direct stdio and through `distant-bridge lsp` (a local
# `distant-server` over loopback TCP, the full encrypted protocol), same
# machine, one run each. Prints both p50s and the difference.
#
#   bench/lsp_latency.sh [N]          N hovers per side (default 300)
#   PROFILE=release bench/lsp_latency.sh   use release binaries (built if missing)
set -euo pipefail
cd "$(dirname "$0")/.."
N="${1:-300}"
PROFILE="${PROFILE:-debug}"
command -v pylsp >/dev/null || { echo "pylsp missing: run bash .ci/setup-lsp.sh" >&2; exit 1; }

if [ "$PROFILE" = release ]; then
    cargo build --release -q -p distant-bridge -p distant-server --bins
else
    cargo build -q -p distant-bridge -p distant-server --bins
fi
BIN="target/$PROFILE"

PROJECT="$(mktemp -d)"
trap 'rm -rf "$PROJECT"' EXIT
printf 'def twice(x):\n    """Double it."""\n    return 2 * x\n\n\ny = twice(3)\n' > "$PROJECT/m.py"

CLIENT=bench/lsp_hover_client.py
direct=$(python3 "$CLIENT" "file://" "$PROJECT" "$N" -- pylsp)
proxied=$(python3 "$CLIENT" "distant://" "$PROJECT" "$N" -- \
    "$BIN/distant-bridge" --no-manager --server-binary "$BIN/distant-server" \
    lsp --destination local --cwd "$PROJECT" -- pylsp)

python3 - "$direct" "$proxied" "$PROFILE" <<'PY'
import json, sys
d, p, profile = json.loads(sys.argv[1]), json.loads(sys.argv[2]), sys.argv[3]
print(f"hover round trip, {d['n']} requests each ({profile} binaries)")
print(f"  pylsp on direct stdio        p50 {d['p50_ms']:.3f} ms  p90 {d['p90_ms']:.3f} ms  min {d['min_ms']:.3f} ms")
print(f"  through distant-bridge lsp   p50 {p['p50_ms']:.3f} ms  p90 {p['p90_ms']:.3f} ms  min {p['min_ms']:.3f} ms")
print(f"  added latency (p50)          {p['p50_ms'] - d['p50_ms']:.3f} ms")
PY
