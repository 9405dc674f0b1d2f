package pki

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"time"
)

// Identities (certificate subjects) used in the cluster. Kubernetes reads the CN as the user name and each O
// as a group. The RBAC add-on (internal/render) binds exactly these names.
const (
	// UserAPIServer is the CN of the apiserver's serving certificate.
	UserAPIServer = "kube-apiserver"
	// UserAPIServerEtcdClient is the apiserver's client identity towards etcd.
	UserAPIServerEtcdClient = "kube-apiserver-etcd-client"
	// UserEtcdHealthcheck is the client identity for etcdctl health checks, snapshots and member changes.
	UserEtcdHealthcheck = "kube-etcd-healthcheck-client"
	// UserAPIServerKubeletClient is the apiserver's client identity towards kubelets. It is not in
	// system:masters; RBAC binds it to system:kubelet-api-admin.
	UserAPIServerKubeletClient = "kube-apiserver-kubelet-client"
	// UserFrontProxyClient is the aggregation-layer client (--requestheader-allowed-names).
	UserFrontProxyClient = "front-proxy-client"
	// UserAdmin is the break-glass administrator in system:masters. Issue it with a short validity.
	UserAdmin = "kubesmith-admin"
	// UserControllerManager, UserScheduler and UserKubeProxy are bound by Kubernetes' default RBAC policy.
	UserControllerManager = "system:kube-controller-manager"
	UserScheduler         = "system:kube-scheduler"
	UserKubeProxy         = "system:kube-proxy"
	// UserFlannel is flanneld's identity; RBAC binds it to the flannel ClusterRole.
	UserFlannel = "kubesmith:flannel"
	// PoolManagerUserPrefix + cluster name is the pool manager's user name.
	PoolManagerUserPrefix = "kubesmith:pool-manager:"
	// GroupPoolManagers is the pool manager's group; RBAC grants the restricted pool-manager role to it.
	GroupPoolManagers = "kubesmith:pool-managers"
	// GroupMasters is Kubernetes' superuser group.
	GroupMasters = "system:masters"
	// GroupNodes is the group of every kubelet; NodeUserPrefix + node name is a kubelet's user name.
	GroupNodes     = "system:nodes"
	NodeUserPrefix = "system:node:"
)

// APIServerRequest is the apiserver serving certificate: the in-cluster service names, localhost, 127.0.0.1,
// the VIP, every master's IP and name, the first service IP, and extraSANs (each an IP or a DNS name).
func APIServerRequest(vip net.IP, masterIPs []net.IP, masterNames []string, serviceIP net.IP, extraSANs []string) Request {
	dns := []string{"kubernetes", "kubernetes.default", "kubernetes.default.svc", "kubernetes.default.svc.cluster.local", "localhost"}
	dns = append(dns, masterNames...)
	ips := []net.IP{net.IPv4(127, 0, 0, 1)}
	if vip != nil {
		ips = append(ips, vip)
	}
	ips = append(ips, masterIPs...)
	if serviceIP != nil {
		ips = append(ips, serviceIP)
	}
	for _, s := range extraSANs {
		if ip := net.ParseIP(s); ip != nil {
			ips = append(ips, ip)
		} else {
			dns = append(dns, s)
		}
	}
	return Request{
		CommonName: UserAPIServer,
		DNSNames:   dedupe(dns),
		IPs:        dedupeIPs(ips),
		Server:     true,
		Validity:   LeafValidity,
	}
}

// APIServerCert issues APIServerRequest with the cluster CA.
func APIServerCert(ca KeyPair, vip net.IP, masterIPs []net.IP, masterNames []string, serviceIP net.IP, extraSANs []string, now time.Time) (KeyPair, error) {
	if vip == nil {
		return KeyPair{}, errors.New("apiserver certificate: no VIP")
	}
	if serviceIP == nil {
		return KeyPair{}, errors.New("apiserver certificate: no service IP")
	}
	return Issue(ca, APIServerRequest(vip, masterIPs, masterNames, serviceIP, extraSANs), now)
}

// etcdMemberRequest covers the names an etcd member answers to: its name, localhost, its IP and the loopbacks.
func etcdMemberRequest(name string, ip net.IP) Request {
	return Request{
		CommonName: name,
		DNSNames:   []string{name, "localhost"},
		IPs:        dedupeIPs([]net.IP{ip, net.IPv4(127, 0, 0, 1), net.IPv6loopback}),
		Server:     true,
		Client:     true, // etcd also dials itself and its peers with these certificates
		Validity:   LeafValidity,
	}
}

