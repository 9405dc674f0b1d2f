#!/bin/sh
# kubesmith reset: undo everything a kubesmith install put on this host. Run as root, e.g. `sh -s < reset.sh`.
#
# Idempotent: safe to run twice, and on a host where the install stopped half-way. Every action is logged as
# "reset: <what>". The exit status is 0 when nothing of kubesmith's is left; otherwise each leftover is printed
# as "reset: left: <what>" and the exit status is 1.
#
# Safety rules:
# - Mounts are unmounted (deepest first) before any directory is removed, and a directory that still has a
#   mount below it is never removed: a hostPath bind mount would otherwise lose the host's data.
# - A directory that is itself a mount point (a container host's /var/lib/containerd volume, a dedicated etcd
#   disk) is emptied, never removed or unmounted.
# - Package units (keepalived) are stopped and lose kubesmith's drop-in and config; the package stays.
# - Only iptables chains named KUBE-*, FLANNEL* and CNI-* (and the rules that jump to them) and the nftables
#   tables of kube-proxy and flannel are removed; every other rule stays.
set -u
PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
LC_ALL=C
export PATH LC_ALL

UNITS='kubelet.service kube-proxy.service flanneld.service kube-scheduler.service kube-controller-manager.service kube-apiserver.service etcd.service containerd.service'
PACKAGE_UNITS='keepalived.service'
BINARIES='/usr/local/bin/etcd /usr/local/bin/etcdctl /usr/local/bin/etcdutl /usr/local/bin/kube-apiserver /usr/local/bin/kube-controller-manager /usr/local/bin/kube-scheduler /usr/local/bin/kubelet /usr/local/bin/kube-proxy /usr/local/bin/kubectl /usr/local/bin/containerd /usr/local/bin/containerd-shim-runc-v2 /usr/local/bin/ctr /usr/local/bin/crictl /usr/local/bin/flanneld /usr/local/sbin/runc'
EXTRA_FILES='/etc/sysctl.d/99-kubesmith.conf /etc/modules-load.d/kubesmith.conf'
# Removed entirely (or emptied when a mount point).
STATE_DIRS='/etc/kubernetes /var/lib/etcd /var/lib/kubelet /var/lib/containerd /run/containerd /opt/containerd /etc/cni /opt/cni /var/lib/cni /run/flannel /var/log/pods /var/log/containers'
STATE_FILES='/etc/crictl.yaml /etc/keepalived/keepalived.conf /etc/keepalived/kubesmith-check-apiserver.sh /etc/kubesmith/cluster-uid'
# Mounts below these are kubelet's and containerd's (checked at the end).
MOUNT_ROOTS='/var/lib/kubelet /var/lib/containerd /run/containerd'
CHAIN_RE='^(KUBE-|FLANNEL|CNI-)'
NFT_TABLES='ip:kube-proxy ip6:kube-proxy ip:flannel-ipv4 ip6:flannel-ipv6'
LINKS='flannel.1 cni0'
CONTAINERD_SOCK=/run/containerd/containerd.sock

log() { printf 'reset: %s\n' "$*"; }
have() { command -v "$1" >/dev/null 2>&1; }

systemd=false
if have systemctl && [ -d /run/systemd/system ]; then
	systemd=true
fi

stop_unit() {
	$systemd || return 0
	state=$(systemctl is-active "$1" 2>/dev/null)
	case "$state" in
	active | activating | reloading | deactivating)
		if systemctl stop "$1"; then log "stopped $1"; else log "could not stop $1"; fi
		;;
	esac
	systemctl reset-failed "$1" >/dev/null 2>&1 || true
}

# mount_targets prints the mount points of this mount namespace, one per line (octal escapes as in mountinfo).
mount_targets() { awk '{ print $5 }' /proc/self/mountinfo; }

# mounted_below DIR succeeds if something is mounted strictly below DIR.
mounted_below() { mount_targets | awk -v p="$1/" 'index($0, p) == 1 { found = 1 } END { exit !found }'; }

# is_mount_point DIR succeeds if DIR itself is a mount point.
is_mount_point() { mount_targets | awk -v p="$1" '$0 == p { found = 1 } END { exit !found }'; }

# is_self_bind DIR succeeds if DIR is a bind mount of itself, as kubelet makes of its root directory: same device
# as the mount that contains DIR, and the same place in that filesystem. A dedicated filesystem or a volume
# mounted at DIR (a container host's /var/lib/containerd) is not.
is_self_bind() {
	awk -v p="$1" '
		$5 == p { self_root = $4; self_dev = $3; next }
		($5 == "/" || index(p, $5 "/") == 1) && length($5) > best { best = length($5); proot = $4; pdev = $3; pmp = $5 }
		END {
			if (self_root == "" || self_dev != pdev) exit 1
			rel = (pmp == "/") ? p : substr(p, length(pmp) + 1)
			want = (proot == "/") ? rel : proot rel
			exit !(self_root == want)
		}' /proc/self/mountinfo
}

