#!/usr/bin/env bash
# `make e2e-pulumi`: the Pulumi package end to end on container hosts. Builds (or reuses) the Pulumi CLI and the YAML
# language host (hack/pulumi-tools.sh) and the bridged plugin (hack/pulumi.sh build, run by make first), brings up
# two container hosts pulumi-1 and pulumi-2 (172.30.0.41, .42; API VIP 172.30.0.252), and runs test/e2e-pulumi:
# 1 master + 1 worker through the Go SDK (Automation API inline program), then through the YAML example; each is
# checked Ready, refreshed without changes and destroyed. The hosts are removed afterwards, even on failure.
# Usage: hack/e2e-pulumi.sh [go test flags...]
set -euo pipefail
cd "$(dirname "$0")/.."
export GOTOOLCHAIN=local GOFLAGS=-buildvcs=false
root=$PWD
prefix=pulumi
mapfile -t dirs < <(hack/pulumi-tools.sh)
export KUBESMITH_PULUMI_ROOT=${dirs[0]} KUBESMITH_PULUMI_YAML_DIR=${dirs[1]}
export KUBESMITH_PULUMI_PLUGIN_DIR=$root/bin
[[ -x bin/pulumi-resource-kubesmith ]] || { echo "bin/pulumi-resource-kubesmith is missing: run make pulumi" >&2; exit 1; }
KUBESMITH_BUNDLE=${KUBESMITH_BUNDLE:-$(go run ./internal/cmd/ksartifacts path)}
export KUBESMITH_BUNDLE

work=$(mktemp -d)
kslab() { (cd "$root" && go run ./internal/cmd/kslab hosts "$@"); }
cleanup() {
  if [[ -z ${KUBESMITH_E2E_KEEP:-} ]]; then
    kslab down --prefix "$prefix" || echo "e2e-pulumi: removing the $prefix-* hosts failed" >&2
  fi
  rm -rf "$work"
}
trap cleanup EXIT
kslab down --prefix "$prefix"
start=$SECONDS
kslab up --prefix "$prefix" --count 2 --addresses 172.30.0.41,172.30.0.42 --json "$work/hosts.json" >/dev/null
echo "e2e-pulumi: 2 container hosts up in $((SECONDS - start)) s"
export KUBESMITH_PULUMI_HOSTS=$work/hosts.json KUBESMITH_PULUMI_VIP=172.30.0.252
cd test/e2e-pulumi
go test -tags e2e -count=1 -timeout 60m -v "$@" .
