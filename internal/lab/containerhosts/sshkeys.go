package containerhosts

import (
	"archive/tar"
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/pem"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"time"

	"golang.org/x/crypto/ssh"
)

// hostKey is a node's SSH host key.
type hostKey struct {
	privatePEM []byte // OpenSSH private key
	public     string // authorized_keys format, no comment, no newline
}

// newKeyPair makes an ed25519 key: the OpenSSH private key PEM and the authorized_keys line.
func newKeyPair(comment string) ([]byte, string, error) {
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return nil, "", fmt.Errorf("generate ed25519 key: %w", err)
	}
	block, err := ssh.MarshalPrivateKey(priv, comment)
	if err != nil {
		return nil, "", fmt.Errorf("marshal ed25519 key: %w", err)
	}
	sshPub, err := ssh.NewPublicKey(pub)
	if err != nil {
		return nil, "", fmt.Errorf("ed25519 public key: %w", err)
	}
	return pem.EncodeToMemory(block), strings.TrimSpace(string(ssh.MarshalAuthorizedKey(sshPub))), nil
}

func newHostKey(name string) (hostKey, error) {
	priv, pub, err := newKeyPair("root@" + name)
	if err != nil {
		return hostKey{}, err
	}
	return hostKey{privatePEM: priv, public: pub}, nil
}

// clientKey loads the lab's SSH client key, creating it (id_ed25519 and id_ed25519.pub) when missing.
// Concurrent creators agree on one key: the file is linked into place only if absent.
func (l *Lab) clientKey() (ssh.Signer, string, error) {
	path := l.paths.clientKey
	if data, err := os.ReadFile(path); err == nil {
		signer, err := ssh.ParsePrivateKey(data)
		if err != nil {
			return nil, "", fmt.Errorf("client key %s: %w", path, err)
		}
		return signer, strings.TrimSpace(string(ssh.MarshalAuthorizedKey(signer.PublicKey()))), nil
	} else if !errors.Is(err, os.ErrNotExist) {
		return nil, "", fmt.Errorf("client key: %w", err)
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return nil, "", fmt.Errorf("client key: %w", err)
	}
	priv, pub, err := newKeyPair("kubesmith-lab")
	if err != nil {
		return nil, "", err
	}
	if err := os.WriteFile(path+".pub", []byte(pub+" kubesmith-lab\n"), 0o644); err != nil {
		return nil, "", fmt.Errorf("client key: %w", err)
	}
	tmp, err := os.CreateTemp(filepath.Dir(path), ".id_ed25519.*")
	if err != nil {
		return nil, "", fmt.Errorf("client key: %w", err)
	}
	defer func() { _ = os.Remove(tmp.Name()) }() // the key is linked into place; the temporary name goes
	if _, err := tmp.Write(priv); err != nil {
		_ = tmp.Close() // the write error is reported; the file is removed
		return nil, "", fmt.Errorf("client key: %w", err)
	}
	if err := tmp.Close(); err != nil {
		return nil, "", fmt.Errorf("client key: %w", err)
	}
	if err := os.Link(tmp.Name(), path); err != nil && !errors.Is(err, os.ErrExist) {
		return nil, "", fmt.Errorf("client key: %w", err)
	}
	return l.clientKey()
}

// ClientSigner is the lab's SSH client key (see ClientKeyPath), created when missing.
func (l *Lab) ClientSigner() (ssh.Signer, error) {
	s, _, err := l.clientKey()
	return s, err
}

