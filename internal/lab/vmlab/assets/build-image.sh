#!/bin/bash
# Stage 2 of the kubesmith guest image: the minbase tree from stage 1 (minbase.sh) plus the packages of
# packages.txt and the files of guest/, written as a qcow2 root disk (ext4 on the whole disk, label rootfs)
# and the kernel and initrd for direct kernel boot. Run by package vmlab in a private mount namespace.
# Safety: the chroot gets a PRIVATE tmpfs /dev (never the host's: systemd's postinst tmpfiles would re-chown
# host devices such as /dev/kvm), a read-only /sys and a read-only /proc/sys.
# Env (all required): ROOTFS (scratch dir, removed), OUTDIR (results), NAME (file base name), MINBASE_TAR,
#   APTCACHE (.deb cache, kept), LOGDIR, GUEST (tree copied over the rootfs), PACKAGES (one per line),
#   SOURCES (the guest's deb822 apt sources), SIZE (virtual disk size, e.g. 4G)
set -euo pipefail
: "${ROOTFS:?}" "${OUTDIR:?}" "${NAME:?}" "${MINBASE_TAR:?}" "${APTCACHE:?}" "${LOGDIR:?}" "${GUEST:?}"
: "${PACKAGES:?}" "${SOURCES:?}" "${SIZE:?}"

umount_all() {
  for m in var/cache/apt/archives dev/pts dev proc/sys proc sys; do
    while mountpoint -q "$ROOTFS/$m" 2>/dev/null; do umount -l "$ROOTFS/$m" || break; done
  done
}
trap umount_all EXIT
inchroot() { LANG=C.UTF-8 DEBIAN_FRONTEND=noninteractive INITRD=No chroot "$ROOTFS" "$@"; }
quiet() { local out; out=$("$@" 2>&1) || { echo "$out" >&2; echo "failed: $*" >&2; return 1; }; }

rm -rf "$ROOTFS"
mkdir -p "$ROOTFS" "$OUTDIR" "$APTCACHE/partial" "$LOGDIR"
echo "unpack minbase"
tar --numeric-owner --xattrs --xattrs-include='*' --acls -xpf "$MINBASE_TAR" -C "$ROOTFS"

# ---- chroot mounts (private namespace; never the host /dev)
mount -t tmpfs -o mode=755,size=1M ksdev "$ROOTFS/dev"
for n in "null 1 3" "zero 1 5" "full 1 7" "random 1 8" "urandom 1 9" "tty 5 0"; do
  set -- $n; mknod -m 666 "$ROOTFS/dev/$1" c "$2" "$3"
done
mkdir -p "$ROOTFS/dev/pts" "$ROOTFS/dev/shm"; ln -sf /proc/self/fd "$ROOTFS/dev/fd"
mount -t devpts -o newinstance,ptmxmode=0666 devpts "$ROOTFS/dev/pts"; ln -sf pts/ptmx "$ROOTFS/dev/ptmx"
mount -t proc proc "$ROOTFS/proc"
mount --bind "$ROOTFS/proc/sys" "$ROOTFS/proc/sys"; mount -o remount,bind,ro "$ROOTFS/proc/sys"
mount -t sysfs -o ro sysfs "$ROOTFS/sys"
mount --bind "$APTCACHE" "$ROOTFS/var/cache/apt/archives"
# never start services inside the chroot
printf '#!/bin/sh\nexit 101\n' >"$ROOTFS/usr/sbin/policy-rc.d"; chmod +x "$ROOTFS/usr/sbin/policy-rc.d"
# dpkg path excludes must be in place before the packages are unpacked
cp -r --no-preserve=ownership "$GUEST/etc/dpkg/." "$ROOTFS/etc/dpkg/"

# ---- packages from the host's mirror
rm -f "$ROOTFS/etc/apt/sources.list"
install -m 0644 "$SOURCES" "$ROOTFS/etc/apt/sources.list.d/debian.sources"
# The host's apt proxy and snapshot settings, for the build only (removed below, not baked in).
: >"$ROOTFS/etc/apt/apt.conf.d/00kubesmith-build"
for k in Acquire::http::Proxy Acquire::https::Proxy Acquire::Check-Valid-Until Acquire::Check-Date; do
  v=; eval "$(apt-config shell v "$k" 2>/dev/null || true)"
  if [[ -n $v ]]; then printf '%s "%s";\n' "$k" "$v" >>"$ROOTFS/etc/apt/apt.conf.d/00kubesmith-build"; fi
