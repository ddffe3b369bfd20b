#!/usr/bin/env bash
# System packages the enforcer and the end-to-end tests need (Debian/Ubuntu, as root).
set -euo pipefail
if [ "$(id -u)" -ne 0 ]; then
  echo "install-system-deps: not root; skipping apt (privileged tests will be skipped)" >&2
  exit 0
fi
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends \
  nftables python3-nftables wireguard-tools wireguard-go iproute2 \
  iputils-ping netcat-openbsd iperf3 conntrack \
  neovim >/dev/null  # neovim: the editor test of `policyc lsp` (tests/lsp)
# Headless browser for the `policyc graph` page tests (tests/analysis/test_graph.py).
apt-get install -y -qq --no-install-recommends chromium fonts-dejavu-core >/dev/null
