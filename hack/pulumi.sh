#!/usr/bin/env bash
# kubesmith's Pulumi package: the bridged provider plugin, its schema and the Go SDK.
#
#   hack/pulumi.sh build   regenerate pulumi/cmd/pulumi-resource-kubesmith/{schema,bridge-metadata}.json and
#                          sdk/go/kubesmith, then build bin/pulumi-resource-kubesmith and bin/pulumi-tfgen-kubesmith
#   hack/pulumi.sh check   fail when the committed schema, bridge metadata or Go SDK differ from what the
#                          provider's current schema generates (hooked into `make test`)
#
# Every binary is cached outside the clone in $KUBESMITH_CACHE/pulumi, keyed by a hash of the sources it is built
# from, so `check` costs about a second unless the provider or the bridge module changed. The bridge module
# (pulumi/) pins bridge v3.120.0 with pulumi v3.218; the Go SDK and the gensdk tool (pulumi/tools) use pulumi
# v3.274.1. The main module never depends on Pulumi.
set -euo pipefail
shopt -s inherit_errexit # a failed build inside $(...) must stop the script
cd "$(dirname "$0")/.."
export GOTOOLCHAIN=local GOFLAGS=-buildvcs=false
root=$PWD
cache=${KUBESMITH_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/kubesmith}/pulumi
version=${VERSION:-0.1.0}
tags=${BUILD_TAGS:-libvirt_dlopen}
schema_dir=pulumi/cmd/pulumi-resource-kubesmith
sdk_dir=sdk/go/kubesmith

log() { echo "pulumi: $*" >&2; }

# hash_sources prints a hash of the named files and directories (tracked and untracked, not ignored; no tests)
# plus the Go version, build tags and version, which all end up in the binaries.
hash_sources() {
  {
    go env GOVERSION
    echo "tags=$tags version=$version"
    git ls-files -z -co --exclude-standard -- "$@" |
      grep -zv -e '_test\.go$' -e '/testdata/' |
      while IFS= read -r -d '' f; do [[ -f $f ]] && printf '%s\0' "$f"; done |
      sort -z | xargs -0 -r sha256sum
  } | sha256sum | cut -c1-16
}

# cached_build KIND HASH MODULE_DIR PACKAGE: prints the path of the cached binary, building it when missing.
# Older builds of the same kind are removed, keeping the newest two.
cached_build() {
  local kind=$1 hash=$2 dir=$3 pkg=$4
  local out=$cache/$kind-$hash/$kind
  if [[ ! -x $out ]]; then
    log "building $kind (sources changed or first build)"
    local start=$SECONDS
    mkdir -p "$(dirname "$out")"
    (cd "$dir" && go build -trimpath -tags "$tags" -ldflags "-s -w -X main.version=$version" -o "$out.tmp" "$pkg")
    mv "$out.tmp" "$out"
    log "built $kind in $((SECONDS - start)) s"
    # keep the newest two builds of this kind
    ls -1dt "$cache/$kind"-* 2>/dev/null | tail -n +3 | xargs -r rm -rf
  fi
  echo "$out"
}

# Inputs of the bridge binaries: the main module's non-test sources and the bridge module (with the embedded
# bridge-metadata.json; the resource plugin also embeds schema.json, hashed separately below).
bridge_inputs=(go.mod go.sum main.go provider internal templates pulumi/go.mod pulumi/go.sum pulumi/provider.go
  "$schema_dir/bridge-metadata.json")

tfgen_bin() {
  cached_build pulumi-tfgen-kubesmith "$(hash_sources "${bridge_inputs[@]}" pulumi/cmd/pulumi-tfgen-kubesmith)" \
    pulumi ./cmd/pulumi-tfgen-kubesmith
}

gensdk_bin() {
  cached_build gensdk "$(hash_sources pulumi/tools/go.mod pulumi/tools/go.sum pulumi/tools/gensdk)" \
    pulumi/tools ./gensdk
}

resource_bin() {
  cached_build pulumi-resource-kubesmith \
    "$(hash_sources "${bridge_inputs[@]}" "$schema_dir/main.go" "$schema_dir/schema.json")" \
    pulumi ./cmd/pulumi-resource-kubesmith
}

# generate OUT_SCHEMA_DIR OUT_SDK_DIR: tfgen schema, then the Go SDK from that schema.
generate() {
  local out_schema=$1 out_sdk=$2 tfgen gensdk
  tfgen=$(tfgen_bin)
  gensdk=$(gensdk_bin)
  # tfgen runs in pulumi/ (ProviderInfo.UpstreamRepoPath is "..", the repository root with docs/).
  # --skip-examples: converting the HCL examples needs the pulumi-converter-terraform plugin from the network.
  (cd pulumi && "$tfgen" schema --skip-examples --out "$out_schema" >/dev/null 2>"$out_schema/.tfgen.log") || {
    cat "$out_schema/.tfgen.log" >&2
    return 1
  }
  # tfgen prints warnings for descriptions it could not match with docs/; keep them out of the way unless asked.
  [[ -n ${PULUMI_TFGEN_VERBOSE:-} ]] && cat "$out_schema/.tfgen.log" >&2
  rm -f "$out_schema/.tfgen.log" "$out_schema/Pulumi.yaml"
  "$gensdk" -schema "$out_schema/schema.json" -out "$out_sdk"
}

case ${1:-} in
build)
  generate "$root/$schema_dir" "$root/sdk/go"
  mkdir -p bin
  cp -f "$(resource_bin)" bin/pulumi-resource-kubesmith
  cp -f "$(tfgen_bin)" bin/pulumi-tfgen-kubesmith
  log "bin/pulumi-resource-kubesmith, bin/pulumi-tfgen-kubesmith; schema and $sdk_dir regenerated"
  ;;
check)
  tmp=$(mktemp -d)
  trap 'rm -rf "$tmp"' EXIT
  mkdir -p "$tmp/schema" "$tmp/sdk"
  generate "$tmp/schema" "$tmp/sdk"
  stale=0
  for f in schema.json bridge-metadata.json; do
    if ! cmp -s "$tmp/schema/$f" "$schema_dir/$f"; then
      log "$schema_dir/$f is stale"
      diff -u "$schema_dir/$f" "$tmp/schema/$f" | head -40 >&2 || true
      stale=1
    fi
  done
  if ! diff -r -q -x go.mod -x go.sum "$sdk_dir" "$tmp/sdk/kubesmith" >&2 ||
    ! cmp -s sdk/go/.gitattributes "$tmp/sdk/.gitattributes"; then
    log "$sdk_dir is stale"
    stale=1
  fi
  if ((stale)); then
    log "the Pulumi schema or SDK no longer matches the provider: run \`make pulumi\` and commit the result"
    exit 1
  fi
  log "schema, bridge metadata and Go SDK are up to date"
  ;;
*)
  echo "usage: hack/pulumi.sh build|check" >&2
  exit 2
  ;;
esac
