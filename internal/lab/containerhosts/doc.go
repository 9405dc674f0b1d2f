// Package containerhosts runs "bare-metal hosts" for kubesmith's tests and demo as privileged Docker
// containers that boot systemd and sshd (the kind/bootloose pattern). The provider reaches them over SSH
// exactly like physical hosts.
//
// Everything runs under a Docker daemon of its own: its own socket, data root, exec root and pidfile, and a
// containerd of its own too (dockerd 20.10 would otherwise attach to a system containerd that happens to run
// at /run/containerd/containerd.sock). It never talks to, or changes, a Docker that the user already runs.
// That dockerd has no default bridge, no masquerading and no ip_forward; nodes live on one --internal bridge
// network (NetworkName on BridgeName, Subnet), so nothing they send leaves the machine. The host reaches
// nodes and VIPs directly over the bridge (local delivery, no forwarding needed).
//
// Node addresses come from NodeRange (.2–.127); VIPRange (.128–.254) is never handed out, for VIPs and
// LoadBalancer pools.
//
// The node image (kubesmith/host:bookworm-<hash>) is built with debootstrap from the host's apt mirror by
// the embedded scripts in assets/, and cached as a tarball outside the clone, in Config.StateDir.
//
// Machine quirks are detected, not assumed (see DetectQuirks): a capability bounding set without
// CAP_SYS_RESOURCE gets a runc wrapper that drops the capabilities we do not hold; a kernel without
// /lib/modules gets a modules.builtin list inside the nodes; a host with /lib/modules has it mounted read-only
// into the nodes, as kind does. The host's cgroup layout (v1, hybrid, v2) is what the nodes see.
//
// Everything here needs root and Linux.
package containerhosts
