#!/bin/sh
# Runs INSIDE the reset sandbox (see TestResetScriptInSandbox): a chroot into an overlay of / whose upper layer is
# a tmpfs, in fresh mount, network and PID namespaces. It fakes a kubesmith install, runs the rendered reset
# script three times and checks the result. Usage: inside.sh RESET_SCRIPT
set -eu
RESET=$1

# Refuse to run anywhere but in the sandbox: these markers exist only in the overlay, and a fresh network
# namespace has nothing but lo.
[ -e /.kubesmith-reset-sandbox ] || { echo "not in the sandbox" >&2; exit 2; }
[ "$(ip -o link show | wc -l)" -eq 1 ] || { echo "not in a fresh network namespace" >&2; exit 2; }
[ "$$" -lt 100 ] || { echo "not in a fresh PID namespace" >&2; exit 2; }

fail=0
check() { # check DESCRIPTION COMMAND...
	d=$1
	shift
	if "$@"; then echo "ok: $d"; else echo "FAIL: $d"; fail=1; fi
}
# shellcheck disable=SC2317 # invoked indirectly through check
absent() { [ ! -e "$1" ] && [ ! -L "$1" ]; }
# shellcheck disable=SC2317 # invoked indirectly through check
is_mount_point() { awk -v p="$1" '$5 == p { f = 1 } END { exit !f }' /proc/self/mountinfo; }

# ---- a fake install -------------------------------------------------------------------------------------------
mkdir -p /etc/kubernetes/pki/etcd /etc/kubernetes/apiserver /var/lib/etcd/member /var/lib/kubelet/pki \
	/etc/cni/net.d /opt/cni/bin /var/lib/cni/networks/cbr0 /run/flannel /var/log/pods/p1 /var/log/containers \
	/opt/containerd/lib /etc/kubesmith /etc/keepalived /etc/systemd/system/multi-user.target.wants \
	/etc/systemd/system/keepalived.service.d /srv/hostdata /usr/local/sbin /etc/sysctl.d /etc/modules-load.d
echo ca >/etc/kubernetes/pki/ca.crt
echo key >/etc/kubernetes/pki/etcd/server.key
echo db >/var/lib/etcd/member/db
echo '{}' >/etc/cni/net.d/10-flannel.conflist
echo FLANNEL_MTU=1450 >/run/flannel/subnet.env
echo 10.244.0.5 >/var/lib/cni/networks/cbr0/10.244.0.5
echo 3f1c2a9e >/etc/kubesmith/cluster-uid
echo 'vrrp' >/etc/keepalived/keepalived.conf
echo '#!/bin/sh' >/etc/keepalived/kubesmith-check-apiserver.sh
echo '[Service]' >/etc/systemd/system/keepalived.service.d/10-kubesmith.conf
echo 'runtime-endpoint: x' >/etc/crictl.yaml
echo 'net.ipv4.ip_forward = 1' >/etc/sysctl.d/99-kubesmith.conf
echo br_netfilter >/etc/modules-load.d/kubesmith.conf
for u in kubelet kube-proxy flanneld kube-scheduler kube-controller-manager kube-apiserver etcd containerd; do
	printf '[Unit]\n[Install]\nWantedBy=multi-user.target\n' >"/etc/systemd/system/$u.service"
	ln -sf "../$u.service" "/etc/systemd/system/multi-user.target.wants/$u.service"
done
for b in etcd etcdctl etcdutl kube-apiserver kube-controller-manager kube-scheduler kubelet kube-proxy kubectl \
	containerd ctr crictl flanneld; do
	printf '#!/bin/sh\nexit 0\n' >"/usr/local/bin/$b"
	chmod 755 "/usr/local/bin/$b"
done
printf '#!/bin/sh\nexit 0\n' >/usr/local/sbin/runc
# crictl would talk to containerd: make the fake one fail, as if containerd were down.
printf '#!/bin/sh\nexit 1\n' >/usr/local/bin/crictl
# A containerd shim of the k8s.io namespace (to be killed) and one of docker's moby namespace (to survive).
printf '#!/bin/sh\nsleep 600\n' >/usr/local/bin/containerd-shim-runc-v2
chmod 755 /usr/local/bin/containerd-shim-runc-v2 /usr/local/bin/crictl
/usr/local/bin/containerd-shim-runc-v2 -namespace k8s.io -id abc -address /run/containerd/containerd.sock &
SHIM=$!
/usr/local/bin/containerd-shim-runc-v2 -namespace moby -id def -address /run/containerd/containerd.sock &
DECOY=$!

# Things of the host that must survive.
echo precious >/srv/hostdata/keep.txt
echo mine >/etc/keepalived/other.conf
printf '#!/bin/sh\n' >/usr/local/bin/not-ours
echo 'net.core.somaxconn = 1024' >/etc/sysctl.d/10-host.conf

