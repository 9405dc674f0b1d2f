#!/usr/bin/env bash
# Builds what the Terraform registry expects, without publishing: one zip per platform, SHA256SUMS and the
# registry manifest, in dist/. The libvirt driver needs cgo on linux; other platforms build without it and
# report a clear error if a libvirt block is used.
set -euo pipefail
cd "$(dirname "$0")/.."
version=${VERSION:-0.1.0}
name=terraform-provider-kubesmith
rm -rf dist && mkdir -p dist
for plat in linux/amd64 linux/arm64 darwin/arm64; do
  os=${plat%/*} arch=${plat#*/}
  out=dist/build/${os}_${arch}
  mkdir -p "$out"
  cgo=0; tags=""
  if [[ $plat == linux/amd64 ]]; then cgo=1; tags=libvirt_dlopen; fi
  CGO_ENABLED=$cgo GOOS=$os GOARCH=$arch go build -trimpath -tags "$tags" \
    -ldflags "-s -w -X main.version=$version" -o "$out/${name}_v$version" .
  (cd "$out" && zip -q -X "../../${name}_${version}_${os}_${arch}.zip" "${name}_v$version")
done
cp terraform-registry-manifest.json "dist/${name}_${version}_manifest.json"
: <<JSON
{
  "version": 1,
  "metadata": {
    "protocol_versions": ["6.0"]
  }
}
JSON
(cd dist && sha256sum ./*.zip "${name}_${version}_manifest.json" | sed 's#\./##' > "${name}_${version}_SHA256SUMS")
rm -rf dist/build
ls -l dist
