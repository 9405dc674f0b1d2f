package machine

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strconv"
	"time"

	"golang.org/x/crypto/ssh"
	"golang.org/x/sync/errgroup"
)

// Baremetal is the Driver for static hosts: machines that exist already and are never created or destroyed by
// kubesmith.
type Baremetal struct {
	// Timeout bounds the check of one host; 10 s when zero.
	Timeout time.Duration
}

var _ Driver = Baremetal{}

// HostKeyMismatchError means a machine answered SSH with another host key than the pinned one.
type HostKeyMismatchError struct {
	Address  string
	Expected string
	Got      string
}

func (e *HostKeyMismatchError) Error() string {
	return fmt.Sprintf("%s answered SSH with host key %s, but %s is pinned; if the machine was reinstalled, update its host_public_key after checking the new key out of band",
		e.Address, e.Got, e.Expected)
}

// Ensure implements Driver: every host must answer SSH with its expected host key.
func (b Baremetal) Ensure(ctx context.Context, g Group) ([]Machine, error) {
	out := make([]Machine, len(g.Machines))
	ok := make([]bool, len(g.Machines))
	eg, ctx := errgroup.WithContext(ctx)
	eg.SetLimit(8)
	errs := make([]error, len(g.Machines))
	for i, s := range g.Machines {
		eg.Go(func() error {
			key, _, _, _, err := ssh.ParseAuthorizedKey([]byte(s.HostPublicKey))
			if err != nil {
				errs[i] = fmt.Errorf("%s: host_public_key %q cannot be parsed: %w", s.Name, s.HostPublicKey, err)
				return nil
			}
			cctx, cancel := context.WithTimeout(ctx, b.timeout())
			defer cancel()
			addr := net.JoinHostPort(s.Address, strconv.Itoa(sshPort(s.Port)))
			if err := CheckSSH(cctx, addr, key); err != nil {
				errs[i] = fmt.Errorf("%s: %w", s.Name, err)
				return nil
			}
			out[i] = Machine{Name: s.Name, Address: s.Address, Port: s.Port, ID: "host:" + s.Address, HostPublicKey: authorizedKey(key)}
			ok[i] = true
			return nil
		})
	}
	_ = eg.Wait()
	var have []Machine
	for i := range out {
		if ok[i] {
			have = append(have, out[i])
		}
	}
	return have, errors.Join(errs...)
}

// Lookup implements Driver: static hosts always exist; it reports them without contacting them.
func (b Baremetal) Lookup(_ context.Context, g Group) ([]Machine, error) {
	out := make([]Machine, 0, len(g.Machines))
	for _, s := range g.Machines {
		out = append(out, Machine{Name: s.Name, Address: s.Address, Port: s.Port, ID: "host:" + s.Address, HostPublicKey: s.HostPublicKey})
	}
	return out, nil
}

// Owners implements Driver: static hosts carry no record of their own; the engine reads the cluster marker on
// the host over SSH instead.
func (b Baremetal) Owners(context.Context, []string) (map[string]string, error) {
	return map[string]string{}, nil
}

// Delete implements Driver. Static hosts are not kubesmith's to destroy; the engine resets them over SSH
// instead, so there is nothing to do here.
func (b Baremetal) Delete(context.Context, Group, []string) error { return nil }

func (b Baremetal) timeout() time.Duration {
	if b.Timeout > 0 {
		return b.Timeout
	}
	return 10 * time.Second
}

// errHostKeyAccepted ends the handshake once the host key is verified: no credentials are offered, so no
// session can follow.
var errHostKeyAccepted = errors.New("host key verified")

// CheckSSH dials addr and runs the SSH key exchange, verifying the host key against want. It authenticates
// with nothing and opens no session. It returns *HostKeyMismatchError when another key answers.
func CheckSSH(ctx context.Context, addr string, want ssh.PublicKey) error {
	if want == nil {
		return errors.New("no host key to pin")
	}
	var d net.Dialer
	conn, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return fmt.Errorf("SSH at %s: %w", addr, err)
	}
	defer func() { _ = conn.Close() }()
	if dl, ok := ctx.Deadline(); ok {
		_ = conn.SetDeadline(dl)
	}
	stop := context.AfterFunc(ctx, func() { _ = conn.Close() })
	defer stop()
	verified := false
	cfg := &ssh.ClientConfig{
		User:              "kubesmith-probe",
		HostKeyAlgorithms: []string{want.Type()},
		HostKeyCallback: func(_ string, _ net.Addr, got ssh.PublicKey) error {
			if err := ssh.FixedHostKey(want)("", nil, got); err != nil {
				return &HostKeyMismatchError{Address: addr, Expected: authorizedKey(want), Got: authorizedKey(got)}
			}
			verified = true
			return errHostKeyAccepted
		},
	}
	c, _, _, err := ssh.NewClientConn(conn, addr, cfg)
	if c != nil {
		_ = c.Close()
	}
	var mismatch *HostKeyMismatchError
	switch {
	case verified:
		return nil
	case errors.As(err, &mismatch):
		return mismatch
	case ctx.Err() != nil:
		return fmt.Errorf("SSH handshake with %s: %w", addr, ctx.Err())
	default:
		return fmt.Errorf("SSH handshake with %s: %w", addr, err)
	}
}

// WaitSSH polls CheckSSH every interval until it succeeds, the host answers with another key, or ctx ends.
func WaitSSH(ctx context.Context, addr string, want ssh.PublicKey, interval time.Duration) error {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		actx, cancel := context.WithTimeout(ctx, 10*time.Second)
		err := CheckSSH(actx, addr, want)
		cancel()
		var mismatch *HostKeyMismatchError
		switch {
		case err == nil:
			return nil
		case errors.As(err, &mismatch):
			return err
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("waiting for SSH at %s: %w (last attempt: %w)", addr, ctx.Err(), err)
		case <-t.C:
		}
	}
}
