package engine

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"strings"
	"sync"
	"time"

	"github.com/kubesmith/terraform-provider-kubesmith/internal/node"
	"github.com/kubesmith/terraform-provider-kubesmith/internal/phase"
	"github.com/kubesmith/terraform-provider-kubesmith/internal/pki"
)

// ReadCluster implements API. Unreachable hosts give warnings, never a removal; the cluster is Gone only when
// every host answers and none carries its marker.
func (e *Engine) ReadCluster(ctx context.Context, spec ClusterSpec, state ClusterState) (ReadResult, error) {
	spec = withDefaults(spec)
	ctx = machineContext(ctx, spec.Libvirt) // slow (emulated) machines get longer waits and API timeouts
	out := ReadResult{State: state}
	if spec.Libvirt != nil {
		if done, err := e.readClusterMachines(ctx, &spec, &out); done || err != nil {
			return out, err
		}
	}
	var targets []*phase.Target
	var closers []func()
	defer func() {
		for _, c := range closers {
			c()
		}
	}()
	unreachable := 0
	type dialed struct {
		r   node.Runner
		err error
	}
	res := make([]dialed, len(spec.ControlPlane))
	var wg sync.WaitGroup
	for i, h := range spec.ControlPlane {
		wg.Add(1)
		go func() {
			defer wg.Done()
			cfg := nodeConfig(spec.SSH, h)
			cfg.RetryFor = -1 // one attempt: Read must be fast and must not wait for dead hosts
			res[i].r, res[i].err = e.opts.Dial(ctx, cfg)
		}()
	}
	wg.Wait()
	for i, h := range spec.ControlPlane {
		r, err := res[i].r, res[i].err
		if err != nil {
			var mismatch *node.HostKeyMismatchError
			if errors.As(err, &mismatch) {
				return out, fmt.Errorf("reading %s: %w", h.Name, err)
			}
			unreachable++
			out.Warnings = append(out.Warnings, fmt.Sprintf("%s (%s) is not reachable, so its state is unknown: %v", h.Name, h.Address, err))
			continue
		}
		closers = append(closers, func() { _ = r.Close() })
		targets = append(targets, &phase.Target{Name: h.Name, Address: h.Address, Role: phase.RoleMaster, Runner: r})
	}
	if len(targets) == 0 {
		return out, nil
	}
	marked := 0
	obs, obsErrs := e.observeHosts(ctx, targets)
	for i, t := range targets {
		o, err := obs[i], obsErrs[i]
		switch {
		case err != nil:
			// Connected but could not look: the state is unknown, which is never "gone".
			unreachable++
			out.Warnings = append(out.Warnings, fmt.Sprintf("%s (%s) could not be probed, so its state is unknown: %v", t.Name, t.Address, err))
		case o.UID == state.UID:
			marked++
		}
	}
	if marked == 0 && unreachable == 0 {
		out.Gone = true
		return out, nil
	}
	bundle, err := openBundle(spec.Artifacts)
	if err != nil {
		return out, err
	}
	c, err := e.phaseCluster(spec, state, bundle, targets, nil)
	if err != nil {
		return out, err
	}
	st := state
	if err := e.observeWith(ctx, c, &st, obs, obsErrs); err != nil {
		return out, err
	}
	// Keep unreachable masters in the node list, marked as such.
	for _, h := range spec.ControlPlane {
		found := false
		for _, n := range st.Nodes {
			if n.Name == h.Name {
				found = true
			}
		}
		if !found {
			st.Nodes = append(st.Nodes, NodeStatus{Name: h.Name, Address: h.Address, Role: string(phase.RoleMaster), ConfigHash: "unreachable"})
		}
	}
	for _, d := range st.Drift {
		out.Warnings = append(out.Warnings, "configuration drift, the next apply repairs it: "+d)
	}
	out.State = st
	return out, nil
}