# unmount_below DIR [self] unmounts everything strictly below DIR, deepest first; with "self", DIR too when it is
# a bind mount of itself. Stacked mounts need several passes.
unmount_below() {
	for _pass in 1 2 3 4 5; do
		targets=$(mount_targets | awk -v p="$1/" 'index($0, p) == 1' | sort -r)
		if [ "${2:-}" = self ] && is_self_bind "$1"; then
			targets="$targets $1"
		fi
		[ -z "$(printf '%s' "$targets" | tr -d ' ')" ] && return 0
		for t in $targets; do
			if umount "$t" 2>/dev/null || umount -l "$t" 2>/dev/null; then log "unmounted $t"; fi
		done
	done
}

# remove_path removes a file or directory. A mount point is emptied instead. A directory with a mount below it
# is left alone (and reported at the end).
remove_path() {
	p=$1
	[ -e "$p" ] || [ -L "$p" ] || return 0
	if [ -d "$p" ] && [ ! -L "$p" ]; then
		if mounted_below "$p"; then
			log "not removing $p: something is still mounted below it"
			return 0
		fi
		if is_mount_point "$p"; then
			[ -z "$(find "$p" -mindepth 1 -maxdepth 1 2>/dev/null | head -n 1)" ] && return 0
			if find "$p" -mindepth 1 -maxdepth 1 -exec rm -rf {} +; then log "emptied $p (mount point)"; fi
			return 0
		fi
	fi
	if rm -rf "$p"; then log "removed $p"; fi
}

# 1. kubelet first, so that it starts no new pod.
for u in $UNITS; do
	[ "$u" = kubelet.service ] && stop_unit "$u"
done

# 2. Pods and their containers, while containerd still runs: through CRI with crictl, else kill the k8s.io tasks
#    with ctr.
if [ -S "$CONTAINERD_SOCK" ]; then
	if have crictl && crictl --runtime-endpoint "unix://$CONTAINERD_SOCK" --timeout 30s rmp --all --force >/dev/null 2>&1; then
		log "removed all pods"
	elif have ctr; then
		for id in $(ctr --address "$CONTAINERD_SOCK" --namespace k8s.io tasks ls --quiet 2>/dev/null); do
			if ctr --address "$CONTAINERD_SOCK" --namespace k8s.io tasks kill --signal SIGKILL "$id" >/dev/null 2>&1; then
				log "killed container $id"
			fi
		done
	fi
fi

# 3. Every other unit, in order.
for u in $UNITS $PACKAGE_UNITS; do
	[ "$u" = kubelet.service ] || stop_unit "$u"
done

# 4. Whatever containers survived: systemd's kubepods slice (cgroup driver systemd), then the k8s.io shims.
if $systemd && systemctl is-active --quiet kubepods.slice 2>/dev/null; then
	if systemctl stop kubepods.slice; then log "stopped kubepods.slice"; fi
fi
for d in /proc/[0-9]*; do
	cmd=$({ tr '\000' ' ' <"$d/cmdline"; } 2>/dev/null) || continue
	case "$cmd" in
	*containerd-shim-runc-v2\ *-namespace\ k8s.io\ *-address\ $CONTAINERD_SOCK*)
		if kill -9 "${d#/proc/}" 2>/dev/null; then log "killed shim ${d#/proc/}"; fi
		;;
	esac
done

# 5. Mounts: kubelet volumes, container root filesystems and shm, pod network namespaces.
unmount_below /var/lib/kubelet self
unmount_below /var/lib/containerd
unmount_below /run/containerd
for ns in /run/netns/cni-*; do
	[ -e "$ns" ] || continue
	if is_mount_point "$ns"; then
		umount "$ns" 2>/dev/null || umount -l "$ns" 2>/dev/null
	fi
	if rm -f "$ns"; then log "removed network namespace $ns"; fi
done

# 6. Network links: the pod veths on cni0, cni0, and flannel's VXLAN device.
if have ip; then
	for veth in $(ip -o link show master cni0 2>/dev/null | awk -F': ' '{ split($2, a, "@"); print a[1] }'); do
		if ip link delete "$veth" 2>/dev/null; then log "deleted link $veth"; fi
	done
	for l in $LINKS; do
		if ip link show "$l" >/dev/null 2>&1; then
			if ip link delete "$l"; then log "deleted link $l"; fi
		fi
	done
fi