# Mounts: kubelet's self bind mount, an emptyDir tmpfs, a hostPath bind mount of host data, a container rootfs,
# /var/lib/containerd as a volume (mount point), pod network namespaces.
mount --bind /var/lib/kubelet /var/lib/kubelet
mkdir -p /var/lib/kubelet/pods/p1/volumes/kubernetes.io~empty-dir/cache /var/lib/kubelet/pods/p1/volumes/kubernetes.io~host-path/data
mount -t tmpfs tmpfs /var/lib/kubelet/pods/p1/volumes/kubernetes.io~empty-dir/cache
echo scratch >/var/lib/kubelet/pods/p1/volumes/kubernetes.io~empty-dir/cache/f
mount --bind /srv/hostdata /var/lib/kubelet/pods/p1/volumes/kubernetes.io~host-path/data
mkdir -p /var/lib/containerd
mount -t tmpfs tmpfs /var/lib/containerd
mkdir -p /var/lib/containerd/io.containerd.content.v1.content/blobs
echo blob >/var/lib/containerd/io.containerd.content.v1.content/blobs/x
mkdir -p /run/containerd/io.containerd.runtime.v2.task/k8s.io/abc/rootfs
mount -t tmpfs tmpfs /run/containerd/io.containerd.runtime.v2.task/k8s.io/abc/rootfs
ip netns add cni-0a1b2c3d-4e5f
ip netns add keepme

# Network: cni0 with a pod veth, flannel.1 on it, plus a veth "uplink" of the host.
ip link set lo up
ip link add hostup0 type veth peer name hostup0p
ip link set hostup0 up
ip link add cni0 type bridge
ip link add vethpod1 type veth peer name vethpod1p
ip link set vethpod1 master cni0
ip link add flannel.1 type vxlan id 1 dev hostup0 dstport 8472

# iptables as kubelet, kube-proxy (iptables mode), flannel and portmap leave them, plus rules of the host.
iptables -N KUBE-FIREWALL
iptables -A KUBE-FIREWALL ! -s 127.0.0.0/8 -d 127.0.0.0/8 -m comment --comment "block incoming localnet connections" \
	-m conntrack ! --ctstate RELATED,ESTABLISHED,DNAT -j DROP
iptables -A INPUT -j KUBE-FIREWALL
iptables -A OUTPUT -j KUBE-FIREWALL
iptables -t mangle -N KUBE-KUBELET-CANARY
iptables -t nat -N KUBE-SERVICES
iptables -t nat -N KUBE-SVC-NPX46M4PTMTKRN6Y
iptables -t nat -A KUBE-SERVICES -d 10.96.0.1/32 -p tcp -m comment --comment "default/kubernetes:https cluster IP" \
	-m tcp --dport 443 -j KUBE-SVC-NPX46M4PTMTKRN6Y
iptables -t nat -A PREROUTING -m comment --comment "kubernetes service portals" -j KUBE-SERVICES
iptables -t nat -A OUTPUT -m comment --comment "kubernetes service portals" -j KUBE-SERVICES
iptables -t nat -N FLANNEL-POSTRTG
iptables -t nat -A POSTROUTING -m comment --comment "flanneld masq" -j FLANNEL-POSTRTG
iptables -N FLANNEL-FWD
iptables -A FORWARD -m comment --comment "flanneld forward" -j FLANNEL-FWD
iptables -t nat -N CNI-HOSTPORT-DNAT
iptables -t nat -N CNI-DN-0123456789abcdef01234
iptables -t nat -A CNI-HOSTPORT-DNAT -p tcp -m comment --comment 'dnat name: "cbr0" id: "abc"' -m multiport --dports 8080 \
	-j CNI-DN-0123456789abcdef01234
iptables -t nat -A PREROUTING -m addrtype --dst-type LOCAL -j CNI-HOSTPORT-DNAT
ip6tables -N KUBE-FIREWALL
ip6tables -A INPUT -j KUBE-FIREWALL
iptables -N HOST-SSH
iptables -A HOST-SSH -j ACCEPT
iptables -A INPUT -p tcp --dport 22 -j HOST-SSH
iptables -t nat -A POSTROUTING -s 192.0.2.0/24 -j MASQUERADE
if command -v nft >/dev/null 2>&1; then
	nft add table ip kube-proxy
	nft add table ip6 kube-proxy
	nft add table ip flannel-ipv4
	nft add table inet host-filter
fi
iptables-save >/tmp/before.rules