// hostFilesTar is the tar stream `docker cp - node:/` unpacks before the node's first boot: the pinned host
// key and root's authorized_keys, owned by root with sshd's required modes. Only files and root/.ssh are
// listed, so the modes of /etc, /etc/ssh and /root in the image stay as they are.
func hostFilesTar(k hostKey, authorizedKey string) ([]byte, error) {
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	now := time.Now()
	entries := []struct {
		name string
		mode int64
		body string
		dir  bool
	}{
		{name: "etc/ssh/ssh_host_ed25519_key", mode: 0o600, body: string(k.privatePEM)},
		{name: "etc/ssh/ssh_host_ed25519_key.pub", mode: 0o644, body: k.public + "\n"},
		{name: "root/.ssh/", mode: 0o700, dir: true},
		{name: "root/.ssh/authorized_keys", mode: 0o600, body: authorizedKey + "\n"},
	}
	for _, e := range entries {
		h := &tar.Header{Name: e.name, Mode: e.mode, Uid: 0, Gid: 0, Uname: "root", Gname: "root", ModTime: now}
		if e.dir {
			h.Typeflag = tar.TypeDir
		} else {
			h.Typeflag = tar.TypeReg
			h.Size = int64(len(e.body))
		}
		if err := tw.WriteHeader(h); err != nil {
			return nil, fmt.Errorf("host files tar: %w", err)
		}
		if !e.dir {
			if _, err := tw.Write([]byte(e.body)); err != nil {
				return nil, fmt.Errorf("host files tar: %w", err)
			}
		}
	}
	if err := tw.Close(); err != nil {
		return nil, fmt.Errorf("host files tar: %w", err)
	}
	return buf.Bytes(), nil
}

// SSHConfig is an SSH client config for a node: root, the lab's client key, and the node's pinned host key
// (anything else is rejected).
func (l *Lab) SSHConfig(n Node) (*ssh.ClientConfig, error) {
	signer, err := l.ClientSigner()
	if err != nil {
		return nil, err
	}
	return sshConfig(n, signer)
}

func sshConfig(n Node, signer ssh.Signer) (*ssh.ClientConfig, error) {
	hostPub, _, _, _, err := ssh.ParseAuthorizedKey([]byte(n.HostPublicKey))
	if err != nil {
		return nil, fmt.Errorf("node %s host key: %w", n.Name, err)
	}
	return &ssh.ClientConfig{
		User:            n.User,
		Auth:            []ssh.AuthMethod{ssh.PublicKeys(signer)},
		HostKeyCallback: ssh.FixedHostKey(hostPub),
		Timeout:         5 * time.Second,
	}, nil
}

// DialSSH opens an SSH connection to a node with its pinned host key. The handshake honours ctx.
func (l *Lab) DialSSH(ctx context.Context, n Node) (*ssh.Client, error) {
	cfg, err := l.SSHConfig(n)
	if err != nil {
		return nil, err
	}
	return dialSSH(ctx, n, cfg)
}

func dialSSH(ctx context.Context, n Node, cfg *ssh.ClientConfig) (*ssh.Client, error) {
	addr := net.JoinHostPort(n.Address, fmt.Sprint(n.Port))
	d := net.Dialer{Timeout: 2 * time.Second}
	conn, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("ssh %s: %w", n.Name, err)
	}
	deadline := time.Now().Add(cfg.Timeout)
	if dl, ok := ctx.Deadline(); ok && dl.Before(deadline) {
		deadline = dl
	}
	_ = conn.SetDeadline(deadline)
	stop := context.AfterFunc(ctx, func() { _ = conn.Close() }) // unblocks the handshake; its error is reported
	defer stop()
	c, chans, reqs, err := ssh.NewClientConn(conn, addr, cfg)
	if err != nil {
		_ = conn.Close() // the handshake error is reported
		return nil, fmt.Errorf("ssh %s: %w", n.Name, err)
	}
	_ = conn.SetDeadline(time.Time{})
	return ssh.NewClient(c, chans, reqs), nil
}

// sshReady reports whether the node runs a command over SSH with its pinned key.
func sshReady(ctx context.Context, n Node, cfg *ssh.ClientConfig) error {
	client, err := dialSSH(ctx, n, cfg)
	if err != nil {
		return err
	}
	defer func() { _ = client.Close() }() // a probe: only whether the command ran matters
	sess, err := client.NewSession()
	if err != nil {
		return fmt.Errorf("ssh %s: session: %w", n.Name, err)
	}
	defer func() { _ = sess.Close() }() // io.EOF after Run; the probe's result is Run's
	if err := sess.Run("true"); err != nil {
		return fmt.Errorf("ssh %s: %w", n.Name, err)
	}
	return nil
}
