#!/bin/sh
# kubesmith preflight: print facts about this host. Read-only. Run with `sh -s`, as root for complete answers.
#
# Output format (version 1), parsed by kubesmith's render.ParseFacts:
#   - One fact per line: KEY=VALUE, split at the first '='. VALUE runs to the end of the line; it never contains
#     a newline and may be empty. Lines starting with '#' are comments. Parsers ignore keys they do not know.
#   - KEY matches [A-Za-z0-9_.:/@+-]+. Keys that name a file or binary embed its absolute path after a prefix
#     ("sha256:/etc/...", "version:/usr/local/bin/...").
# Keys:
#   preflight.version        1
#   os.id, os.version_id     from /etc/os-release (e.g. debian, 12)
#   os.pretty_name           from /etc/os-release
#   kernel.release, arch     uname -r, uname -m
#   hostname, machine_id     hostname, /etc/machine-id
#   virt.container           systemd-detect-virt -c (none, docker, lxc, systemd-nspawn, ...; unknown)
#   systemd.state            systemctl is-system-running (running, degraded, ...; offline without systemd)
#   cgroup.version           2 (unified) or 1 (legacy or hybrid)
#   cap.bnd                  CapBnd of this shell (hex); cap.sys_resource: yes|no (bit 24)
#   swap.total_kib           SwapTotal; swap.devices: number of active swap areas
#   net.bridge               yes if /proc/sys/net/bridge exists (br_netfilter present)
#   module.overlay           yes if overlay is in /proc/filesystems
#   sysctl.<name>            a few relevant sysctls; "absent" when the key does not exist
#   dev.kmsg                 yes if /dev/kmsg exists (kubelet's OOM watcher)
#   port.tcp.<n>, port.udp.<n>  free | used:<process> | used | unknown (no ss)
#   disk.var.avail_kib       free space on the filesystem of /var
#   time.epoch               seconds since 1970 (UTC); time.ntp_synchronized: yes|no|unknown
#   tool.<name>              absolute path, or "missing"
#   iptables.mode            nf_tables | legacy | missing
#   version:<path>           first line of the binary's version output, or "missing"
#   sha256:<path>            SHA-256 of a managed file, or "absent"
#   unit.<name>              systemctl is-active output (active, inactive, failed, activating, ...; unknown)
#   unit.<name>.enabled      systemctl is-enabled output (enabled, disabled, not-found, ...; unknown)
#   marker.present           yes|no: the cluster UID marker /etc/kubesmith/cluster-uid
#   marker.cluster_uid       its first line (empty when absent)
#   socket.containerd, socket.docker  yes if /run/containerd/containerd.sock, /run/docker.sock exist
#   net.default_iface        interface of the IPv4 default route (empty when none)
#   net.ipv4.<iface>         that interface's IPv4 addresses with prefix, space-separated
#   node_ip.iface, node_ip.prefix  interface and prefix length of the requested node IP (empty when not found)
set -u
PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
LC_ALL=C
export PATH LC_ALL

TCP_PORTS='2379 2380 2381 6443 10248 10249 10250 10256 10257 10259'
UDP_PORTS='8472'
TOOLS='iptables ip6tables iptables-save nft conntrack socat ip mount umount findmnt curl keepalived haproxy systemctl sha256sum flock ss modprobe sysctl timeout'
BINARIES='/usr/local/bin/etcd /usr/local/bin/etcdctl /usr/local/bin/etcdutl /usr/local/bin/kube-apiserver /usr/local/bin/kube-controller-manager /usr/local/bin/kube-scheduler /usr/local/bin/kubelet /usr/local/bin/kube-proxy /usr/local/bin/kubectl /usr/local/bin/containerd /usr/local/bin/containerd-shim-runc-v2 /usr/local/bin/ctr /usr/local/bin/crictl /usr/local/bin/flanneld /usr/local/sbin/runc'
MANAGED_FILES='/etc/systemd/system/containerd.service /etc/kubernetes/containerd/config.toml /etc/systemd/system/kubelet.service /etc/kubernetes/kubelet/config.yaml /etc/systemd/system/kube-proxy.service /etc/kubernetes/kube-proxy/config.yaml /etc/systemd/system/flanneld.service /etc/kubernetes/flannel/net-conf.json /etc/cni/net.d/10-flannel.conflist /etc/systemd/system/etcd.service /etc/systemd/system/kube-apiserver.service /etc/systemd/system/kube-controller-manager.service /etc/systemd/system/kube-scheduler.service /etc/kubernetes/kube-scheduler/config.yaml /etc/keepalived/keepalived.conf'
UNITS='kubelet.service kube-proxy.service flanneld.service kube-scheduler.service kube-controller-manager.service kube-apiserver.service etcd.service containerd.service keepalived.service'
NODE_IP='172.30.0.11'

