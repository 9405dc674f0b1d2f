#!/usr/bin/env bash
# Installs the Debian 12 packages that building, testing and the labs need. Idempotent; quiet when all present.
set -euo pipefail
pkgs=(gcc make git curl ca-certificates libseccomp-dev libvirt-dev pkg-config debootstrap docker.io
      iptables nftables conntrack socat iproute2 util-linux xz-utils zip)
missing=()
for p in "${pkgs[@]}"; do dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p"); done
if ((${#missing[@]})); then
  echo "installing: ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
echo "apt packages present"
