package render

import (
	"encoding/base64"
	"net"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"time"
)

// Defaults for control-plane data. The engine may override them (for example raised etcd timings on TCG VMs).
const (
	// DefaultEtcdHeartbeatMS and DefaultEtcdElectionMS are etcd's own defaults.
	DefaultEtcdHeartbeatMS = 100
	DefaultEtcdElectionMS  = 1000
	// DefaultEtcdQuotaBackendBytes is 8 GiB, etcd's recommended maximum (the built-in default is 2 GiB).
	DefaultEtcdQuotaBackendBytes = 8 << 30
	// DefaultEtcdAutoCompactionRetention keeps 8 hours of history. kube-apiserver compacts every 5 minutes on its
	// own; etcd's periodic compaction only matters while no apiserver runs.
	DefaultEtcdAutoCompactionRetention = "8h"
	// DefaultAPIServerPort is kube-apiserver's secure port.
	DefaultAPIServerPort = 6443
	// DefaultServiceNodePortRange is Kubernetes' default NodePort range.
	DefaultServiceNodePortRange = "30000-32767"
	// DefaultClusterDomain is the cluster DNS domain.
	DefaultClusterDomain = "cluster.local"
	// DefaultServiceAccountIssuer is the issuer kubeadm uses, which keeps tokens portable.
	DefaultServiceAccountIssuer = "https://kubernetes.default.svc.cluster.local"
	// DefaultNodeCIDRMaskSize gives every node a /24 of the pod CIDR.
	DefaultNodeCIDRMaskSize = 24
	// EtcdClientPort and EtcdPeerPort are etcd's standard ports.
	EtcdClientPort = 2379
	EtcdPeerPort   = 2380
)

// DefaultAnonymousPaths are the only paths anonymous requests may reach (health checks: keepalived, load
// balancers). RBAC's system:public-info-viewer role already grants them.
func DefaultAnonymousPaths() []string { return []string{"/healthz", "/livez", "/readyz"} }

// LeaderElection holds the leader-election settings of kube-controller-manager and kube-scheduler.
type LeaderElection struct {
	// Off turns leader election off, for a control plane of one master: its single instance has nobody to
	// compete with, and with election on it exits whenever a busy apiserver lets a lease renewal miss the renew
	// deadline, then needs minutes on a slow machine to start and lead again (its CSR signer stops meanwhile).
	Off           bool
	LeaseDuration time.Duration
	RenewDeadline time.Duration
	RetryPeriod   time.Duration
}

// DefaultLeaderElection is Kubernetes' default: 15s lease, 10s renew deadline, 2s retry.
func DefaultLeaderElection() LeaderElection {
	return LeaderElection{LeaseDuration: 15 * time.Second, RenewDeadline: 10 * time.Second, RetryPeriod: 2 * time.Second}
}

func (l LeaderElection) validate(e *errs) {
	e.duration("LeaderElection.LeaseDuration", l.LeaseDuration)
	e.duration("LeaderElection.RenewDeadline", l.RenewDeadline)
	e.duration("LeaderElection.RetryPeriod", l.RetryPeriod)
	if l.RenewDeadline >= l.LeaseDuration {
		e.addf("LeaderElection.RenewDeadline %s must be less than LeaseDuration %s", l.RenewDeadline, l.LeaseDuration)
	}
	if l.RetryPeriod >= l.RenewDeadline {
		e.addf("LeaderElection.RetryPeriod %s must be less than RenewDeadline %s", l.RetryPeriod, l.RenewDeadline)
	}
}

// EtcdMember is one member of the static initial cluster.
type EtcdMember struct {
	// Name is the member (and node) name.
	Name string
	// IP is the member's node IP.
	IP string
}

// PeerURL is the member's peer URL.
func (m EtcdMember) PeerURL() string {
	return "https://" + net.JoinHostPort(m.IP, strconv.Itoa(EtcdPeerPort))
}