done
mapfile -t pkgs < <(sed -e 's/#.*//' -e '/^[[:space:]]*$/d' "$PACKAGES")
echo "apt-get install ${#pkgs[@]} packages (log: $LOGDIR/chroot-apt.log)"
inchroot apt-get update -qq >"$LOGDIR/chroot-apt.log" 2>&1 || { tail -30 "$LOGDIR/chroot-apt.log" >&2; exit 1; }
# INITRD=No: the kernel's postinst skips its MODULES=most initramfs; the small one is built below.
inchroot apt-get install -y -qq --no-install-recommends "${pkgs[@]}" >>"$LOGDIR/chroot-apt.log" 2>&1 \
  || { tail -30 "$LOGDIR/chroot-apt.log" >&2; exit 1; }
echo "installed: $(inchroot dpkg-query -W -f . | wc -c) packages"

# ---- configure
echo "configure"
cp -r --no-preserve=ownership "$GUEST/." "$ROOTFS/"
chmod 0755 "$ROOTFS"/usr/local/sbin/kubesmith-*
echo debian >"$ROOTFS/etc/hostname"
: >"$ROOTFS/etc/resolv.conf"                       # no resolver: kubesmith's seed network has none
: >"$ROOTFS/etc/machine-id"; rm -f "$ROOTFS/var/lib/dbus/machine-id"   # made per VM at first boot
rm -f "$ROOTFS"/etc/ssh/ssh_host_*                 # the seed brings the host key
install -d -m 0700 "$ROOTFS/root/.ssh"
echo LANG=C.UTF-8 >"$ROOTFS/etc/default/locale"
quiet inchroot systemctl set-default multi-user.target
quiet inchroot systemctl enable systemd-networkd.service ssh.service kubesmith-seed.service kubesmith-growfs.service
# installed for offline use; kubesmith enables them when it configures them
quiet inchroot systemctl disable haproxy.service keepalived.service
# no periodic background work in lab VMs
quiet inchroot systemctl mask apt-daily.timer apt-daily-upgrade.timer e2scrub_all.timer e2scrub_reap.service \
  fstrim.timer dpkg-db-backup.timer

# ---- kernel: drop drivers a virtual machine never needs, then the small initramfs
kver=$(ls "$ROOTFS/lib/modules" | sort -V | tail -n 1)
kmod=$ROOTFS/lib/modules/$kver/kernel
rm -rf "$kmod/sound" "$kmod/drivers/media" "$kmod/drivers/net/wireless" "$kmod/drivers/infiniband" \
  "$kmod/drivers/bluetooth" "$kmod/drivers/staging" "$kmod/drivers/isdn" "$kmod/drivers/gpu/drm/amd" \
  "$kmod/drivers/gpu/drm/nouveau" "$kmod/drivers/gpu/drm/i915" "$kmod/drivers/gpu/drm/radeon" \
  "$kmod/net/wireless" "$kmod/net/mac80211" "$kmod/net/bluetooth"
quiet inchroot depmod -a "$kver"
rm -f "$ROOTFS"/boot/initrd.img-*
quiet inchroot update-initramfs -c -k "$kver"
echo "kernel $kver, initrd $(du -h "$ROOTFS/boot/initrd.img-$kver" | cut -f1)"

# ---- clean up the build-only state
rm -f "$ROOTFS/usr/sbin/policy-rc.d" "$ROOTFS/etc/apt/apt.conf.d/00kubesmith-build"
umount_all
rm -rf "$ROOTFS"/var/lib/apt/lists/* "$ROOTFS"/var/cache/apt/*.bin "$ROOTFS"/var/cache/debconf/*-old \
  "$ROOTFS"/var/log/*.log "$ROOTFS"/var/log/apt/* "$ROOTFS"/tmp/* "$ROOTFS"/root/.bash_history
dpkg-query --admindir="$ROOTFS/var/lib/dpkg" -W -f '${Package} ${Version}\n' >"$OUTDIR/manifest.txt"

# ---- results: kernel, initrd, qcow2 (ext4 on the whole disk, no loop device, no mount)
install -m 0644 "$ROOTFS/boot/vmlinuz-$kver" "$OUTDIR/$NAME.vmlinuz"
install -m 0644 "$ROOTFS/boot/initrd.img-$kver" "$OUTDIR/$NAME.initrd"
echo "$kver" >"$OUTDIR/kernel-version"
echo "mkfs.ext4 -d ($SIZE, rootfs $(du -sh "$ROOTFS" | cut -f1))"
rm -f "$OUTDIR/root.raw"
truncate -s "$SIZE" "$OUTDIR/root.raw"
mkfs.ext4 -q -F -L rootfs -d "$ROOTFS" "$OUTDIR/root.raw"
echo "qemu-img convert -c (zstd)"
qemu-img convert -c -f raw -O qcow2 -o compression_type=zstd "$OUTDIR/root.raw" "$OUTDIR/$NAME.qcow2"
rm -f "$OUTDIR/root.raw"
rm -rf "$ROOTFS"
echo "image: $(du -h "$OUTDIR/$NAME.qcow2" | cut -f1) qcow2 (virtual $SIZE)"
