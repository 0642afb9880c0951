#!/usr/bin/env bash
# The main job: install what is needed, then run the end-to-end demo.
# Usage: bash scripts/demo.sh [terry demo options, e.g. --keep or --local]
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
bash "$here/scripts/setup.sh"
export PATH="$here/.venv/bin:$PATH"
exec "$here/.venv/bin/terry" demo "$@"