have() { command -v "$1" >/dev/null 2>&1; }

# fact KEY VALUE prints one line, with newlines and carriage returns in VALUE turned into spaces.
fact() {
	printf '%s=%s\n' "$1" "$(printf '%s' "$2" | tr '\n\r' '  ')"
}

# os_release KEY prints a value from /etc/os-release without sourcing it.
os_release() {
	[ -r /etc/os-release ] || return 0
	sed -n "s/^$1=//p" /etc/os-release | head -n 1 | sed 's/^"\(.*\)"$/\1/'
}

fact preflight.version 1
fact os.id "$(os_release ID)"
fact os.version_id "$(os_release VERSION_ID)"
fact os.pretty_name "$(os_release PRETTY_NAME)"
fact kernel.release "$(uname -r)"
fact arch "$(uname -m)"
fact hostname "$(uname -n)"
fact machine_id "$(cat /etc/machine-id 2>/dev/null)"

if have systemd-detect-virt; then
	fact virt.container "$(systemd-detect-virt -c 2>/dev/null)"
else
	fact virt.container unknown
fi
if have systemctl; then
	state=$(systemctl is-system-running 2>/dev/null)
	fact systemd.state "${state:-unknown}"
else
	fact systemd.state unknown
fi

if [ "$(stat -fc %T /sys/fs/cgroup 2>/dev/null)" = cgroup2fs ]; then
	fact cgroup.version 2
else
	fact cgroup.version 1
fi

capbnd=$(awk '/^CapBnd:/ { print $2 }' /proc/self/status)
fact cap.bnd "$capbnd"
if [ -n "$capbnd" ] && [ $(((0x$capbnd >> 24) & 1)) -eq 1 ]; then
	fact cap.sys_resource yes
else
	fact cap.sys_resource no
fi

fact swap.total_kib "$(awk '/^SwapTotal:/ { print $2 }' /proc/meminfo)"
fact swap.devices "$(awk 'NR > 1' /proc/swaps 2>/dev/null | wc -l | tr -d ' ')"

if [ -d /proc/sys/net/bridge ]; then fact net.bridge yes; else fact net.bridge no; fi
if grep -qw overlay /proc/filesystems 2>/dev/null; then fact module.overlay yes; else fact module.overlay no; fi
for s in net/ipv4/ip_forward net/bridge/bridge-nf-call-iptables net/bridge/bridge-nf-call-ip6tables \
	net/ipv4/ip_unprivileged_port_start net/netfilter/nf_conntrack_max vm/overcommit_memory kernel/panic \
	kernel/panic_on_oops fs/inotify/max_user_instances fs/inotify/max_user_watches; do
	key=$(printf '%s' "$s" | tr / .)
	if [ -r "/proc/sys/$s" ]; then
		fact "sysctl.$key" "$(cat "/proc/sys/$s" 2>/dev/null)"
	else
		fact "sysctl.$key" absent
	fi
done
if [ -e /dev/kmsg ]; then fact dev.kmsg yes; else fact dev.kmsg no; fi

# port_state PROTO PORT prints free, used:<process>, used or unknown.
port_state() {
	have ss || {
		echo unknown
		return 0
	}
	opt=-Hltnp
	[ "$1" = udp ] && opt=-Hlunp
	line=$(ss "$opt" 2>/dev/null | awk -v p=":$2" '{ n = length($4) - length(p); if (n > 0 && substr($4, n + 1) == p) { print; exit } }')
	if [ -z "$line" ]; then
		echo free
		return 0
	fi
	proc=$(printf '%s' "$line" | sed -n 's/.*users:(("\([^"]*\)".*/\1/p')
	if [ -n "$proc" ]; then echo "used:$proc"; else echo used; fi
}
for p in $TCP_PORTS; do fact "port.tcp.$p" "$(port_state tcp "$p")"; done
for p in $UDP_PORTS; do fact "port.udp.$p" "$(port_state udp "$p")"; done

