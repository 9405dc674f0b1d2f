#!/usr/bin/env bash
# Builds the Pulumi CLI and the YAML language host from the Go module proxy, cached by version outside the clone:
#   $KUBESMITH_CACHE/tools/pulumi-<version>/bin/pulumi
#   $KUBESMITH_CACHE/tools/pulumi-language-yaml-<version>/pulumi-language-yaml
# Prints the two directories (the CLI's root, as the Automation API's PulumiCommandOptions.Root wants it, then the
# YAML host's), one a line. The CLI cannot be `go install`ed (pkg/v3's go.mod has replace directives), so it is built
# from the wrapper module pulumi/tools, which pins the version in its go.mod.
set -euo pipefail
cd "$(dirname "$0")/.."
export GOTOOLCHAIN=local GOFLAGS=-buildvcs=false
cache=${KUBESMITH_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/kubesmith}
cli_version=$(cd pulumi/tools && go list -m -f '{{.Version}}' github.com/pulumi/pulumi/pkg/v3)
yaml_version=${PULUMI_YAML_VERSION:-v1.25.0}

cli_dir=$cache/tools/pulumi-$cli_version
if [[ ! -x $cli_dir/bin/pulumi ]]; then
  echo "pulumi-tools: building the Pulumi CLI $cli_version (4 min on 2 idle cores, 2.3 GB of memory)" >&2
  mkdir -p "$cli_dir/bin"
  start=$SECONDS
  (cd pulumi/tools && go build -trimpath -o "$cli_dir/bin/pulumi.tmp" \
    -ldflags "-s -w -X github.com/pulumi/pulumi/sdk/v3/go/common/version.Version=$cli_version" \
    github.com/pulumi/pulumi/pkg/v3/cmd/pulumi)
  mv "$cli_dir/bin/pulumi.tmp" "$cli_dir/bin/pulumi"
  echo "pulumi-tools: Pulumi CLI built in $((SECONDS - start)) s" >&2
fi

yaml_dir=$cache/tools/pulumi-language-yaml-$yaml_version
if [[ ! -x $yaml_dir/pulumi-language-yaml ]]; then
  echo "pulumi-tools: building pulumi-language-yaml $yaml_version" >&2
  mkdir -p "$yaml_dir"
  start=$SECONDS
  tmp=$(mktemp -d "$yaml_dir/.gobin.XXXXXX")
  GOBIN=$tmp go install -trimpath -ldflags "-s -w" "github.com/pulumi/pulumi-yaml/cmd/pulumi-language-yaml@$yaml_version"
  mv "$tmp/pulumi-language-yaml" "$yaml_dir/pulumi-language-yaml"
  rmdir "$tmp"
  echo "pulumi-tools: pulumi-language-yaml built in $((SECONDS - start)) s" >&2
fi
echo "$cli_dir"
echo "$yaml_dir"
