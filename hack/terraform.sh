#!/usr/bin/env bash
# Prints the path of a Terraform-compatible CLI (>= 1.11): terraform on PATH when new enough, else OpenTofu built
# from the Go module proxy and cached by version outside the clone.
set -euo pipefail
want_minor=11
if [[ "${KUBESMITH_USE_TOFU:-}" != 1 ]] && command -v terraform >/dev/null 2>&1; then
  v=$(terraform version -json 2>/dev/null | sed -n 's/.*"terraform_version": *"\([0-9.]*\)".*/\1/p' | head -1)
  minor=$(echo "$v" | cut -d. -f2)
  if [[ "$(echo "$v" | cut -d. -f1)" == 1 && "${minor:-0}" -ge $want_minor ]]; then
    command -v terraform
    exit 0
  fi
  echo "terraform $v is older than 1.$want_minor; using OpenTofu" >&2
fi
cd "$(dirname "$0")/.."
exec go run ./internal/cmd/ksartifacts tool tofu
