// Package ha is kubesmith's high-availability topology as a Pulumi component of plain resources: a cluster of
// 1 or 3 masters behind a keepalived API VIP and a pool of workers joined with the cluster's restricted pool
// credentials. The example program (../main.go) and the Pulumi end-to-end test both call Deploy.
package ha

import (
	"errors"
	"fmt"
	"os"

	"github.com/pulumi/pulumi/sdk/v3/go/pulumi"

	"github.com/kubesmith/terraform-provider-kubesmith/sdk/go/kubesmith"
)

// Host is one machine kubesmith reaches over SSH.
type Host struct {
	// Name is the node name.
	Name string `json:"name"`
	// Address is the node's address in NodeNetwork; kubesmith connects to it.
	Address string `json:"address"`
	// HostPublicKey is the host's pinned SSH key ("ssh-ed25519 AAAA...").
	HostPublicKey string `json:"hostPublicKey"`
}

// Config describes the topology.
type Config struct {
	// Name is the cluster name (1-32 lower-case letters, digits or '-').
	Name string
	// KubernetesVersion must be in the artifact bundle, such as "1.37.2".
	KubernetesVersion string
	// NodeNetwork is the CIDR every address and APIVIP are in.
	NodeNetwork string
	// APIVIP is a free address in NodeNetwork that keepalived moves between the masters.
	APIVIP string
	// Masters are 3 hosts for high availability, or 1 for development.
	Masters []Host
	// PoolName names the worker pool; empty means "general".
	PoolName string
	// Workers join the pool; none means no pool.
	Workers []Host
	// Labels are kept on every worker Node.
	Labels map[string]string
	// KubeconfigPath is where the provider writes an admin kubeconfig after every apply; empty means none.
	KubeconfigPath string
}

// Result holds the resources Deploy created and the values worth exporting.
type Result struct {
	Cluster *kubesmith.Cluster
	// Pool is nil when Config.Workers is empty.
	Pool *kubesmith.Nodepool
	// Kubeconfig is the admin kubeconfig read from Config.KubeconfigPath once the cluster is applied, as a
	// Pulumi secret; empty when no path is set.
	Kubeconfig pulumi.StringOutput
}

// Deploy declares the cluster and its worker pool. opts apply to every resource (pass pulumi.Provider to use an
// explicitly configured kubesmith provider).
func Deploy(ctx *pulumi.Context, cfg Config, opts ...pulumi.ResourceOption) (*Result, error) {
	if len(cfg.Masters) != 1 && len(cfg.Masters) != 3 {
		return nil, fmt.Errorf("ha: %d masters: want 3 (or 1 for development)", len(cfg.Masters))
	}
	args := &kubesmith.ClusterArgs{
		Name:              pulumi.String(cfg.Name),
		KubernetesVersion: pulumi.String(cfg.KubernetesVersion),
		NodeNetwork:       pulumi.String(cfg.NodeNetwork),
		ApiVip:            pulumi.String(cfg.APIVIP),
		ControlPlane:      &kubesmith.ClusterControlPlaneArgs{Hosts: clusterHosts(cfg.Masters)},
	}
	if cfg.KubeconfigPath != "" {
		args.KubeconfigPath = pulumi.String(cfg.KubeconfigPath)
	}
	cluster, err := kubesmith.NewCluster(ctx, cfg.Name, args, opts...)
	if err != nil {
		return nil, fmt.Errorf("ha: cluster: %w", err)
	}
	res := &Result{Cluster: cluster, Kubeconfig: readKubeconfig(cluster)}

	if len(cfg.Workers) > 0 {
		pool := cfg.PoolName
		if pool == "" {
			pool = "general"
		}
		labels := pulumi.StringMap{}
		for k, v := range cfg.Labels {
			labels[k] = pulumi.String(v)
		}
		res.Pool, err = kubesmith.NewNodepool(ctx, cfg.Name+"-"+pool, &kubesmith.NodepoolArgs{
			Name:           pulumi.String(pool),
			Cluster:        poolCluster(cluster),
			Credentials:    poolCredentials(cluster),
			Hosts:          poolHosts(cfg.Workers),
			Labels:         labels,
			MaxUnavailable: pulumi.Int(1),
			DrainTimeout:   pulumi.String("2m"),
		}, opts...)
		if err != nil {
			return nil, fmt.Errorf("ha: pool %s: %w", pool, err)
		}
	}
	return res, nil
}

func clusterHosts(hosts []Host) kubesmith.ClusterControlPlaneHostArray {
	out := kubesmith.ClusterControlPlaneHostArray{}
	for _, h := range hosts {
		out = append(out, &kubesmith.ClusterControlPlaneHostArgs{
			Name: pulumi.String(h.Name), Address: pulumi.String(h.Address), HostPublicKey: pulumi.String(h.HostPublicKey),
		})
	}
	return out
}

func poolHosts(hosts []Host) kubesmith.NodepoolHostArray {
	out := kubesmith.NodepoolHostArray{}
	for _, h := range hosts {
		out = append(out, &kubesmith.NodepoolHostArgs{
			Name: pulumi.String(h.Name), Address: pulumi.String(h.Address), HostPublicKey: pulumi.String(h.HostPublicKey),
		})
	}
	return out
}

// readKubeconfig reads the kubeconfig file the provider wrote. It waits for configHash, which is known only after
// the cluster has been applied, so a preview never reads a file that does not exist yet.
func readKubeconfig(c *kubesmith.Cluster) pulumi.StringOutput {
	out := pulumi.All(c.KubeconfigPath, c.ConfigHash).ApplyT(func(v []any) (string, error) {
		path, _ := v[0].(*string)
		if path == nil || *path == "" {
			return "", nil
		}
		data, err := os.ReadFile(*path)
		if errors.Is(err, os.ErrNotExist) {
			return "", fmt.Errorf("ha: the cluster is applied but its kubeconfig %s is missing (written on this machine only)", *path)
		}
		if err != nil {
			return "", fmt.Errorf("ha: reading the kubeconfig: %w", err)
		}
		return string(data), nil
	}).(pulumi.StringOutput)
	return pulumi.ToSecret(out).(pulumi.StringOutput)
}

// poolCluster passes the cluster's non-secret join object to a pool.
func poolCluster(c *kubesmith.Cluster) kubesmith.NodepoolClusterArgs {
	j := c.Join
	return kubesmith.NodepoolClusterArgs{
		ClusterName:       j.ClusterName().Elem(),
		ClusterUid:        j.ClusterUid().Elem(),
		Endpoint:          j.Endpoint().Elem(),
		CaCertificate:     j.CaCertificate().Elem(),
		KubernetesVersion: j.KubernetesVersion().Elem(),
		NodeNetwork:       j.NodeNetwork().Elem(),
		PodCidr:           j.PodCidr().Elem(),
		ServiceCidr:       j.ServiceCidr().Elem(),
		ClusterDns:        j.ClusterDns().Elem(),
		Masters:           j.Masters(),
	}
}

// poolCredentials passes the cluster's restricted pool identity to a pool; it stays a Pulumi secret.
func poolCredentials(c *kubesmith.Cluster) kubesmith.NodepoolCredentialsArgs {
	pc := c.PoolCredentials
	return kubesmith.NodepoolCredentialsArgs{
		ClientCertificate: pc.ClientCertificate().Elem(),
		ClientKey:         pc.ClientKey().Elem(),
	}
}
