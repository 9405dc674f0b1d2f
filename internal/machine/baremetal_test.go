package machine

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"errors"
	"net"
	"strconv"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"
)

// handshakeServer accepts SSH key exchanges on loopback with a fresh ed25519 host key and refuses every login.
func handshakeServer(t *testing.T) (addr string, key ssh.PublicKey) {
	t.Helper()
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	signer, err := ssh.NewSignerFromKey(priv)
	if err != nil {
		t.Fatal(err)
	}
	cfg := &ssh.ServerConfig{PublicKeyCallback: func(ssh.ConnMetadata, ssh.PublicKey) (*ssh.Permissions, error) {
		return nil, errors.New("no logins")
	}}
	cfg.AddHostKey(signer)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer func() { _ = c.Close() }()
				_, _, _, _ = ssh.NewServerConn(c, cfg)
			}()
		}
	}()
	return ln.Addr().String(), signer.PublicKey()
}

func otherKey(t *testing.T) ssh.PublicKey {
	pub, _, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	k, err := ssh.NewPublicKey(pub)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func TestCheckSSH(t *testing.T) {
	addr, key := handshakeServer(t)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := CheckSSH(ctx, addr, key); err != nil {
		t.Fatalf("matching key: %v", err)
	}
	var mismatch *HostKeyMismatchError
	if err := CheckSSH(ctx, addr, otherKey(t)); !errors.As(err, &mismatch) {
		t.Fatalf("other key: got %v, want a HostKeyMismatchError", err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closed := ln.Addr().String()
	_ = ln.Close()
	if err := CheckSSH(ctx, closed, key); err == nil {
		t.Fatal("nothing listening, but CheckSSH succeeded")
	}
}

func TestWaitSSHHonoursContext(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closed := ln.Addr().String()
	_ = ln.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	start := time.Now()
	err = WaitSSH(ctx, closed, otherKey(t), 50*time.Millisecond)
	if err == nil || !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("got %v, want a deadline error", err)
	}
	if time.Since(start) > 5*time.Second {
		t.Fatalf("WaitSSH ignored its context for %s", time.Since(start))
	}
}

func TestBaremetalEnsure(t *testing.T) {
	addr, key := handshakeServer(t)
	host, portS, _ := net.SplitHostPort(addr)
	port, _ := strconv.Atoi(portS)
	good := Spec{Name: "h1", Address: host, Port: port, HostPublicKey: authorizedKey(key)}
	bad := Spec{Name: "h2", Address: host, Port: port, HostPublicKey: authorizedKey(otherKey(t))}
	ms, err := Baremetal{Timeout: 5 * time.Second}.Ensure(context.Background(), Group{Machines: []Spec{good}})
	if err != nil || len(ms) != 1 || ms[0].ID != "host:"+host || ms[0].HostPublicKey != good.HostPublicKey {
		t.Fatalf("Ensure(good) = %+v, %v", ms, err)
	}
	ms, err = Baremetal{Timeout: 5 * time.Second}.Ensure(context.Background(), Group{Machines: []Spec{good, bad, {Name: "h3", Address: host, Port: port}}})
	var mismatch *HostKeyMismatchError
	if !errors.As(err, &mismatch) || len(ms) != 1 || ms[0].Name != "h1" {
		t.Fatalf("Ensure(good, bad, no key) = %+v, %v; want h1 and a mismatch error", ms, err)
	}
}
