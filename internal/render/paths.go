package render

// Host directories. The templates hard-code these paths; TestPathsReferenced keeps both in step.
const (
	// BinDir holds every binary kubesmith installs, except runc.
	BinDir = "/usr/local/bin"
	// RuncPath is where runc is installed (containerd's runc BinaryName).
	RuncPath = "/usr/local/sbin/runc"
	// UnitDir holds kubesmith's systemd units and drop-ins.
	UnitDir = "/etc/systemd/system"
	// KubernetesDir holds configuration and kubeconfigs.
	KubernetesDir = "/etc/kubernetes"
	// PKIDir holds the Kubernetes certificates; EtcdPKIDir the etcd ones.
	PKIDir     = "/etc/kubernetes/pki"
	EtcdPKIDir = "/etc/kubernetes/pki/etcd"
	// AddonsDir keeps a copy of the add-on manifests on masters, for reference.
	AddonsDir = "/etc/kubernetes/addons"
	// EtcdDataDir is etcd's data directory.
	EtcdDataDir = "/var/lib/etcd"
	// KubeletRootDir and KubeletCertDir are kubelet's state and rotated client certificates.
	KubeletRootDir = "/var/lib/kubelet"
	KubeletCertDir = "/var/lib/kubelet/pki"
	// CNIBinDir and CNIConfDir are the CNI plugin and configuration directories.
	CNIBinDir  = "/opt/cni/bin"
	CNIConfDir = "/etc/cni/net.d"
	// ContainerdSocket is containerd's CRI endpoint.
	ContainerdSocket = "/run/containerd/containerd.sock"
	// ClusterUIDMarker holds the UID of the cluster a host belongs to.
	ClusterUIDMarker = "/etc/kubesmith/cluster-uid"
	// FlannelSubnetFile is written by flanneld and read by the flannel CNI plugin.
	FlannelSubnetFile = "/run/flannel/subnet.env"
)

// Certificates and keys on masters (and, for the CA certificate and the kubelet serving pair, on every node).
// Neither the etcd CA key nor the front-proxy CA key is ever installed: kubesmith issues those leaves itself.
// The cluster CA key is installed on masters only, for kube-controller-manager's CSR signer.
const (
	PathCACert                     = PKIDir + "/ca.crt"
	PathCAKey                      = PKIDir + "/ca.key"
	PathAPIServerCert              = PKIDir + "/apiserver.crt"
	PathAPIServerKey               = PKIDir + "/apiserver.key"
	PathAPIServerKubeletClientCert = PKIDir + "/apiserver-kubelet-client.crt"
	PathAPIServerKubeletClientKey  = PKIDir + "/apiserver-kubelet-client.key"
	PathAPIServerEtcdClientCert    = PKIDir + "/apiserver-etcd-client.crt"
	PathAPIServerEtcdClientKey     = PKIDir + "/apiserver-etcd-client.key"
	PathFrontProxyCACert           = PKIDir + "/front-proxy-ca.crt"
	PathFrontProxyClientCert       = PKIDir + "/front-proxy-client.crt"
	PathFrontProxyClientKey        = PKIDir + "/front-proxy-client.key"
	PathSAKey                      = PKIDir + "/sa.key"
	PathSAPub                      = PKIDir + "/sa.pub"
	PathKubeletServingCert         = PKIDir + "/kubelet.crt"
	PathKubeletServingKey          = PKIDir + "/kubelet.key"
	PathEtcdCACert                 = EtcdPKIDir + "/ca.crt"
	PathEtcdServerCert             = EtcdPKIDir + "/server.crt"
	PathEtcdServerKey              = EtcdPKIDir + "/server.key"
	PathEtcdPeerCert               = EtcdPKIDir + "/peer.crt"
	PathEtcdPeerKey                = EtcdPKIDir + "/peer.key"
	PathEtcdHealthcheckCert        = EtcdPKIDir + "/healthcheck-client.crt"
	PathEtcdHealthcheckKey         = EtcdPKIDir + "/healthcheck-client.key"
)

// Kubeconfigs (mode 0600).
const (
	PathControllerManagerKubeconfig = KubernetesDir + "/controller-manager.conf"
	PathSchedulerKubeconfig         = KubernetesDir + "/scheduler.conf"
	PathKubeletKubeconfig           = KubernetesDir + "/kubelet.conf"
	PathKubeletBootstrapKubeconfig  = KubernetesDir + "/bootstrap-kubelet.conf"
	PathKubeProxyKubeconfig         = KubernetesDir + "/kube-proxy.conf"
	PathFlannelKubeconfig           = KubernetesDir + "/flannel.conf"
)

// Rendered configuration files.
const (
	PathEtcdUnit              = UnitDir + "/etcd.service"
	PathAPIServerUnit         = UnitDir + "/kube-apiserver.service"
	PathControllerManagerUnit = UnitDir + "/kube-controller-manager.service"
	PathSchedulerUnit         = UnitDir + "/kube-scheduler.service"
	PathContainerdUnit        = UnitDir + "/containerd.service"
	PathKubeletUnit           = UnitDir + "/kubelet.service"
	PathKubeProxyUnit         = UnitDir + "/kube-proxy.service"
	PathFlanneldUnit          = UnitDir + "/flanneld.service"
	PathKeepalivedDropIn      = UnitDir + "/keepalived.service.d/10-kubesmith.conf"
	PathAuthenticationConfig  = KubernetesDir + "/apiserver/authentication-config.yaml"
	PathEncryptionConfig      = KubernetesDir + "/apiserver/encryption-config.yaml"
	PathContainerdConfig      = KubernetesDir + "/containerd/config.toml"
	PathCrictlConfig          = "/etc/crictl.yaml"
	PathKubeletConfig         = KubernetesDir + "/kubelet/config.yaml"
	PathResolvConf            = KubernetesDir + "/resolv.conf"
	PathKubeProxyConfig       = KubernetesDir + "/kube-proxy/config.yaml"
	PathSchedulerConfig       = KubernetesDir + "/kube-scheduler/config.yaml"
	PathFlannelNetConf        = KubernetesDir + "/flannel/net-conf.json"
	PathFlannelCNIConf        = CNIConfDir + "/10-flannel.conflist"
	PathKeepalivedConfig      = "/etc/keepalived/keepalived.conf"
	PathKeepalivedCheck       = "/etc/keepalived/kubesmith-check-apiserver.sh"
	PathCoreDNSAddon          = AddonsDir + "/coredns.yaml"
	PathRBACAddon             = AddonsDir + "/rbac.yaml"
	PathBootstrapRBACAddon    = AddonsDir + "/kubelet-bootstrap-rbac.yaml"
)

// File modes.
const (
	modeConfig = 0o644
	modeSecret = 0o600
	modeExec   = 0o755
)
