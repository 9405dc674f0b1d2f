package phase

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"sync"
	"time"

	"github.com/kubesmith/terraform-provider-kubesmith/internal/pki"
)

// Cluster is everything the phases need to install or converge one cluster. The engine builds it from the
// user's spec and the state.
type Cluster struct {
	Name        string
	UID         string
	Version     string // v1.37.2
	NodeNetwork netip.Prefix
	VIP         netip.Addr
	APIPort     int
	PodCIDR     netip.Prefix
	ServiceCIDR netip.Prefix
	UpstreamDNS []string
	ProxyMode   string
	Schedulable bool
	Manifests   []string
	// Addons are the optional built-in add-ons to install (AddonMetalLB); the ones not listed are removed.
	Addons []string

	EtcdHeartbeatMS, EtcdElectionMS           int
	LeaseDuration, RenewDeadline, RetryPeriod time.Duration
	// APICheckTimeout bounds keepalived's /readyz check on the masters (2 s when zero).
	APICheckTimeout time.Duration

	CAs                pki.ClusterCAs
	EncryptionKey      string
	KeepalivedPassword string
	PoolManager        pki.KeyPair

	Masters []*Target
	Workers []*Target

	// AppliedHash is recorded on every host after a successful run; Record (the cluster's non-secret
	// description, JSON) is stored on the masters for import.
	AppliedHash string
	Record      []byte

	Bundle   Fetcher
	Select   Selection
	Progress Progress
	Now      func() time.Time
	// Parallel bounds concurrent hosts.
	Parallel int
	// StartGrace is how long a unit whose start failed may take to come up through systemd's own restarts
	// before the phase fails; 2 minutes (scaled on slow machines) when zero, no wait when negative.
	StartGrace time.Duration
}

// apiCheckSeconds is APICheckTimeout in whole seconds, at least 1; 2 when unset.
func (c *Cluster) apiCheckSeconds() int {
	if c.APICheckTimeout <= 0 {
		return 2
	}
	return max(1, int((c.APICheckTimeout+time.Second-1)/time.Second))
}

// All returns masters then workers.
func (c *Cluster) All() []*Target {
	return append(append([]*Target(nil), c.Masters...), c.Workers...)
}

// APIServiceIP is the first address of the service CIDR (the kubernetes Service).
func (c *Cluster) APIServiceIP() netip.Addr { return c.ServiceCIDR.Masked().Addr().Next() }

// DNSServiceIP is the tenth address of the service CIDR, as kubeadm uses.
func (c *Cluster) DNSServiceIP() netip.Addr {
	a := c.ServiceCIDR.Masked().Addr()
	for range 10 {
		a = a.Next()
	}
	return a
}

// Endpoint is the API URL through the VIP.
func (c *Cluster) Endpoint() string {
	return fmt.Sprintf("https://%s", netip.AddrPortFrom(c.VIP, uint16(c.APIPort)))
}

// EachHost runs fn on targets in parallel, bounded by c.Parallel, as the named phase.
func (c *Cluster) EachHost(ctx context.Context, name string, targets []*Target, fn func(ctx context.Context, t *Target) error) error {
	return Parallel(ctx, c.Parallel, targets, func(ctx context.Context, t *Target) error {
		return Step(ctx, c.Progress, name, t, func(ctx context.Context) error { return fn(ctx, t) })
	})
}

// Parallel runs fn on every item in parallel, at most limit at once (8 when limit <= 0), and joins the errors
// in item order. Items not yet started when ctx ends get ctx's error.
func Parallel[T any](ctx context.Context, limit int, items []T, fn func(ctx context.Context, item T) error) error {
	if limit <= 0 {
		limit = 8
	}
	sem := make(chan struct{}, limit)
	errs := make([]error, len(items))
	var wg sync.WaitGroup
	for i, it := range items {
		wg.Add(1)
		go func() {
			defer wg.Done()
			select {
			case sem <- struct{}{}:
			case <-ctx.Done():
				errs[i] = ctx.Err()
				return
			}
			defer func() { <-sem }()
			errs[i] = fn(ctx, it)
		}()
	}
	wg.Wait()
	return errors.Join(errs...)
}

// Once runs fn as a cluster-wide phase.
func (c *Cluster) Once(ctx context.Context, name string, fn func(ctx context.Context) error) error {
	return Step(ctx, c.Progress, name, nil, fn)
}