# ---- run 1: removes everything -------------------------------------------------------------------------------
set +e
sh "$RESET" >/tmp/run1.log 2>&1
rc1=$?
set -e
sed 's/^/  run1| /' /tmp/run1.log
check "first run exits 0" [ "$rc1" -eq 0 ]
for p in /etc/kubernetes /var/lib/etcd /var/lib/kubelet /etc/cni /opt/cni /var/lib/cni /run/flannel /var/log/pods \
	/var/log/containers /opt/containerd /run/containerd /etc/kubesmith /etc/crictl.yaml /etc/keepalived/keepalived.conf \
	/etc/keepalived/kubesmith-check-apiserver.sh /etc/systemd/system/keepalived.service.d /etc/sysctl.d/99-kubesmith.conf \
	/etc/modules-load.d/kubesmith.conf /usr/local/bin/kubelet /usr/local/bin/etcd /usr/local/sbin/runc \
	/usr/local/bin/containerd-shim-runc-v2 /etc/systemd/system/kubelet.service \
	/etc/systemd/system/multi-user.target.wants/etcd.service /run/netns/cni-0a1b2c3d-4e5f; do
	check "removed $p" absent "$p"
done
check "hostPath data survived" [ "$(cat /srv/hostdata/keep.txt)" = precious ]
check "/var/lib/containerd (volume) kept as a mount point" is_mount_point /var/lib/containerd
check "/var/lib/containerd emptied" [ -z "$(ls -A /var/lib/containerd)" ]
check "no mounts left below /var/lib/kubelet" sh -c "! awk '{print \$5}' /proc/self/mountinfo | grep -q '^/var/lib/kubelet'"
check "host file /etc/keepalived/other.conf kept" [ -f /etc/keepalived/other.conf ]
check "host binary /usr/local/bin/not-ours kept" [ -f /usr/local/bin/not-ours ]
check "host sysctl file kept" [ -f /etc/sysctl.d/10-host.conf ]
check "netns keepme kept" [ -e /run/netns/keepme ]
check "k8s.io shim killed" sh -c "! kill -0 $SHIM 2>/dev/null"
check "moby shim alive" kill -0 "$DECOY"
check "cni0 deleted" sh -c '! ip link show cni0 >/dev/null 2>&1'
check "flannel.1 deleted" sh -c '! ip link show flannel.1 >/dev/null 2>&1'
check "pod veth deleted" sh -c '! ip link show vethpod1 >/dev/null 2>&1'
check "host link hostup0 kept" sh -c "ip link show hostup0 >/dev/null"
check "no KUBE/FLANNEL/CNI chains (v4)" sh -c "! iptables-save | grep -Eq '(KUBE-|FLANNEL|CNI-)'"
check "no KUBE/FLANNEL/CNI chains (v6)" sh -c "! ip6tables-save | grep -Eq '(KUBE-|FLANNEL|CNI-)'"
check "host chain and rule kept" sh -c "iptables-save | grep -q -- '-A INPUT -p tcp -m tcp --dport 22 -j HOST-SSH'"
check "host MASQUERADE kept" sh -c "iptables-save -t nat | grep -q -- '-A POSTROUTING -s 192.0.2.0/24 -j MASQUERADE'"
check "host iptables rules unchanged" sh -c "grep -Ev '^#|KUBE-|FLANNEL|CNI-|^\\[|^:' /tmp/before.rules | sed 's/\\[[0-9:]*\\]//' >/tmp/b; iptables-save | grep -Ev '^#|^:' | sed 's/\\[[0-9:]*\\]//' >/tmp/a; diff /tmp/b /tmp/a"
if command -v nft >/dev/null 2>&1; then
	check "kube-proxy and flannel nft tables deleted" sh -c "! nft list tables | grep -Eq 'kube-proxy|flannel'"
	check "host nft table kept" sh -c "nft list tables | grep -q 'inet host-filter'"
fi

# ---- run 2: idempotent -----------------------------------------------------------------------------------------
set +e
sh "$RESET" >/tmp/run2.log 2>&1
rc2=$?
set -e
sed 's/^/  run2| /' /tmp/run2.log
check "second run exits 0" [ "$rc2" -eq 0 ]
check "second run does nothing" [ "$(cat /tmp/run2.log)" = "reset: done" ]

# ---- run 3: a mount reset does not own, below a state directory ------------------------------------------------
mkdir -p /etc/kubernetes/foreign
mount --bind /srv/hostdata /etc/kubernetes/foreign
set +e
sh "$RESET" >/tmp/run3.log 2>&1
rc3=$?
set -e
sed 's/^/  run3| /' /tmp/run3.log
check "third run exits 1" [ "$rc3" -eq 1 ]
check "third run reports /etc/kubernetes as left" grep -qx 'reset: left: /etc/kubernetes' /tmp/run3.log
check "data below the foreign mount survived" [ "$(cat /srv/hostdata/keep.txt)" = precious ]

kill "$DECOY" 2>/dev/null || true
exit "$fail"