# 7. iptables: delete the rules that jump into our chains from other chains, then flush and delete our chains.
clean_iptables() {
	ipt=$1
	have "$ipt" && have "$ipt-save" || return 0
	for table in raw mangle nat filter; do
		rules=$("$ipt-save" -t "$table" 2>/dev/null) || continue
		printf '%s\n' "$rules" | grep -E '^-A ' | grep -Ev "^-A (KUBE-|FLANNEL|CNI-)" |
			grep -E ' -[jg] (KUBE-|FLANNEL|CNI-)' | while IFS= read -r rule; do
			# iptables-save quotes comments with double quotes; eval splits the rule into words again.
			eval "set -- $rule"
			shift
			chain=$1
			shift
			if "$ipt" -w 5 -t "$table" -D "$chain" "$@" 2>/dev/null; then log "deleted $ipt $table rule in $chain"; fi
		done
		chains=$(printf '%s\n' "$rules" | sed -n 's/^:\([^ ]*\) .*/\1/p' | grep -E "$CHAIN_RE")
		for c in $chains; do
			"$ipt" -w 5 -t "$table" -F "$c" 2>/dev/null
		done
		for c in $chains; do
			if "$ipt" -w 5 -t "$table" -X "$c" 2>/dev/null; then log "deleted $ipt $table chain $c"; fi
		done
	done
}
clean_iptables iptables
clean_iptables ip6tables

# 8. nftables tables of kube-proxy (nftables mode) and flannel (EnableNFTables).
if have nft; then
	for ft in $NFT_TABLES; do
		family=${ft%%:*}
		name=${ft#*:}
		if nft list table "$family" "$name" >/dev/null 2>&1; then
			if nft delete table "$family" "$name"; then log "deleted nft table $family $name"; fi
		fi
	done
fi

# 9. Files, directories and binaries.
for p in $STATE_DIRS $STATE_FILES $EXTRA_FILES $BINARIES; do
	remove_path "$p"
done
rmdir /etc/kubesmith 2>/dev/null && log "removed /etc/kubesmith"

# 10. Unit files and drop-ins, then let systemd forget them.
for u in $UNITS; do
	if $systemd; then
		systemctl disable "$u" >/dev/null 2>&1 || true
	fi
	for f in /etc/systemd/system/"$u" /etc/systemd/system/*.wants/"$u"; do
		if [ -e "$f" ] || [ -L "$f" ]; then
			if rm -f "$f"; then log "removed $f"; fi
		fi
	done
done
# Package units keep their enablement (the package's own default): without kubesmith's config they do not start.
for u in $PACKAGE_UNITS; do
	if [ -e "/etc/systemd/system/$u.d/10-kubesmith.conf" ]; then
		rm -f "/etc/systemd/system/$u.d/10-kubesmith.conf" && log "removed /etc/systemd/system/$u.d/10-kubesmith.conf"
		rmdir "/etc/systemd/system/$u.d" 2>/dev/null || true
	fi
done
if $systemd; then
	systemctl daemon-reload
	systemctl reset-failed >/dev/null 2>&1 || true
fi

# 11. Verify.
left=0
leftover() {
	log "left: $*"
	left=1
}
for u in $UNITS; do
	[ -e "/etc/systemd/system/$u" ] && leftover "unit file /etc/systemd/system/$u"
	if $systemd && systemctl is-active --quiet "$u" 2>/dev/null; then leftover "running unit $u"; fi
done
for p in $STATE_DIRS; do
	if [ -d "$p" ] && is_mount_point "$p"; then
		[ -n "$(find "$p" -mindepth 1 -maxdepth 1 2>/dev/null | head -n 1)" ] && leftover "files in mount point $p"
	elif [ -e "$p" ]; then
		leftover "$p"
	fi
done
for p in $STATE_FILES $EXTRA_FILES $BINARIES; do
	[ -e "$p" ] && leftover "$p"
done
for root in $MOUNT_ROOTS; do
	mounted_below "$root" && leftover "mounts below $root"
done
for u in $PACKAGE_UNITS; do
	[ -e "/etc/systemd/system/$u.d/10-kubesmith.conf" ] && leftover "drop-in /etc/systemd/system/$u.d/10-kubesmith.conf"
done
if have ip; then
	for l in $LINKS; do
		ip link show "$l" >/dev/null 2>&1 && leftover "link $l"
	done
fi
for ipt in iptables ip6tables; do
	have "$ipt-save" || continue
	for table in raw mangle nat filter; do
		for c in $("$ipt-save" -t "$table" 2>/dev/null | sed -n 's/^:\([^ ]*\) .*/\1/p' | grep -E "$CHAIN_RE"); do
			leftover "$ipt $table chain $c"
		done
	done
done
if have nft; then
	for ft in $NFT_TABLES; do
		nft list table "${ft%%:*}" "${ft#*:}" >/dev/null 2>&1 && leftover "nft table ${ft%%:*} ${ft#*:}"
	done
fi
if [ "$left" -eq 0 ]; then
	log "done"
fi
exit "$left"
