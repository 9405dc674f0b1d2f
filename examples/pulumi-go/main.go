// Command pulumi-go is a Pulumi program (runtime: go) that declares kubesmith's HA topology from stack
// configuration: 3 masters behind an API VIP and a pool of workers. The topology itself is ha.Deploy, which the
// Pulumi end-to-end test (test/e2e-pulumi) calls as well.
//
//	pulumi config set nodeNetwork 10.0.0.0/24
//	pulumi config set apiVip 10.0.0.10
//	pulumi config set --path 'masters[0].name' m1   # ... address, hostPublicKey; m2, m3; workers[...]
//	pulumi config set --path kubesmith:ssh.privateKeyPath ~/.ssh/id_ed25519
//	pulumi config set --path kubesmith:artifacts.bundle ~/.cache/kubesmith/bundle
//	pulumi up
package main

import (
	"errors"
	"fmt"

	"github.com/pulumi/pulumi/sdk/v3/go/pulumi"
	"github.com/pulumi/pulumi/sdk/v3/go/pulumi/config"

	"github.com/kubesmith/terraform-provider-kubesmith/examples/pulumi-go/ha"
)

func main() {
	pulumi.Run(func(ctx *pulumi.Context) error {
		c := config.New(ctx, "")
		cfg := ha.Config{
			Name:              c.Get("clusterName"),
			KubernetesVersion: c.Get("kubernetesVersion"),
			NodeNetwork:       c.Require("nodeNetwork"),
			APIVIP:            c.Require("apiVip"),
			KubeconfigPath:    c.Get("kubeconfigPath"),
		}
		if cfg.Name == "" {
			cfg.Name = "goha"
		}
		if cfg.KubernetesVersion == "" {
			cfg.KubernetesVersion = "1.37.2"
		}
		c.RequireObject("masters", &cfg.Masters)
		if err := c.TryObject("workers", &cfg.Workers); err != nil && !errors.Is(err, config.ErrMissingVar) {
			return fmt.Errorf("config workers: %w", err)
		}
		res, err := ha.Deploy(ctx, cfg)
		if err != nil {
			return err
		}
		ctx.Export("apiEndpoint", res.Cluster.ApiEndpoint)
		ctx.Export("kubeconfig", res.Kubeconfig)
		ctx.Export("masterNodes", res.Cluster.Nodes)
		if res.Pool != nil {
			ctx.Export("workerAddresses", res.Pool.Addresses)
		}
		return nil
	})
}
