package engine

import (
	"context"
	"time"
)

// Event is one progress report from the engine: a phase starting or ending on a host (Host is empty for
// cluster-wide phases).
type Event struct {
	Phase    string
	Host     string
	Message  string
	Duration time.Duration
	Done     bool
	Err      error
}

// Progress receives events. It must not block for long; it may be nil.
type Progress func(Event)

// FieldError is a validation failure tied to one attribute. Path uses Terraform attribute names, for example
// "api_vip" or "control_plane.hosts[1].address".
type FieldError struct {
	Path    string
	Summary string
	Detail  string
	// Warning marks a finding that does not stop the plan.
	Warning bool
}

func (e FieldError) Error() string { return e.Path + ": " + e.Summary + ": " + e.Detail }

// ReadResult is what Read observed.
type ReadResult struct {
	State ClusterState
	// Gone is true only when every host is positively gone (no cluster marker, or the machine no longer
	// exists). Unreachable hosts never set it.
	Gone bool
	// Warnings describe hosts that could not be reached and similar non-fatal findings.
	Warnings []string
}

// API is what the provider (and the Pulumi bridge through it) calls. Engine implements it; tests use fakes.
type API interface {
	// ValidateCluster checks the spec without touching any host. It reads only the artifact manifest.
	ValidateCluster(ctx context.Context, spec ClusterSpec) []FieldError
	// DesiredClusterHash is the config hash Apply would produce for spec on a cluster with this UID.
	DesiredClusterHash(spec ClusterSpec, uid string) (string, error)
	// DesiredClusterConfig is the JSON DesiredClusterHash hashes, for diagnostics.
	DesiredClusterConfig(spec ClusterSpec, uid string) ([]byte, error)
	// ApplyCluster creates or converges the cluster. prior is nil on create. On error it still returns
	// everything that exists (UID, PKI) so that state keeps it.
	ApplyCluster(ctx context.Context, spec ClusterSpec, prior *ClusterState, progress Progress) (ClusterState, error)
	// ReadCluster probes the hosts and reports what is really there.
	ReadCluster(ctx context.Context, spec ClusterSpec, state ClusterState) (ReadResult, error)
	// DeleteCluster resets every host to its pre-install state.
	DeleteCluster(ctx context.Context, spec ClusterSpec, state ClusterState, progress Progress) error
	// ImportCluster reconstructs spec and state from a master reached at address with the given host key
	// (empty: use SSH.KnownHostsPath).
	ImportCluster(ctx context.Context, ssh SSH, artifacts Artifacts, address, hostPublicKey string) (ClusterSpec, ClusterState, error)
	// AdminKubeconfig issues a short-lived cluster-admin kubeconfig signed by the cluster CA.
	AdminKubeconfig(spec ClusterSpec, state ClusterState, validity time.Duration) ([]byte, error)

	// ValidateNodePool checks a node pool spec without touching any host or the cluster.
	ValidateNodePool(ctx context.Context, spec NodePoolSpec) []FieldError
	// DesiredNodePoolHash is the config hash ReadNodePool reports when the pool matches spec.
	DesiredNodePoolHash(spec NodePoolSpec) (string, error)
	// ApplyNodePool joins new workers, converges drifted ones, patches labels and taints, and drains and
	// resets removed ones. prior is nil on create. On error it still returns the hosts that may carry state.
	ApplyNodePool(ctx context.Context, spec NodePoolSpec, prior *NodePoolState, progress Progress) (NodePoolState, error)
	// ReadNodePool probes the workers and their Nodes.
	ReadNodePool(ctx context.Context, spec NodePoolSpec, state NodePoolState) (NodePoolReadResult, error)
	// DeleteNodePool drains, deletes and resets every worker of the pool.
	DeleteNodePool(ctx context.Context, spec NodePoolSpec, state NodePoolState, progress Progress) error
	// ImportNodePool rebuilds a pool's spec (without credentials) and state from one of its workers.
	ImportNodePool(ctx context.Context, ssh SSH, artifacts Artifacts, address, hostPublicKey string) (NodePoolSpec, NodePoolState, error)

	// ValidateLoadBalancer checks a load balancer spec without touching any host or the cluster.
	ValidateLoadBalancer(ctx context.Context, spec LoadBalancerSpec) []FieldError
	// DesiredLoadBalancerHash is the config hash ReadLoadBalancer reports when everything matches spec.
	DesiredLoadBalancerHash(spec LoadBalancerSpec) (string, error)
	// ApplyLoadBalancer converges the MetalLB pools and the frontend hosts. prior is nil on create. On error it
	// still returns the hosts that may carry state.
	ApplyLoadBalancer(ctx context.Context, spec LoadBalancerSpec, prior *LoadBalancerState, progress Progress) (LoadBalancerState, error)
	// ReadLoadBalancer probes the pools and the frontend hosts.
	ReadLoadBalancer(ctx context.Context, spec LoadBalancerSpec, state LoadBalancerState) (LoadBalancerReadResult, error)
	// DeleteLoadBalancer removes the pools and the frontends.
	DeleteLoadBalancer(ctx context.Context, spec LoadBalancerSpec, state LoadBalancerState, progress Progress) error
}
