#!/bin/bash
# Stage 2 of the kubesmith container-host image: the minbase tree from stage 1 (minbase.sh) plus the
# packages and the systemd-in-a-container tweaks, written as a tarball for `docker import`.
# The image tag is kubesmith/host:bookworm-<hash of the embedded assets>, so editing this file rebuilds.
# Run by package containerhosts in a private mount namespace: the mounts below vanish when it exits.
# Safety: the chroot gets a PRIVATE tmpfs /dev (never the host's: systemd's postinst tmpfiles would
# re-chown host devices), a read-only /sys and a read-only /proc/sys (no package script can write a
# host-global sysctl).
# Env (all required): ROOTFS (scratch dir, removed), OUT (tarball), MINBASE_TAR, APTCACHE (.deb cache,
#                     kept), LOGDIR
set -euo pipefail
: "${ROOTFS:?}" "${OUT:?}" "${MINBASE_TAR:?}" "${APTCACHE:?}" "${LOGDIR:?}"

umount_all() {
  for m in var/cache/apt/archives dev/pts dev proc/sys proc sys; do
    while mountpoint -q "$ROOTFS/$m" 2>/dev/null; do umount -l "$ROOTFS/$m" || break; done
  done
}
trap umount_all EXIT

rm -rf "$ROOTFS"
mkdir -p "$ROOTFS" "$APTCACHE/partial" "$LOGDIR"
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
inchroot() { LANG=C.UTF-8 DEBIAN_FRONTEND=noninteractive chroot "$ROOTFS" "$@"; }
quiet() { local out; out=$("$@" 2>&1) || { echo "$out" >&2; echo "failed: $*" >&2; return 1; }; }
printf '#!/bin/sh\nexit 101\n' >"$ROOTFS/usr/sbin/policy-rc.d"; chmod +x "$ROOTFS/usr/sbin/policy-rc.d"
cat >"$ROOTFS/etc/dpkg/dpkg.cfg.d/01-nodoc" <<'X'
path-exclude /usr/share/doc/*
path-include /usr/share/doc/*/copyright
path-exclude /usr/share/man/*
path-exclude /usr/share/locale/*
path-exclude /usr/share/info/*
X
if [[ -e /etc/apt/sources.list.d/debian.sources ]]; then
  cp /etc/apt/sources.list.d/debian.sources "$ROOTFS/etc/apt/sources.list.d/"
  rm -f "$ROOTFS/etc/apt/sources.list"
fi
# The host's apt proxy and snapshot settings for the build only (removed below, not baked in).
: >"$ROOTFS/etc/apt/apt.conf.d/00kubesmith-build"
for k in Acquire::http::Proxy Acquire::https::Proxy Acquire::Check-Valid-Until; do
  v=; eval "$(apt-config shell v "$k" 2>/dev/null || true)"
  if [[ -n $v ]]; then printf '%s "%s";\n' "$k" "$v" >>"$ROOTFS/etc/apt/apt.conf.d/00kubesmith-build"; fi
done
# The provider installs its own container runtime: no containerd/runc here. haproxy and keepalived are
# here because nodes have no route to a mirror; they are disabled until the provider configures them.
PKGS="systemd systemd-sysv dbus libpam-systemd openssh-server sudo
      iproute2 iptables nftables conntrack ebtables socat ethtool kmod haproxy keepalived
      ca-certificates procps netbase less curl util-linux mount"
echo "apt-get install (log: $LOGDIR/chroot-apt.log)"
inchroot apt-get update -qq >"$LOGDIR/chroot-apt.log" 2>&1 || { tail -30 "$LOGDIR/chroot-apt.log" >&2; exit 1; }
# shellcheck disable=SC2086
inchroot apt-get install -y -qq --no-install-recommends $PKGS >>"$LOGDIR/chroot-apt.log" 2>&1 \
  || { tail -30 "$LOGDIR/chroot-apt.log" >&2; exit 1; }
echo "packages: $(inchroot dpkg-query -W -f . | wc -c)"

# ---- systemd-in-a-container tweaks (what kind's base image does, adapted)
: >"$ROOTFS/etc/machine-id"; rm -f "$ROOTFS/var/lib/dbus/machine-id"   # each node makes its own at first boot
quiet inchroot systemctl set-default multi-user.target
# Units that make no sense in a container: no tty, no udev, no module loading, no fs remount.
# fstrim and e2scrub are masked because a privileged container sees the HOST's block devices and
# filesystems (fstrim reads /proc/self/mountinfo, e2scrub snapshots LVM volumes). The apt and dpkg
# timers are masked because nodes have no mirror and their runs would be noise in snapshots.
quiet inchroot systemctl mask getty@tty1.service console-getty.service serial-getty@.service \
  systemd-udevd.service systemd-udevd-control.socket systemd-udevd-kernel.socket \
  systemd-remount-fs.service systemd-modules-load.service sys-kernel-config.mount \
  sys-kernel-debug.mount sys-kernel-tracing.mount sys-fs-fuse-connections.mount \
  systemd-firstboot.service systemd-networkd-wait-online.service \
  fstrim.timer fstrim.service e2scrub_all.timer e2scrub_all.service e2scrub_reap.service \
  apt-daily.timer apt-daily-upgrade.timer dpkg-db-backup.timer
mkdir -p "$ROOTFS/etc/systemd/journald.conf.d"
printf '[Journal]\nReadKMsg=no\nStorage=volatile\nRuntimeMaxUse=32M\n' >"$ROOTFS/etc/systemd/journald.conf.d/container.conf"

# ---- sshd: no baked host keys. The harness injects /etc/ssh/ssh_host_ed25519_key (pinned) and
# /root/.ssh/authorized_keys before the first start; if it did not, a random ed25519 key is made at start.
# sshd only uses the ed25519 key (HostKey below); `ssh-keygen -A` would spend seconds on an RSA key.
rm -f "$ROOTFS"/etc/ssh/ssh_host_*
cat >"$ROOTFS/etc/ssh/sshd_config.d/kubesmith-lab.conf" <<'X'
PasswordAuthentication no
KbdInteractiveAuthentication no
PermitRootLogin prohibit-password
UseDNS no
HostKey /etc/ssh/ssh_host_ed25519_key
X
mkdir -p "$ROOTFS/etc/systemd/system/ssh.service.d"
cat >"$ROOTFS/etc/systemd/system/ssh.service.d/keygen.conf" <<'X'
[Service]
ExecStartPre=
ExecStartPre=/bin/sh -c 'test -s /etc/ssh/ssh_host_ed25519_key || ssh-keygen -q -t ed25519 -N "" -f /etc/ssh/ssh_host_ed25519_key'
ExecStartPre=/usr/sbin/sshd -t
X
quiet inchroot systemctl enable ssh.service
# Installed for offline use, started by the provider when it configures them.
quiet inchroot systemctl disable haproxy.service keepalived.service
install -d -m 700 "$ROOTFS/root/.ssh"
echo LANG=C.UTF-8 >"$ROOTFS/etc/default/locale"

# ---- kubelet needs shared mount propagation on / (docker makes the container's root rprivate)
mkdir -p "$ROOTFS/usr/lib/kubesmith-lab"
cat >"$ROOTFS/etc/systemd/system/make-rshared.service" <<'X'
[Unit]
Description=Make / rshared (kubelet mount propagation; container host only)
DefaultDependencies=no
Before=local-fs.target
ConditionVirtualization=container
[Service]
Type=oneshot
ExecStart=/bin/mount --make-rshared /
[Install]
WantedBy=local-fs.target
X
quiet inchroot systemctl enable make-rshared.service

# ---- protect the SHARED host kernel: a privileged container's /proc/sys is the host's for every
# non-namespaced sysctl. (a) systemd-sysctl would apply the image's global defaults at boot;
# (b) kubelet writes vm.overcommit_memory, vm.panic_on_oom, kernel.panic, kernel.panic_on_oops and
# kernel.keys.root_max* at start. Shadow those with bind-mounted files holding the values kubelet
# wants, so kubelet reads them as already set and leaves the host alone. net.* sysctls are per netns.
ln -sf /dev/null "$ROOTFS/etc/sysctl.d/50-pid-max.conf"
ln -sf /dev/null "$ROOTFS/etc/sysctl.d/99-protect-links.conf"
cat >"$ROOTFS/usr/lib/kubesmith-lab/sysctl-shadow" <<'X'
#!/bin/bash
mkdir -p /run/sysctl-shadow
for kv in vm/overcommit_memory=1 vm/panic_on_oom=0 kernel/panic=10 kernel/panic_on_oops=1 \
          kernel/keys/root_maxkeys=1000000 kernel/keys/root_maxbytes=25000000; do
  k=${kv%=*}; f=/run/sysctl-shadow/${k//\//.}
  echo "${kv#*=}" >"$f"; mount --bind "$f" "/proc/sys/$k" || echo "cannot shadow $k" >&2
done
X
chmod 755 "$ROOTFS/usr/lib/kubesmith-lab/sysctl-shadow"
cat >"$ROOTFS/etc/systemd/system/sysctl-shadow.service" <<'X'
[Unit]
Description=Shadow host-global sysctls that kubelet would write (container host only)
DefaultDependencies=no
Before=systemd-sysctl.service sysinit.target
ConditionVirtualization=container
[Service]
Type=oneshot
RemainAfterExit=yes
ExecStart=/usr/lib/kubesmith-lab/sysctl-shadow
[Install]
WantedBy=sysinit.target
X
quiet inchroot systemctl enable sysctl-shadow.service

# ---- kernels with everything built in and no /lib/modules (and so nothing for the harness to mount
# read-only): modprobe would fail for modules that are in fact there. Write modules.builtin from the
# kernel's own config (/proc/config.gz) for the modules a cluster asks for, then run depmod. Only
# =y options are listed, so modprobe still fails for what the kernel really lacks (ipip, ip_vs, ...).
cat >"$ROOTFS/usr/lib/kubesmith-lab/builtin-modules.list" <<'X'
OVERLAY_FS kernel/fs/overlayfs/overlay.ko
BRIDGE kernel/net/bridge/bridge.ko
BRIDGE_NETFILTER kernel/net/bridge/br_netfilter.ko
VETH kernel/drivers/net/veth.ko
VXLAN kernel/drivers/net/vxlan/vxlan.ko
DUMMY kernel/drivers/net/dummy.ko
NET_IPIP kernel/net/ipv4/ipip.ko
WIREGUARD kernel/drivers/net/wireguard/wireguard.ko
NF_CONNTRACK kernel/net/netfilter/nf_conntrack.ko
NF_NAT kernel/net/netfilter/nf_nat.ko
NF_TABLES kernel/net/netfilter/nf_tables.ko
NF_DEFRAG_IPV4 kernel/net/ipv4/netfilter/nf_defrag_ipv4.ko
IP_NF_IPTABLES kernel/net/ipv4/netfilter/ip_tables.ko
IP_NF_FILTER kernel/net/ipv4/netfilter/iptable_filter.ko
IP_NF_NAT kernel/net/ipv4/netfilter/iptable_nat.ko
IP_NF_MANGLE kernel/net/ipv4/netfilter/iptable_mangle.ko
IP_NF_RAW kernel/net/ipv4/netfilter/iptable_raw.ko
IP6_NF_IPTABLES kernel/net/ipv6/netfilter/ip6_tables.ko
IP_SET kernel/net/netfilter/ipset/ip_set.ko
NETFILTER_XT_MATCH_CONNTRACK kernel/net/netfilter/xt_conntrack.ko
NETFILTER_XT_MATCH_COMMENT kernel/net/netfilter/xt_comment.ko
NETFILTER_XT_MATCH_MULTIPORT kernel/net/netfilter/xt_multiport.ko
NETFILTER_XT_MATCH_ADDRTYPE kernel/net/netfilter/xt_addrtype.ko
NETFILTER_XT_MATCH_STATISTIC kernel/net/netfilter/xt_statistic.ko
NETFILTER_XT_MATCH_PHYSDEV kernel/net/netfilter/xt_physdev.ko
NETFILTER_XT_MARK kernel/net/netfilter/xt_mark.ko
NETFILTER_XT_TARGET_MASQUERADE kernel/net/netfilter/xt_MASQUERADE.ko
IP_VS kernel/net/netfilter/ipvs/ip_vs.ko
IP_VS_RR kernel/net/netfilter/ipvs/ip_vs_rr.ko
IP_VS_WRR kernel/net/netfilter/ipvs/ip_vs_wrr.ko
IP_VS_SH kernel/net/netfilter/ipvs/ip_vs_sh.ko
BLK_DEV_LOOP kernel/drivers/block/loop.ko
FUSE_FS kernel/fs/fuse/fuse.ko
X
cat >"$ROOTFS/usr/lib/kubesmith-lab/builtin-modules" <<'X'
#!/bin/sh
# One pass over the kernel config: print the module path of every listed option that is =y.
set -eu
kver=$(uname -r)
mkdir -p "/lib/modules/$kver"
zcat /proc/config.gz | awk 'FNR == NR { if (sub(/=y$/, "") && sub(/^CONFIG_/, "")) y[$0] = 1; next }
  ($1 in y) { print $2 }' - /usr/lib/kubesmith-lab/builtin-modules.list >"/lib/modules/$kver/modules.builtin"
depmod -a "$kver"
X
chmod 755 "$ROOTFS/usr/lib/kubesmith-lab/builtin-modules"
mkdir -p "$ROOTFS/lib/modules"
cat >"$ROOTFS/etc/systemd/system/builtin-modules.service" <<'X'
[Unit]
Description=List the kernel's built-in modules for modprobe (container host on a kernel without /lib/modules)
DefaultDependencies=no
Before=sysinit.target
ConditionVirtualization=container
# Skipped where the harness mounts the host's /lib/modules read-only; otherwise it runs at every boot, so the
# unit's state is the same after a restart.
ConditionPathIsReadWrite=/lib/modules
ConditionPathExists=/proc/config.gz
[Service]
Type=oneshot
RemainAfterExit=yes
ExecStart=/usr/lib/kubesmith-lab/builtin-modules
[Install]
WantedBy=sysinit.target
X
quiet inchroot systemctl enable builtin-modules.service

rm -f "$ROOTFS/usr/sbin/policy-rc.d" "$ROOTFS/etc/apt/apt.conf.d/00kubesmith-build"
# no "apt-get clean": it would empty the bind-mounted $APTCACHE; *.deb are excluded from the tar instead
rm -rf "$ROOTFS"/var/lib/apt/lists/* "$ROOTFS"/var/cache/apt/*.bin "$ROOTFS"/var/log/apt/* "$ROOTFS"/var/log/dpkg.log
umount_all
echo "configured; rootfs $(du -sh --exclude=./var/cache/apt/archives "$ROOTFS" | cut -f1)"
tar --numeric-owner --xattrs --xattrs-include='*' --acls -C "$ROOTFS" \
  --exclude='./var/cache/apt/archives/*.deb' -cf "$OUT" .
rm -rf "$ROOTFS"
echo "tarball $(du -h "$OUT" | cut -f1)"
