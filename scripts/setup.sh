#!/usr/bin/env bash
# Install what Terry needs on a Debian machine: Debian packages, then a virtualenv (.venv)
# with Terry and its pinned dependencies. Safe to run again. Sourced by demo.sh and test.sh.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
extras="${TERRY_EXTRAS:-}"

as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }

packages=(git python3 python3-venv python3-dev gcc openssh-server openssh-client iproute2
          util-linux e2fsprogs gzip procps python3-apt prometheus prometheus-alertmanager
          prometheus-node-exporter ${TERRY_APT_EXTRA:-})
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ "${#missing[@]}" -gt 0 ]; then
  echo "terry setup: installing ${missing[*]}"
  as_root env DEBIAN_FRONTEND=noninteractive apt-get update -qq
  # Debian's packages try to start their daemons; the lab runs its own, so keep them down.
  printf '#!/bin/sh\nexit 101\n' | as_root tee /usr/sbin/policy-rc.d >/dev/null
  as_root chmod +x /usr/sbin/policy-rc.d
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
    "${missing[@]}" >/dev/null
  as_root rm -f /usr/sbin/policy-rc.d
fi

python="${TERRY_PYTHON:-python3}"
if [ ! -x "$here/.venv/bin/python" ]; then
  "$python" -m venv "$here/.venv"
fi
stamp="$here/.venv/.terry-installed"
if [ ! -f "$stamp" ] || [ "$here/pyproject.toml" -nt "$stamp" ]; then
  "$here/.venv/bin/pip" install -q --upgrade pip
  "$here/.venv/bin/pip" install -q -e "$here${extras:+[$extras]}"
  touch "$stamp"
fi