// DeleteCluster implements API: every host is reset to its pre-install state.
func (e *Engine) DeleteCluster(ctx context.Context, spec ClusterSpec, state ClusterState, progress Progress) error {
	spec = withDefaults(spec)
	ctx = machineContext(ctx, spec.Libvirt) // slow (emulated) machines get longer waits and API timeouts
	if spec.Libvirt != nil {
		return e.deleteClusterMachines(ctx, spec, state, progress)
	}
	ses, err := e.connect(ctx, spec.SSH, spec.ControlPlane, phase.RoleMaster)
	if err != nil {
		return err
	}
	defer ses.close()
	p := progressAdapter(progress)
	return withHostLocks(ctx, ses.targets, func() error {
		return e.forEach(ctx, ses.targets, func(ctx context.Context, t *phase.Target) error {
			return phase.Step(ctx, p, "reset", t, func(ctx context.Context) error {
				f, err := phase.GatherFacts(ctx, t)
				if err != nil {
					return err
				}
				if f.ClusterUID != "" && state.UID != "" && f.ClusterUID != state.UID {
					return fmt.Errorf("the host belongs to another cluster (UID %s), not resetting it", f.ClusterUID)
				}
				t.Facts = f
				return phase.Reset(ctx, t)
			})
		})
	})
}

// ImportCluster implements API.
func (e *Engine) ImportCluster(ctx context.Context, sshCfg SSH, arts Artifacts, address, hostPublicKey string) (ClusterSpec, ClusterState, error) {
	r, err := e.opts.Dial(ctx, nodeConfig(withDefaults(ClusterSpec{SSH: sshCfg}).SSH, Host{Name: address, Address: address, HostPublicKey: hostPublicKey}))
	if err != nil {
		return ClusterSpec{}, ClusterState{}, fmt.Errorf("import: %w", err)
	}
	defer func() { _ = r.Close() }()
	raw, err := r.ReadFile(ctx, phase.RecordFile)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return ClusterSpec{}, ClusterState{}, fmt.Errorf("import: %s is not a kubesmith master (no %s)", address, phase.RecordFile)
		}
		return ClusterSpec{}, ClusterState{}, fmt.Errorf("import: %w", err)
	}
	var rec record
	if err := json.Unmarshal(raw, &rec); err != nil {
		return ClusterSpec{}, ClusterState{}, fmt.Errorf("import: %s is corrupt: %w", phase.RecordFile, err)
	}
	spec := ClusterSpec{
		Name: rec.Name, KubernetesVersion: rec.KubernetesVersion, NodeNetwork: rec.NodeNetwork, APIVIP: rec.APIVIP,
		APIPort: rec.APIPort, PodCIDR: rec.PodCIDR, ServiceCIDR: rec.ServiceCIDR, UpstreamDNS: rec.UpstreamDNS,
		ControlPlane: rec.Masters, MastersSchedulable: rec.MastersSchedulable, KubeProxyMode: rec.KubeProxyMode,
		Manifests: rec.Manifests, Addons: rec.Addons, Tuning: rec.Tuning, SSH: sshCfg, Artifacts: arts, KubeconfigPath: rec.KubeconfigPath,
	}
	p, err := readPKI(ctx, r)
	if err != nil {
		return spec, ClusterState{}, fmt.Errorf("import: %w", err)
	}
	state := ClusterState{UID: rec.UID, PKI: p, Installed: true}
	crt, err1 := r.ReadFile(ctx, phase.PoolManagerCert)
	key, err2 := r.ReadFile(ctx, phase.PoolManagerKey)
	if err1 == nil && err2 == nil {
		state.Pool = PoolCredentials{ClientCert: string(crt), ClientKey: string(key)}
	}
	res, err := e.ReadCluster(ctx, spec, state)
	if err != nil {
		return spec, state, err
	}
	return spec, res.State, nil
}

// AdminKubeconfig implements API.
func (e *Engine) AdminKubeconfig(spec ClusterSpec, state ClusterState, validity time.Duration) ([]byte, error) {
	spec = withDefaults(spec)
	if state.PKI.CACert == "" {
		return nil, errors.New("the cluster has no CA yet; apply it first")
	}
	if validity <= 0 {
		validity = time.Hour
	}
	ca := pki.KeyPair{CertPEM: []byte(state.PKI.CACert), KeyPEM: []byte(state.PKI.CAKey)}
	kp, err := pki.AdminCert(ca, validity, e.opts.Now())
	if err != nil {
		return nil, fmt.Errorf("admin kubeconfig: %w", err)
	}
	server := "https://" + net.JoinHostPort(spec.APIVIP, fmt.Sprint(spec.APIPort))
	if strings.TrimSpace(spec.APIVIP) == "" {
		return nil, errors.New("admin kubeconfig: the cluster has no api_vip")
	}
	return pki.Kubeconfig(server, ca.CertPEM, "kubesmith-admin", kp)
}