// EtcdUnit is the data of systemd/etcd.service.tmpl: one etcd member with TLS on both the client and the peer
// side, and client-certificate authentication on both.
type EtcdUnit struct {
	// Name and IP identify this member; IP is the node IP (peer and client traffic).
	Name string
	IP   string
	// InitialCluster lists every member of the initial cluster, this one included. A new cluster bootstraps
	// all members at once from this static list; a member added later lists the members after `member add`.
	InitialCluster []EtcdMember
	// InitialClusterState is "new" when bootstrapping and "existing" when joining a running cluster.
	InitialClusterState string
	// Token is the initial-cluster-token: the cluster UID, so that members of different clusters never merge.
	Token string
	// DataDir is etcd's data directory (EtcdDataDir).
	DataDir string
	// HeartbeatMS and ElectionMS are etcd's raft timings; ElectionMS must be at least 5×HeartbeatMS.
	HeartbeatMS int
	ElectionMS  int
	// QuotaBackendBytes is the database size limit.
	QuotaBackendBytes int64
	// AutoCompactionRetention is the periodic compaction window, e.g. "8h".
	AutoCompactionRetention string
}

// Target implements File.
func (EtcdUnit) Target() Target {
	return Target{Template: "systemd/etcd.service.tmpl", Path: PathEtcdUnit, Mode: modeConfig}
}

// ClientURL is this member's advertised client URL.
func (u EtcdUnit) ClientURL() string {
	return "https://" + net.JoinHostPort(u.IP, strconv.Itoa(EtcdClientPort))
}

// PeerURL is this member's advertised peer URL.
func (u EtcdUnit) PeerURL() string { return EtcdMember{Name: u.Name, IP: u.IP}.PeerURL() }

// InitialClusterFlag is the --initial-cluster value: name=peerURL,...
func (u EtcdUnit) InitialClusterFlag() string {
	parts := make([]string, 0, len(u.InitialCluster))
	for _, m := range u.InitialCluster {
		parts = append(parts, m.Name+"="+m.PeerURL())
	}
	return strings.Join(parts, ",")
}

// Validate implements File.
func (u EtcdUnit) Validate() error {
	var e errs
	e.nodeName("Name", u.Name)
	e.nonLoopbackIP("IP", u.IP)
	if len(u.InitialCluster) == 0 {
		e.addf("InitialCluster is empty")
	}
	self := false
	names, ips := map[string]bool{}, map[string]bool{}
	for i, m := range u.InitialCluster {
		e.nodeName("InitialCluster["+strconv.Itoa(i)+"].Name", m.Name)
		e.nonLoopbackIP("InitialCluster["+strconv.Itoa(i)+"].IP", m.IP)
		if names[m.Name] || ips[m.IP] {
			e.addf("InitialCluster has duplicate member %s (%s)", m.Name, m.IP)
		}
		names[m.Name], ips[m.IP] = true, true
		if m.Name == u.Name {
			self = true
			if m.IP != u.IP {
				e.addf("InitialCluster lists %s at %s, but the member's IP is %s", m.Name, m.IP, u.IP)
			}
		}
	}
	if !self {
		e.addf("InitialCluster does not list this member %q", u.Name)
	}
	e.oneOf("InitialClusterState", u.InitialClusterState, "new", "existing")
	e.word("Token", u.Token)
	e.absPath("DataDir", u.DataDir)
	e.positive("HeartbeatMS", u.HeartbeatMS)
	if u.ElectionMS < 5*u.HeartbeatMS || u.ElectionMS > 50000 {
		e.addf("ElectionMS %d must be between 5×HeartbeatMS (%d) and 50000", u.ElectionMS, 5*u.HeartbeatMS)
	}
	if u.QuotaBackendBytes <= 0 {
		e.addf("QuotaBackendBytes %d is not positive", u.QuotaBackendBytes)
	}
	if d, err := time.ParseDuration(u.AutoCompactionRetention); err != nil || d <= 0 {
		e.addf("AutoCompactionRetention %q is not a positive duration", u.AutoCompactionRetention)
	}
	return e.join("etcd unit")
}

// APIServerUnit is the data of systemd/kube-apiserver.service.tmpl.
type APIServerUnit struct {
	// AdvertiseAddress is the node IP published in the kubernetes Service endpoints.
	AdvertiseAddress string
	// SecurePort is the HTTPS port (DefaultAPIServerPort). The apiserver binds all addresses on it, so that the
	// keepalived VIP reaches it too.
	SecurePort int
	// EtcdIPs are the node IPs of all etcd members.
	EtcdIPs []string
	// ServiceCIDR is the Service ClusterIP range.
	ServiceCIDR string
	// ServiceNodePortRange is the NodePort range (DefaultServiceNodePortRange).
	ServiceNodePortRange string
	// ServiceAccountIssuer is the service-account token issuer URL (DefaultServiceAccountIssuer).
	ServiceAccountIssuer string
}