// EtcdServerRequest is an etcd member's client-facing serving certificate (server and client usage).
func EtcdServerRequest(name string, ip net.IP) Request { return etcdMemberRequest(name, ip) }

// EtcdPeerRequest is an etcd member's peer certificate (server and client usage).
func EtcdPeerRequest(name string, ip net.IP) Request { return etcdMemberRequest(name, ip) }

// EtcdServerCert issues EtcdServerRequest with the etcd CA.
func EtcdServerCert(etcdCA KeyPair, name string, ip net.IP, now time.Time) (KeyPair, error) {
	if name == "" || ip == nil {
		return KeyPair{}, errors.New("etcd server certificate: name and IP are required")
	}
	return Issue(etcdCA, EtcdServerRequest(name, ip), now)
}

// EtcdPeerCert issues EtcdPeerRequest with the etcd CA.
func EtcdPeerCert(etcdCA KeyPair, name string, ip net.IP, now time.Time) (KeyPair, error) {
	if name == "" || ip == nil {
		return KeyPair{}, errors.New("etcd peer certificate: name and IP are required")
	}
	return Issue(etcdCA, EtcdPeerRequest(name, ip), now)
}

// EtcdClientRequest is an etcd client certificate with common name cn (UserAPIServerEtcdClient or
// UserEtcdHealthcheck).
func EtcdClientRequest(cn string) Request {
	return Request{CommonName: cn, Client: true, Validity: LeafValidity}
}

// EtcdClientCert issues EtcdClientRequest with the etcd CA.
func EtcdClientCert(etcdCA KeyPair, cn string, now time.Time) (KeyPair, error) {
	return Issue(etcdCA, EtcdClientRequest(cn), now)
}

// APIServerKubeletClientRequest is the apiserver's client certificate for kubelets (logs, exec, port-forward).
func APIServerKubeletClientRequest() Request {
	return Request{CommonName: UserAPIServerKubeletClient, Client: true, Validity: LeafValidity}
}

// APIServerKubeletClientCert issues APIServerKubeletClientRequest with the cluster CA.
func APIServerKubeletClientCert(ca KeyPair, now time.Time) (KeyPair, error) {
	return Issue(ca, APIServerKubeletClientRequest(), now)
}

// FrontProxyClientRequest is the aggregation layer's client certificate.
func FrontProxyClientRequest() Request {
	return Request{CommonName: UserFrontProxyClient, Client: true, Validity: LeafValidity}
}

// FrontProxyClientCert issues FrontProxyClientRequest with the front-proxy CA.
func FrontProxyClientCert(frontProxyCA KeyPair, now time.Time) (KeyPair, error) {
	return Issue(frontProxyCA, FrontProxyClientRequest(), now)
}

// KubeletServingRequest is a kubelet's serving certificate: system:node:<name> in system:nodes, with the node
// name and its IPs as SANs, so that the apiserver can verify it (--kubelet-certificate-authority).
func KubeletServingRequest(nodeName string, ips []net.IP) Request {
	return Request{
		CommonName:   NodeUserPrefix + nodeName,
		Organization: []string{GroupNodes},
		DNSNames:     []string{nodeName},
		IPs:          dedupeIPs(ips),
		Server:       true,
		Validity:     LeafValidity,
	}
}

// KubeletServingCert issues KubeletServingRequest with the cluster CA.
func KubeletServingCert(ca KeyPair, nodeName string, ips []net.IP, now time.Time) (KeyPair, error) {
	if nodeName == "" {
		return KeyPair{}, errors.New("kubelet serving certificate: node name is empty")
	}
	return Issue(ca, KubeletServingRequest(nodeName, ips), now)
}

// NodeClientRequest is a kubelet's initial client certificate (masters, which join without a bootstrap token).
// kubelet rotates it afterwards through a CSR that the selfnodeclient rule approves.
func NodeClientRequest(nodeName string) Request {
	return Request{
		CommonName:   NodeUserPrefix + nodeName,
		Organization: []string{GroupNodes},
		Client:       true,
		Validity:     LeafValidity,
	}
}

