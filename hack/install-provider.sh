#!/usr/bin/env bash
# Installs a provider binary into a filesystem mirror and writes a CLI config that uses it, so that
# `terraform init` (or `tofu init`) needs no registry. Prints the CLI config path.
set -euo pipefail
bin=$1 version=$2
cache=${KUBESMITH_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/kubesmith}
# One mirror per checkout, so that worktrees testing different builds never overwrite each other's binary.
mirror=$cache/tf-mirror/$(pwd -P | sha256sum | cut -c1-12)
os=$(go env GOOS) arch=$(go env GOARCH)
for host in registry.terraform.io registry.opentofu.org; do
  dir=$mirror/$host/kubesmith/kubesmith/$version/${os}_${arch}
  mkdir -p "$dir"
  install -m 0755 "$bin" "$dir/terraform-provider-kubesmith_v$version"
done
cfg=$mirror/terraformrc
cat >"$cfg" <<CFG
provider_installation {
  filesystem_mirror {
    path    = "$mirror"
    include = ["registry.terraform.io/kubesmith/kubesmith", "registry.opentofu.org/kubesmith/kubesmith"]
  }
  direct {
    exclude = ["registry.terraform.io/kubesmith/kubesmith", "registry.opentofu.org/kubesmith/kubesmith"]
  }
}
CFG
echo "$cfg"