// Target implements File.
func (APIServerUnit) Target() Target {
	return Target{Template: "systemd/kube-apiserver.service.tmpl", Path: PathAPIServerUnit, Mode: modeConfig}
}

// EtcdServers is the --etcd-servers value.
func (u APIServerUnit) EtcdServers() string {
	urls := make([]string, 0, len(u.EtcdIPs))
	for _, ip := range u.EtcdIPs {
		urls = append(urls, "https://"+net.JoinHostPort(ip, strconv.Itoa(EtcdClientPort)))
	}
	return strings.Join(urls, ",")
}

var portRange = regexp.MustCompile(`^([0-9]{1,5})-([0-9]{1,5})$`)

// Validate implements File.
func (u APIServerUnit) Validate() error {
	var e errs
	e.nonLoopbackIP("AdvertiseAddress", u.AdvertiseAddress)
	port(&e, "SecurePort", u.SecurePort)
	if len(u.EtcdIPs) == 0 {
		e.addf("EtcdIPs is empty")
	}
	for i, ip := range u.EtcdIPs {
		e.nonLoopbackIP("EtcdIPs["+strconv.Itoa(i)+"]", ip)
	}
	e.cidr("ServiceCIDR", u.ServiceCIDR)
	if m := portRange.FindStringSubmatch(u.ServiceNodePortRange); m == nil {
		e.addf("ServiceNodePortRange %q is not FROM-TO", u.ServiceNodePortRange)
	} else if lo, hi := atoi(m[1]), atoi(m[2]); lo < 1 || hi > 65535 || lo > hi {
		e.addf("ServiceNodePortRange %q is not a valid port range", u.ServiceNodePortRange)
	}
	if iss, err := url.Parse(u.ServiceAccountIssuer); err != nil || iss.Scheme != "https" || iss.Host == "" ||
		!safeWord.MatchString(u.ServiceAccountIssuer) {
		e.addf("ServiceAccountIssuer %q is not an https URL", u.ServiceAccountIssuer)
	}
	return e.join("kube-apiserver unit")
}

// AuthenticationConfig is the data of apiserver/authentication-config.yaml.tmpl: a structured
// AuthenticationConfiguration (apiserver.config.k8s.io/v1) that allows anonymous requests only on
// AnonymousPaths. It replaces --anonymous-auth, which must then not be set.
type AuthenticationConfig struct {
	// AnonymousPaths are the exact paths anonymous requests may reach (DefaultAnonymousPaths).
	AnonymousPaths []string
}

// Target implements File.
func (AuthenticationConfig) Target() Target {
	return Target{Template: "apiserver/authentication-config.yaml.tmpl", Path: PathAuthenticationConfig, Mode: modeConfig}
}

// Validate implements File.
func (c AuthenticationConfig) Validate() error {
	var e errs
	if len(c.AnonymousPaths) == 0 {
		e.addf("AnonymousPaths is empty; anonymous health checks would fail")
	}
	for _, p := range c.AnonymousPaths {
		if !strings.HasPrefix(p, "/") || !safeWord.MatchString(p) {
			e.addf("AnonymousPaths entry %q is not a plain absolute URL path", p)
		}
	}
	return e.join("authentication config")
}

// EncryptionKey is one secretbox key of the encryption configuration.
type EncryptionKey struct {
	// Name identifies the key in stored data ("k:v1:<provider>:<name>:..."); never reuse a name for another
	// secret.
	Name string
	// Secret is 32 random bytes, base64-encoded (pki.NewEncryptionKey).
	Secret string
}

// EncryptionConfig is the data of apiserver/encryption-config.yaml.tmpl: Secrets are encrypted at rest with
// secretbox (XSalsa20-Poly1305), which the Kubernetes documentation prefers over aescbc. The first key encrypts;
// every key decrypts, followed by identity so that data written before encryption was enabled stays readable.
// Rotation: prepend a new key, restart every apiserver, rewrite all Secrets, then drop the old key.
type EncryptionConfig struct {
	Keys []EncryptionKey
}

