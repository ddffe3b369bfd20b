#!/usr/bin/env bash
# Install policyc and run it on the shipped samples: check, compile, explain, nft dry run.
set -euo pipefail
cd "$(dirname "$0")/.."
python3 -m pip install -q --disable-pip-version-check -e .
set -x
policyc check samples/policy.hujson --nodes samples/nodes.json
policyc compile samples/policy.hujson --nodes samples/nodes.json --node prod-db
policyc explain samples/policy.hujson --nodes samples/nodes.json alice-laptop prod-db:22 || true
policyc explain samples/policy.hujson --nodes samples/nodes.json frank-laptop prod-db:5432 || true
policyc nft samples/policy.hujson --nodes samples/nodes.json --node prod-db
