#!/usr/bin/env bash
# Runs one e2e scenario (test/e2e, build tag e2e) against the locally installed provider.
# Usage: hack/e2e.sh TestName [go test flags...]
set -euo pipefail
cd "$(dirname "$0")/.."
name=$1; shift || true
export GOTOOLCHAIN=local GOFLAGS=-buildvcs=false
go build -tags libvirt_dlopen -ldflags "-s -w -X main.version=${VERSION:-0.1.0}" -o bin/terraform-provider-kubesmith .
TF_CLI_CONFIG_FILE=$(hack/install-provider.sh bin/terraform-provider-kubesmith "${VERSION:-0.1.0}")
export TF_CLI_CONFIG_FILE
KUBESMITH_TF=$(hack/terraform.sh)
export KUBESMITH_TF
echo "e2e $name with $KUBESMITH_TF ($("$KUBESMITH_TF" version | head -1))"
exec go test -tags e2e -count=1 -timeout 90m -v -run "^${name}\$" "$@" ./test/e2e/