fact disk.var.avail_kib "$(df -Pk /var 2>/dev/null | awk 'NR == 2 { print $4 }')"
fact time.epoch "$(date -u +%s)"
ntp=unknown
if have timedatectl; then
	case "$(timedatectl show -p NTPSynchronized --value 2>/dev/null)" in
	yes) ntp=yes ;;
	no) ntp=no ;;
	esac
fi
fact time.ntp_synchronized "$ntp"

for t in $TOOLS; do
	fact "tool.$t" "$(command -v "$t" 2>/dev/null || echo missing)"
done
if have iptables; then
	case "$(iptables --version 2>/dev/null)" in
	*nf_tables*) fact iptables.mode nf_tables ;;
	*) fact iptables.mode legacy ;;
	esac
else
	fact iptables.mode missing
fi

# version_of PATH prints the first line of the binary's version output.
version_of() {
	case "${1##*/}" in
	kubectl) set -- "$1" version --client ;;
	etcdctl | etcdutl) set -- "$1" version ;;
	*) set -- "$1" --version ;;
	esac
	if have timeout; then
		timeout 20 "$@" 2>&1 | head -n 1
	else
		"$@" 2>&1 | head -n 1
	fi
}
for b in $BINARIES; do
	if [ -x "$b" ]; then
		fact "version:$b" "$(version_of "$b")"
	else
		fact "version:$b" missing
	fi
done

for f in $MANAGED_FILES; do
	if [ -f "$f" ]; then
		fact "sha256:$f" "$(sha256sum "$f" 2>/dev/null | cut -d ' ' -f 1)"
	else
		fact "sha256:$f" absent
	fi
done

for u in $UNITS; do
	if have systemctl && [ -d /run/systemd/system ]; then
		active=$(systemctl is-active "$u" 2>/dev/null)
		enabled=$(systemctl is-enabled "$u" 2>/dev/null)
		fact "unit.$u" "${active:-unknown}"
		fact "unit.$u.enabled" "${enabled:-not-found}"
	else
		fact "unit.$u" unknown
		fact "unit.$u.enabled" unknown
	fi
done

if [ -f /etc/kubesmith/cluster-uid ]; then
	fact marker.present yes
	fact marker.cluster_uid "$(head -n 1 /etc/kubesmith/cluster-uid)"
else
	fact marker.present no
	fact marker.cluster_uid ""
fi
if [ -S /run/containerd/containerd.sock ]; then fact socket.containerd yes; else fact socket.containerd no; fi
if [ -S /run/docker.sock ]; then fact socket.docker yes; else fact socket.docker no; fi

if have ip; then
	fact net.default_iface "$(ip -o -4 route show default 2>/dev/null | awk '{ for (i = 1; i < NF; i++) if ($i == "dev") { print $(i + 1); exit } }')"
	addrs=$(ip -o -4 addr show 2>/dev/null | awk '{ split($2, n, "@"); print n[1], $4 }')
	for iface in $(printf '%s\n' "$addrs" | awk 'NF == 2 { print $1 }' | sort -u); do
		fact "net.ipv4.$iface" "$(printf '%s\n' "$addrs" | awk -v i="$iface" '$1 == i { printf "%s%s", sep, $2; sep = " " }')"
	done
	if [ -n "$NODE_IP" ]; then
		match=$(printf '%s\n' "$addrs" | awk -v ip="$NODE_IP" '{ split($2, a, "/"); if (a[1] == ip) { print $1, a[2]; exit } }')
		fact node_ip.iface "${match% *}"
		fact node_ip.prefix "${match#* }"
	fi
else
	fact net.default_iface ""
	if [ -n "$NODE_IP" ]; then
		fact node_ip.iface ""
		fact node_ip.prefix ""
	fi
fi
exit 0
