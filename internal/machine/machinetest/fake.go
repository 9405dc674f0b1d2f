// Package machinetest provides an in-memory machine.Driver for engine and provider tests.
package machinetest

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"

	"github.com/kubesmith/terraform-provider-kubesmith/internal/machine"
)

// Driver is an in-memory machine.Driver. Machines exist from Ensure until Delete; it records every call.
type Driver struct {
	mu       sync.Mutex
	machines map[string]machine.Machine // by name
	owner    map[string]string          // name -> cluster UID
	calls    []string

	// HostKey returns the host key of a new machine.
	HostKey func(name string) string
	// FailEnsure, when set, fails Ensure for that machine name after the others were created.
	FailEnsure string
	// FailDelete makes Delete fail.
	FailDelete error
}

var _ machine.Driver = (*Driver)(nil)

// New returns an empty fake whose machines get host keys from hostKey.
func New(hostKey func(name string) string) *Driver {
	return &Driver{machines: map[string]machine.Machine{}, owner: map[string]string{}, HostKey: hostKey}
}

// Ensure implements machine.Driver.
func (d *Driver) Ensure(_ context.Context, g machine.Group) ([]machine.Machine, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.calls = append(d.calls, fmt.Sprintf("ensure %s/%s %d", g.Cluster, g.Role, len(g.Machines)))
	var out []machine.Machine
	var errs []error
	for _, s := range g.Machines {
		if uid, ok := d.owner[s.Name]; ok && uid != g.ClusterUID {
			errs = append(errs, fmt.Errorf("domain %s belongs to another kubesmith cluster (UID %s)", s.Name, uid))
			continue
		}
		if s.Name == d.FailEnsure {
			errs = append(errs, fmt.Errorf("%s: injected failure", s.Name))
			continue
		}
		m, ok := d.machines[s.Name]
		if !ok {
			m = machine.Machine{Name: s.Name, Address: s.Address, Port: s.Port, ID: "fake-" + s.Name, HostPublicKey: d.HostKey(s.Name), Accelerator: machine.AccelTCG}
			d.machines[s.Name], d.owner[s.Name] = m, g.ClusterUID
		}
		out = append(out, m)
	}
	return out, errors.Join(errs...)
}

// Lookup implements machine.Driver.
func (d *Driver) Lookup(_ context.Context, g machine.Group) ([]machine.Machine, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	var out []machine.Machine
	for _, s := range g.Machines {
		if m, ok := d.machines[s.Name]; ok && d.owner[s.Name] == g.ClusterUID {
			out = append(out, m)
		}
	}
	return out, nil
}

// Owners implements machine.Driver.
func (d *Driver) Owners(_ context.Context, names []string) (map[string]string, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	out := map[string]string{}
	for _, n := range names {
		if uid, ok := d.owner[n]; ok {
			out[n] = uid
		}
	}
	return out, nil
}

// Delete implements machine.Driver.
func (d *Driver) Delete(_ context.Context, g machine.Group, names []string) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.calls = append(d.calls, fmt.Sprintf("delete %s/%s %v", g.Cluster, g.Role, names))
	if d.FailDelete != nil {
		return d.FailDelete
	}
	for _, n := range names {
		if uid, ok := d.owner[n]; ok && uid != g.ClusterUID {
			return fmt.Errorf("domain %s belongs to another kubesmith cluster", n)
		}
		delete(d.machines, n)
		delete(d.owner, n)
	}
	return nil
}

// Names lists the machines that exist, sorted.
func (d *Driver) Names() []string {
	d.mu.Lock()
	defer d.mu.Unlock()
	var out []string
	for n := range d.machines {
		out = append(out, n)
	}
	slices.Sort(out)
	return out
}

// Calls returns the recorded calls in order.
func (d *Driver) Calls() []string {
	d.mu.Lock()
	defer d.mu.Unlock()
	return slices.Clone(d.calls)
}
