package pki

import (
	"crypto"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/pem"
	"errors"
	"fmt"
)

// ServiceAccountKeyBits is the RSA modulus size of the service-account signing key.
const ServiceAccountKeyBits = 2048

// EncryptionKeyBytes is the size of a secretbox (or aescbc-256) key for encryption of Secrets at rest.
const EncryptionKeyBytes = 32

// SAKey is the service-account token signing key pair: kube-apiserver signs with PrivatePEM
// (--service-account-signing-key-file) and verifies with PublicPEM (--service-account-key-file);
// kube-controller-manager signs legacy tokens with PrivatePEM (--service-account-private-key-file).
type SAKey struct {
	// PublicPEM is a PKIX "PUBLIC KEY" block (sa.pub).
	PublicPEM []byte
	// PrivatePEM is a PKCS #8 "PRIVATE KEY" block (sa.key).
	PrivatePEM []byte
}

// NewServiceAccountKey generates an RSA 2048 service-account key (RS256 tokens; see the package comment).
func NewServiceAccountKey() (SAKey, error) {
	key, err := rsa.GenerateKey(rand.Reader, ServiceAccountKeyBits)
	if err != nil {
		return SAKey{}, fmt.Errorf("service-account key: generate: %w", err)
	}
	priv, err := encodePrivateKey(key)
	if err != nil {
		return SAKey{}, fmt.Errorf("service-account key: %w", err)
	}
	pub, err := encodePublicKey(key.Public())
	if err != nil {
		return SAKey{}, fmt.Errorf("service-account key: %w", err)
	}
	return SAKey{PublicPEM: pub, PrivatePEM: priv}, nil
}

// Validate checks that both halves parse and belong together.
func (k SAKey) Validate() error {
	signer, err := ParsePrivateKey(k.PrivatePEM)
	if err != nil {
		return fmt.Errorf("service-account key: %w", err)
	}
	block, _ := pem.Decode(k.PublicPEM)
	if block == nil || block.Type != pemPublicKey {
		return errors.New("service-account key: public key is not a PEM \"PUBLIC KEY\" block")
	}
	pub, err := x509.ParsePKIXPublicKey(block.Bytes)
	if err != nil {
		return fmt.Errorf("service-account key: parse public key: %w", err)
	}
	eq, ok := pub.(interface{ Equal(crypto.PublicKey) bool })
	if !ok || !eq.Equal(signer.Public()) {
		return errors.New("service-account key: public key does not match private key")
	}
	return nil
}

// NewEncryptionKey returns 32 random bytes, base64-encoded (standard encoding), as the EncryptionConfiguration
// secretbox and aescbc providers expect. crypto/rand.Read never fails (Go ≥ 1.24), hence no error.
func NewEncryptionKey() string {
	b := make([]byte, EncryptionKeyBytes)
	_, _ = rand.Read(b) // documented to never return an error
	return base64.StdEncoding.EncodeToString(b)
}

// ValidateEncryptionKey checks that key is base64 of exactly 32 bytes.
func ValidateEncryptionKey(key string) error {
	b, err := base64.StdEncoding.DecodeString(key)
	if err != nil {
		return fmt.Errorf("encryption key: not base64: %w", err)
	}
	if len(b) != EncryptionKeyBytes {
		return fmt.Errorf("encryption key: %d bytes, want %d", len(b), EncryptionKeyBytes)
	}
	return nil
}

func encodePublicKey(pub crypto.PublicKey) ([]byte, error) {
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		return nil, fmt.Errorf("marshal public key: %w", err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: pemPublicKey, Bytes: der}), nil
}
