#!/bin/bash
# Stage 1 of the kubesmith guest image: a pristine Debian minbase tree from the host's apt mirror, written
# as a tarball. Run by package vmlab in a private mount namespace, so the mounts debootstrap makes in the
# target vanish when this script exits. The tarball is cached by the hash of this script, suite and mirror.
# Env (all required): TARGET (scratch dir, removed), OUT (tarball), DEBCACHE (.deb cache, kept), MIRROR,
#                     SUITE, LOGDIR
set -euo pipefail
: "${TARGET:?}" "${OUT:?}" "${DEBCACHE:?}" "${MIRROR:?}" "${SUITE:?}" "${LOGDIR:?}"
# debootstrap downloads with wget: give it the host apt's proxy, if there is one.
eval "$(apt-config shell APT_HTTP_PROXY Acquire::http::Proxy 2>/dev/null || true)"
if [[ -n ${APT_HTTP_PROXY:-} && -z ${http_proxy:-} ]]; then export http_proxy=$APT_HTTP_PROXY; fi

rm -rf "$TARGET"
mkdir -p "$DEBCACHE" "$LOGDIR" "$(dirname "$TARGET")"
echo "debootstrap --variant=minbase $SUITE from $MIRROR (log: $LOGDIR/debootstrap.log)"
if ! debootstrap --variant=minbase --cache-dir="$DEBCACHE" "$SUITE" "$TARGET" "$MIRROR" >"$LOGDIR/debootstrap.log" 2>&1; then
  tail -30 "$LOGDIR/debootstrap.log" >&2
  exit 1
fi
for m in dev/pts proc sys; do
  if mountpoint -q "$TARGET/$m"; then umount -l "$TARGET/$m"; fi
done
echo "minbase: $(chroot "$TARGET" dpkg-query -W -f . | wc -c) packages"
tar --numeric-owner --xattrs --xattrs-include='*' --acls -C "$TARGET" \
  --exclude='./var/cache/apt/archives/*.deb' --exclude=./debootstrap -cf "$OUT" .
rm -rf "$TARGET"
echo "minbase tarball: $(du -h "$OUT" | cut -f1)"
