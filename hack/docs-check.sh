#!/usr/bin/env bash
# Fails when docs/ is not what `make docs` generates from the current schema and docs-templates/.
set -euo pipefail
cd "$(dirname "$0")/.."
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
cp -a docs "$tmp/docs.before" 2>/dev/null || mkdir -p "$tmp/docs.before"
go generate ./... >/dev/null
if ! diff -ru "$tmp/docs.before" docs; then
  echo "docs/ is out of date: run 'make docs' and commit the result" >&2
  exit 1
fi
echo "docs/ is up to date"