// NodeClientCert issues NodeClientRequest with the cluster CA.
func NodeClientCert(ca KeyPair, nodeName string, now time.Time) (KeyPair, error) {
	if nodeName == "" {
		return KeyPair{}, errors.New("node client certificate: node name is empty")
	}
	return Issue(ca, NodeClientRequest(nodeName), now)
}

// AdminRequest is the cluster-admin client certificate (system:masters) with the given validity.
func AdminRequest(validity time.Duration) Request {
	return Request{CommonName: UserAdmin, Organization: []string{GroupMasters}, Client: true, Validity: validity}
}

// AdminCert issues AdminRequest with the cluster CA. Keep validity short: the certificate cannot be revoked.
func AdminCert(ca KeyPair, validity time.Duration, now time.Time) (KeyPair, error) {
	return Issue(ca, AdminRequest(validity), now)
}

// ControllerManagerRequest is kube-controller-manager's client certificate.
func ControllerManagerRequest() Request {
	return Request{CommonName: UserControllerManager, Client: true, Validity: LeafValidity}
}

// ControllerManagerCert issues ControllerManagerRequest with the cluster CA.
func ControllerManagerCert(ca KeyPair, now time.Time) (KeyPair, error) {
	return Issue(ca, ControllerManagerRequest(), now)
}

// SchedulerRequest is kube-scheduler's client certificate.
func SchedulerRequest() Request {
	return Request{CommonName: UserScheduler, Client: true, Validity: LeafValidity}
}

// SchedulerCert issues SchedulerRequest with the cluster CA.
func SchedulerCert(ca KeyPair, now time.Time) (KeyPair, error) {
	return Issue(ca, SchedulerRequest(), now)
}

// KubeProxyRequest is kube-proxy's client certificate (bound to system:node-proxier by default RBAC).
func KubeProxyRequest() Request {
	return Request{CommonName: UserKubeProxy, Client: true, Validity: LeafValidity}
}

// KubeProxyCert issues KubeProxyRequest with the cluster CA.
func KubeProxyCert(ca KeyPair, now time.Time) (KeyPair, error) {
	return Issue(ca, KubeProxyRequest(), now)
}

// PoolManagerRequest is the restricted pool-manager identity of one cluster: user
// kubesmith:pool-manager:<cluster> in group kubesmith:pool-managers. It is deliberately NOT in system:masters.
func PoolManagerRequest(clusterName string) Request {
	return Request{
		CommonName:   PoolManagerUserPrefix + clusterName,
		Organization: []string{GroupPoolManagers},
		Client:       true,
		Validity:     LeafValidity,
	}
}

// PoolManagerCert issues PoolManagerRequest with the cluster CA.
func PoolManagerCert(ca KeyPair, clusterName string, now time.Time) (KeyPair, error) {
	if clusterName == "" {
		return KeyPair{}, errors.New("pool-manager certificate: cluster name is empty")
	}
	return Issue(ca, PoolManagerRequest(clusterName), now)
}

// FlannelRequest is flanneld's client certificate; RBAC binds the user to the flannel ClusterRole (nodes
// get/list/watch, nodes/status patch, pods get).
func FlannelRequest() Request {
	return Request{CommonName: UserFlannel, Client: true, Validity: LeafValidity}
}

// FlannelCert issues FlannelRequest with the cluster CA.
func FlannelCert(ca KeyPair, now time.Time) (KeyPair, error) {
	return Issue(ca, FlannelRequest(), now)
}

// KubernetesServiceIP is the first host address of the service CIDR: the ClusterIP of the "kubernetes" Service,
// which must be in the apiserver certificate.
func KubernetesServiceIP(serviceCIDR string) (net.IP, error) {
	return NthIP(serviceCIDR, 1)
}

// NthIP is the n-th address of cidr (n=1 is the first address after the network address), e.g. the cluster
// DNS address is NthIP(serviceCIDR, 10).
func NthIP(cidr string, n int) (net.IP, error) {
	p, err := netip.ParsePrefix(cidr)
	if err != nil {
		return nil, fmt.Errorf("parse CIDR: %w", err)
	}
	if n < 0 {
		return nil, fmt.Errorf("address index %d is negative", n)
	}
	addr := p.Masked().Addr()
	for range n {
		addr = addr.Next()
	}
	if !addr.IsValid() || !p.Contains(addr) {
		return nil, fmt.Errorf("address %d is outside %s", n, p)
	}
	return net.IP(addr.AsSlice()), nil
}
