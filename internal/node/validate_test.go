package node_test

import (
	"crypto/ed25519"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"strings"
	"testing"

	"golang.org/x/crypto/ssh"

	"github.com/kubesmith/terraform-provider-kubesmith/internal/node"
)

func TestValidatePrivateKey(t *testing.T) {
	_, keyPEM := clientKey(t)
	if err := node.ValidatePrivateKey(keyPEM); err != nil {
		t.Errorf("OpenSSH ed25519 key: %v", err)
	}
	rsaKey, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	rsaPEM := pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(rsaKey)})
	if err := node.ValidatePrivateKey(rsaPEM); err != nil {
		t.Errorf("PKCS#1 RSA key: %v", err)
	}

	_, priv, _ := ed25519.GenerateKey(rand.Reader)
	block, err := ssh.MarshalPrivateKeyWithPassphrase(priv, "", []byte("pass"))
	if err != nil {
		t.Fatal(err)
	}
	signer, _ := ssh.NewSignerFromKey(priv)
	for name, tc := range map[string]struct {
		in   []byte
		want string
	}{
		"empty":     {nil, "empty"},
		"encrypted": {pem.EncodeToMemory(block), "passphrase"},
		"public":    {ssh.MarshalAuthorizedKey(signer.PublicKey()), "public key"},
		"garbage":   {[]byte("hello"), "not in PEM"},
		"truncated": {keyPEM[:len(keyPEM)/2], "cannot be parsed"},
	} {
		err := node.ValidatePrivateKey(tc.in)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: ValidatePrivateKey = %v, want an error about %q", name, err, tc.want)
		}
	}
}
