package provider

import (
	"context"
	"fmt"
	"slices"

	"github.com/kubesmith/terraform-provider-kubesmith/internal/engine"
)

// fakeLB is what the fake engine remembers about one load balancer: the pools in the cluster and the frontend
// hosts that carry its configuration (with the hash of what is on each).
type fakeLB struct {
	pools    []engine.ServicePool
	frontend map[string]string // host address -> config hash on it
}

func (f *fakeEngine) ValidateLoadBalancer(_ context.Context, spec engine.LoadBalancerSpec) []engine.FieldError {
	return engine.ValidateLoadBalancerSpec(spec)
}

// DesiredLoadBalancerHash is the real engine's, which reads nothing from hosts.
func (f *fakeEngine) DesiredLoadBalancerHash(spec engine.LoadBalancerSpec) (string, error) {
	return engine.New(engine.Options{}).DesiredLoadBalancerHash(spec)
}

func (f *fakeEngine) ApplyLoadBalancer(_ context.Context, spec engine.LoadBalancerSpec, prior *engine.LoadBalancerState, progress engine.Progress) (engine.LoadBalancerState, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if errs := engine.ValidateLoadBalancerSpec(spec); len(errs) > 0 {
		return engine.LoadBalancerState{}, fmt.Errorf("invalid: %v", errs)
	}
	hash, err := f.DesiredLoadBalancerHash(spec)
	if err != nil {
		return engine.LoadBalancerState{}, err
	}
	st := engine.LoadBalancerState{ClusterUID: spec.Cluster.ClusterUID, VRRPPassword: "pw123456"}
	if prior != nil && prior.VRRPPassword != "" {
		st.VRRPPassword = prior.VRRPPassword
	}
	key := poolKey(spec.Cluster.ClusterUID, spec.Name)
	lb, ok := f.lbs[key]
	if !ok {
		lb = &fakeLB{frontend: map[string]string{}}
		f.lbs[key] = lb
	}
	lb.pools = slices.Clone(spec.ServicePools)
	for addr := range lb.frontend {
		if !slices.ContainsFunc(spec.Hosts, func(h engine.Host) bool { return h.Address == addr }) {
			delete(lb.frontend, addr)
			f.lbEvents = append(f.lbEvents, "reset "+addr)
		}
	}
	for _, h := range spec.Hosts {
		if lb.frontend[h.Address] != hash {
			lb.frontend[h.Address] = hash
			f.lbEvents = append(f.lbEvents, "frontend "+h.Address)
			if progress != nil {
				progress(engine.Event{Phase: "frontend", Host: h.Name, Done: true})
			}
		}
	}
	st.Hosts = slices.Clone(spec.Hosts)
	return f.observeLBLocked(spec, st, hash), nil
}

func (f *fakeEngine) observeLBLocked(spec engine.LoadBalancerSpec, st engine.LoadBalancerState, desired string) engine.LoadBalancerState {
	lb := f.lbs[poolKey(spec.Cluster.ClusterUID, spec.Name)]
	st.ConfigHash, st.VIPHolder, st.Backends = desired, "", nil
	if lb == nil {
		st.ConfigHash = "drift:gone"
		return st
	}
	for _, h := range spec.Hosts {
		if lb.frontend[h.Address] != desired {
			st.ConfigHash = "drift:" + h.Name
		} else if st.VIPHolder == "" {
			st.VIPHolder = h.Name
		}
	}
	if len(lb.pools) != len(spec.ServicePools) {
		st.ConfigHash = "drift:pools"
	}
	for _, fe := range spec.Frontends {
		tp := fe.TargetPort
		if tp == 0 {
			tp = fe.Port
		}
		for _, b := range fe.BackendAddresses {
			st.Backends = append(st.Backends, engine.BackendStatus{Port: fe.Port, Address: b, TargetPort: tp, Status: "UP"})
		}
	}
	return st
}

func (f *fakeEngine) ReadLoadBalancer(_ context.Context, spec engine.LoadBalancerSpec, state engine.LoadBalancerState) (engine.LoadBalancerReadResult, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if _, ok := f.lbs[poolKey(spec.Cluster.ClusterUID, spec.Name)]; !ok {
		return engine.LoadBalancerReadResult{State: state, Gone: true}, nil
	}
	hash, err := f.DesiredLoadBalancerHash(spec)
	if err != nil {
		return engine.LoadBalancerReadResult{}, err
	}
	return engine.LoadBalancerReadResult{State: f.observeLBLocked(spec, state, hash)}, nil
}

func (f *fakeEngine) DeleteLoadBalancer(_ context.Context, spec engine.LoadBalancerSpec, _ engine.LoadBalancerState, _ engine.Progress) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	key := poolKey(spec.Cluster.ClusterUID, spec.Name)
	if lb, ok := f.lbs[key]; ok {
		for addr := range lb.frontend {
			f.lbEvents = append(f.lbEvents, "reset "+addr)
		}
	}
	delete(f.lbs, key)
	return nil
}

// tamperLB changes the configuration on one frontend host out of band.
func (f *fakeEngine) tamperLB(uid, name, address string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if lb, ok := f.lbs[poolKey(uid, name)]; ok {
		lb.frontend[address] = "tampered"
	}
}

func (f *fakeEngine) lbLog() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.lbEvents)
}

func (f *fakeEngine) lbCount() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.lbs)
}
