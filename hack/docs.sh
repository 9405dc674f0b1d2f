#!/usr/bin/env bash
# Regenerates docs/ with tfplugindocs from the provider schema and docs-templates/. With --check, fails when the
# committed docs/ differs from what would be generated.
set -euo pipefail
cd "$(dirname "$0")/.."
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
# tfplugindocs needs a terraform binary on PATH (it would try to download one otherwise).
mkdir -p "$tmp/bin"; ln -s "$(hack/terraform.sh)" "$tmp/bin/terraform"
if [[ "${1:-}" == --check ]]; then
  cp -a docs "$tmp/docs.before" 2>/dev/null || mkdir -p "$tmp/docs.before"
fi
PATH="$tmp/bin:$PATH" go generate ./... >/dev/null
if [[ "${1:-}" == --check ]]; then
  if ! diff -ru "$tmp/docs.before" docs; then
    echo "docs/ is out of date: run 'make docs' and commit the result" >&2
    exit 1
  fi
  echo "docs/ is up to date"
fi
