package containerhosts

import (
	"archive/tar"
	"bytes"
	"io"
	"os"
	"strings"
	"testing"

	"golang.org/x/crypto/ssh"
)

func TestHostFilesTar(t *testing.T) {
	k, err := newHostKey("ks-1")
	if err != nil {
		t.Fatal(err)
	}
	signer, err := ssh.ParsePrivateKey(k.privatePEM)
	if err != nil {
		t.Fatalf("host key is not an OpenSSH private key: %v", err)
	}
	if got := strings.TrimSpace(string(ssh.MarshalAuthorizedKey(signer.PublicKey()))); got != k.public {
		t.Fatalf("public key %q does not belong to the private key (%q)", k.public, got)
	}
	data, err := hostFilesTar(k, "ssh-ed25519 AAAAclient")
	if err != nil {
		t.Fatal(err)
	}
	type entry struct {
		mode int64
		body string
		dir  bool
	}
	got := map[string]entry{}
	tr := tar.NewReader(bytes.NewReader(data))
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		if h.Uid != 0 || h.Gid != 0 {
			t.Errorf("%s owned by %d:%d", h.Name, h.Uid, h.Gid)
		}
		body, _ := io.ReadAll(tr)
		got[h.Name] = entry{mode: h.Mode, body: string(body), dir: h.Typeflag == tar.TypeDir}
	}
	want := map[string]entry{
		"etc/ssh/ssh_host_ed25519_key":     {mode: 0o600, body: string(k.privatePEM)},
		"etc/ssh/ssh_host_ed25519_key.pub": {mode: 0o644, body: k.public + "\n"},
		"root/.ssh/":                       {mode: 0o700, dir: true},
		"root/.ssh/authorized_keys":        {mode: 0o600, body: "ssh-ed25519 AAAAclient\n"},
	}
	if len(got) != len(want) {
		t.Fatalf("tar entries %v", got)
	}
	for name, w := range want {
		if g, ok := got[name]; !ok || g != w {
			t.Errorf("%s: got %+v, want %+v", name, g, w)
		}
	}
	n := Node{Name: "ks-1", User: "root", HostPublicKey: k.public}
	cfg, err := sshConfig(n, signer)
	if err != nil {
		t.Fatal(err)
	}
	if err := cfg.HostKeyCallback("ks-1:22", nil, signer.PublicKey()); err != nil {
		t.Errorf("pinned key rejected: %v", err)
	}
	other, _ := newHostKey("other")
	otherSigner, _ := ssh.ParsePrivateKey(other.privatePEM)
	if err := cfg.HostKeyCallback("ks-1:22", nil, otherSigner.PublicKey()); err == nil {
		t.Error("a different host key was accepted")
	}
}

func TestClientKeyCreatedOnceAndReused(t *testing.T) {
	dir := t.TempDir()
	l := &Lab{paths: newPaths(dir, dir+"/run")}
	s1, pub1, err := l.clientKey()
	if err != nil {
		t.Fatal(err)
	}
	s2, pub2, err := l.clientKey()
	if err != nil {
		t.Fatal(err)
	}
	if pub1 != pub2 || !bytes.Equal(s1.PublicKey().Marshal(), s2.PublicKey().Marshal()) {
		t.Fatal("second call made a new key")
	}
	st, err := os.Stat(l.ClientKeyPath())
	if err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("client key mode: %v %v", st.Mode(), err)
	}
	pubFile, err := os.ReadFile(l.ClientKeyPath() + ".pub")
	if err != nil || !strings.HasPrefix(string(pubFile), pub1) {
		t.Fatalf("id_ed25519.pub = %q, %v", pubFile, err)
	}
}