// Target implements File.
func (EncryptionConfig) Target() Target {
	return Target{Template: "apiserver/encryption-config.yaml.tmpl", Path: PathEncryptionConfig, Mode: modeSecret}
}

// Validate implements File.
func (c EncryptionConfig) Validate() error {
	var e errs
	if len(c.Keys) == 0 {
		e.addf("no keys")
	}
	seen := map[string]bool{}
	for i, k := range c.Keys {
		if k.Name == "" || !labelName.MatchString(k.Name) {
			e.addf("Keys[%d].Name %q is not a plain name", i, k.Name)
		}
		if seen[k.Name] {
			e.addf("Keys[%d].Name %q is duplicated", i, k.Name)
		}
		seen[k.Name] = true
		if raw, err := base64.StdEncoding.DecodeString(k.Secret); err != nil || len(raw) != 32 {
			e.addf("Keys[%d] (%s) is not base64 of 32 bytes", i, k.Name)
		}
	}
	return e.join("encryption config")
}

// ControllerManagerUnit is the data of systemd/kube-controller-manager.service.tmpl.
type ControllerManagerUnit struct {
	// ClusterName is the cluster's name (--cluster-name).
	ClusterName string
	// ClusterCIDR is the pod CIDR that node podCIDRs are allocated from.
	ClusterCIDR string
	// ServiceCIDR is the Service ClusterIP range.
	ServiceCIDR string
	// NodeCIDRMaskSize is the prefix length of each node's podCIDR (DefaultNodeCIDRMaskSize).
	NodeCIDRMaskSize int
	// LeaderElection holds the leader-election timings.
	LeaderElection LeaderElection
}

// Target implements File.
func (ControllerManagerUnit) Target() Target {
	return Target{Template: "systemd/kube-controller-manager.service.tmpl", Path: PathControllerManagerUnit, Mode: modeConfig}
}

// Validate implements File.
func (u ControllerManagerUnit) Validate() error {
	var e errs
	e.nodeName("ClusterName", u.ClusterName)
	pods := e.cidr("ClusterCIDR", u.ClusterCIDR)
	svc := e.cidr("ServiceCIDR", u.ServiceCIDR)
	if pods.IsValid() {
		if u.NodeCIDRMaskSize <= pods.Bits() || u.NodeCIDRMaskSize > pods.Addr().BitLen() || u.NodeCIDRMaskSize-pods.Bits() > 16 {
			e.addf("NodeCIDRMaskSize %d must be longer than the ClusterCIDR prefix /%d by 1 to 16 bits", u.NodeCIDRMaskSize, pods.Bits())
		}
		if svc.IsValid() && pods.Overlaps(svc) {
			e.addf("ClusterCIDR %s overlaps ServiceCIDR %s", pods, svc)
		}
	}
	u.LeaderElection.validate(&e)
	return e.join("kube-controller-manager unit")
}

// SchedulerUnit is the data of systemd/kube-scheduler.service.tmpl. The unit has no variable parts: everything
// tunable is in SchedulerConfig.
type SchedulerUnit struct{}

// Target implements File.
func (SchedulerUnit) Target() Target {
	return Target{Template: "systemd/kube-scheduler.service.tmpl", Path: PathSchedulerUnit, Mode: modeConfig}
}

// Validate implements File.
func (SchedulerUnit) Validate() error { return nil }

// SchedulerConfig is the data of kube-scheduler/config.yaml.tmpl (KubeSchedulerConfiguration v1).
type SchedulerConfig struct {
	// LeaderElection holds the leader-election timings.
	LeaderElection LeaderElection
}

// Target implements File.
func (SchedulerConfig) Target() Target {
	return Target{Template: "kube-scheduler/config.yaml.tmpl", Path: PathSchedulerConfig, Mode: modeConfig}
}

// Validate implements File.
func (c SchedulerConfig) Validate() error {
	var e errs
	c.LeaderElection.validate(&e)
	return e.join("kube-scheduler config")
}

func port(e *errs, field string, p int) {
	if p < 1 || p > 65535 {
		e.addf("%s %d is not a TCP port", field, p)
	}
}

func atoi(s string) int {
	n, err := strconv.Atoi(s)
	if err != nil {
		return -1
	}
	return n
}
