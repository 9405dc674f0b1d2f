package engine

import (
	"time"
)

// SSH holds how kubesmith reaches hosts. Host-level fields override these defaults.
type SSH struct {
	// User is the login user; root by default. A non-root user needs passwordless sudo.
	User string
	// Port is the SSH port; 22 by default.
	Port int
	// PrivateKeyPath is a private key file on the machine that runs kubesmith.
	PrivateKeyPath string
	// PrivateKey is a PEM private key given directly (a write-only, sensitive attribute).
	PrivateKey string
	// UseAgent uses the ssh-agent at SSH_AUTH_SOCK.
	UseAgent bool
	// KnownHostsPath is a known_hosts file used when a host has no HostPublicKey.
	KnownHostsPath string
	// Bastion is an optional jump host.
	Bastion *Host
	// ConnectTimeout bounds the wait for a host to come up; 5 minutes by default.
	ConnectTimeout time.Duration
}

// Host is one machine reached over SSH.
type Host struct {
	// Name is the node name; it must be a DNS-1123 label.
	Name string
	// Address is the IP address the node uses in node_network; SSH connects to it unless SSHAddress is set.
	Address string
	// SSHAddress optionally overrides the address SSH connects to.
	SSHAddress string
	// Port overrides SSH.Port.
	Port int
	// User overrides SSH.User.
	User string
	// HostPublicKey pins the host key ("ssh-ed25519 AAAA..."); required unless a known_hosts file is given.
	HostPublicKey string
}

// Artifacts says where binaries and images come from.
type Artifacts struct {
	// BundleDir is a local bundle built by `make artifacts`.
	BundleDir string
	// MirrorURL serves a bundle over HTTP; files are downloaded, verified and cached in CacheDir.
	MirrorURL string
	// CacheDir caches downloads and file hashes.
	CacheDir string
}

// Tuning holds timing parameters that slow hosts (TCG VMs) need raised.
type Tuning struct {
	// EtcdHeartbeatMS is etcd's --heartbeat-interval; 100 by default.
	EtcdHeartbeatMS int
	// EtcdElectionMS is etcd's --election-timeout; 1000 by default.
	EtcdElectionMS int
	// LeaderElectionLease, RenewDeadline and RetryPeriod apply to controller-manager and scheduler.
	LeaderElectionLease time.Duration
	RenewDeadline       time.Duration
	RetryPeriod         time.Duration
	// APICheckTimeout bounds keepalived's /readyz check that moves the API VIP; 2s by default. A busy TCG
	// master can take longer than that to answer, which would make it drop the VIP.
	APICheckTimeout time.Duration
}

// ClusterSpec is the desired state of a cluster, as the user wrote it.
type ClusterSpec struct {
	Name              string
	KubernetesVersion string // "1.37.2" or "v1.37.2"
	NodeNetwork       string // CIDR
	APIVIP            string
	APIPort           int // 6443 by default
	PodCIDR           string
	ServiceCIDR       string
	UpstreamDNS       []string
	// ControlPlane holds the masters: 1 (development) or 3.
	ControlPlane []Host
	// Libvirt, when set, makes the masters libvirt VMs that kubesmith creates; ControlPlane is then derived
	// from it (see MachineHosts).
	Libvirt *LibvirtMachines
	// MastersSchedulable removes the NoSchedule taint from masters.
	MastersSchedulable bool
	// KubeProxyMode is "iptables" (default) or "nftables".
	KubeProxyMode string
	// Manifests are extra user manifests (YAML) applied after the built-in add-ons.
	Manifests []string
	// Addons are the optional built-in add-ons (phase.OptionalAddons); nil means DefaultAddons. Add-ons that are
	// not listed are removed.
	Addons []string
	// KubeconfigPath optionally names a file where the admin kubeconfig is written.
	KubeconfigPath string
	SSH            SSH
	Artifacts      Artifacts
	Tuning         Tuning
}

// Certificate is one certificate's identity and expiry, as reported by Read.
type Certificate struct {
	Name     string
	Host     string
	NotAfter time.Time
}

// PKI is the cluster's generated key material. It is sensitive and lives in state so that no certificate is
// ever regenerated for an existing cluster.
type PKI struct {
	CACert, CAKey                        string
	EtcdCACert, EtcdCAKey                string
	FrontProxyCACert, FrontProxyCAKey    string
	ServiceAccountKey, ServiceAccountPub string
	EncryptionKey                        string
	// KeepalivedPassword authenticates VRRP between the masters.
	KeepalivedPassword string
}

// NodeStatus is what Read observed on one node.
type NodeStatus struct {
	Name             string
	Address          string
	Role             string // "control-plane" or "worker"
	Reachable        bool
	Ready            bool
	KubeletVersion   string
	ContainerRuntime string
	ConfigHash       string
	EtcdMember       bool
}

// PoolCredentials is the restricted identity that node pools and load balancers use. It can create bootstrap
// tokens, approve its own nodes' CSRs, and drain or label nodes. It is not cluster-admin.
type PoolCredentials struct {
	ClientCert string
	ClientKey  string
}

// Join is the non-secret information a node pool needs to join the cluster.
type Join struct {
	ClusterName       string
	ClusterUID        string
	Endpoint          string // https://VIP:6443
	CACertificate     string
	KubernetesVersion string
	NodeNetwork       string
	PodCIDR           string
	ServiceCIDR       string
	ClusterDNS        string
	// Masters lists the master addresses, used before the VIP answers.
	Masters []string
}

// ClusterState is what exists, as recorded in state.
type ClusterState struct {
	// UID identifies the cluster; it is written to every host and used as the etcd cluster token.
	UID  string
	PKI  PKI
	Pool PoolCredentials
	Join Join
	// ConfigHash is the hash of everything rendered for all nodes; Read reports the observed one.
	ConfigHash  string
	Nodes       []NodeStatus
	EtcdMembers []string
	// CertificatesExpire is the earliest leaf certificate expiry.
	CertificatesExpire time.Time
	// Installed is true once every phase completed.
	Installed bool
	// Drift describes what Read found different from the last apply (changed files, stopped services), per
	// host; empty when the hosts match.
	Drift []string
	// Machines are the VMs kubesmith created for the masters (libvirt only).
	Machines []Machine
}
