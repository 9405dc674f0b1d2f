// Package pki generates kubesmith's certificate authorities, leaf certificates, service-account keys,
// encryption keys and kubeconfigs with crypto/x509 only.
//
// Key choices:
//   - CAs and leaf certificates use ECDSA P-256 keys and ECDSA-SHA256 signatures. Every Kubernetes component,
//     etcd, flannel and kubectl accept them, and they are small and fast to generate.
//   - The service-account signing key is RSA 2048 (RS256 tokens). RS256 is the one algorithm that every external
//     OIDC consumer of service-account tokens (cloud workload identity, Vault, ...) supports.
//   - Private keys are PEM "PRIVATE KEY" (PKCS #8) blocks; certificates are PEM "CERTIFICATE" blocks.
//
// Every function is a pure function of its inputs plus fresh randomness: there is no package state, and the
// current time is always passed in, so callers (and tests) control validity windows.
package pki

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net"
	"slices"
	"time"
)

const (
	// CAValidity is how long the cluster, etcd and front-proxy CAs are valid: 10 years.
	CAValidity = 10 * 365 * 24 * time.Hour
	// LeafValidity is how long leaf certificates are valid: 1 year.
	LeafValidity = 365 * 24 * time.Hour
	// Backdate is subtracted from "now" for every NotBefore, so that hosts whose clocks lag the machine running
	// kubesmith by a few minutes still accept fresh certificates.
	Backdate = 5 * time.Minute
)

// PEM block types used by this package.
const (
	pemCertificate = "CERTIFICATE"
	pemPrivateKey  = "PRIVATE KEY"
	pemPublicKey   = "PUBLIC KEY"
)

// KeyPair is a PEM certificate and its PEM private key.
type KeyPair struct {
	// CertPEM holds one "CERTIFICATE" block.
	CertPEM []byte
	// KeyPEM holds one private key block (kubesmith writes PKCS #8 "PRIVATE KEY").
	KeyPEM []byte
}

// Request describes a leaf certificate to issue.
type Request struct {
	// CommonName is the subject CN; Kubernetes takes it as the user name.
	CommonName string
	// Organization is the subject O list; Kubernetes takes it as the groups.
	Organization []string
	// DNSNames and IPs are the subject alternative names; a server certificate needs at least one.
	DNSNames []string
	IPs      []net.IP
	// Server adds the serverAuth extended key usage, Client adds clientAuth. At least one must be set.
	Server, Client bool
	// Validity is the lifetime from issuance. It is clipped to the CA's own expiry.
	Validity time.Duration
}

// Validate reports a request that cannot produce a usable certificate.
func (r Request) Validate() error {
	var errs []error
	if r.CommonName == "" {
		errs = append(errs, errors.New("common name is empty"))
	}
	if !r.Server && !r.Client {
		errs = append(errs, errors.New("neither server nor client usage requested"))
	}
	if r.Server && len(r.DNSNames) == 0 && len(r.IPs) == 0 {
		errs = append(errs, errors.New("server certificate without subject alternative names"))
	}
	if r.Validity <= 0 {
		errs = append(errs, fmt.Errorf("validity %s is not positive", r.Validity))
	}
	for _, ip := range r.IPs {
		if ip == nil || (ip.To4() == nil && ip.To16() == nil) {
			errs = append(errs, fmt.Errorf("invalid IP address %v", ip))
		}
	}
	for _, d := range r.DNSNames {
		if d == "" {
			errs = append(errs, errors.New("empty DNS name"))
		}
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("certificate request %q: %w", r.CommonName, err)
	}
	return nil
}

// NewCA creates a self-signed certificate authority with an ECDSA P-256 key.
func NewCA(commonName string, validity time.Duration, now time.Time) (KeyPair, error) {
	if commonName == "" {
		return KeyPair{}, errors.New("new CA: common name is empty")
	}
	if validity <= 0 {
		return KeyPair{}, fmt.Errorf("new CA %q: validity %s is not positive", commonName, validity)
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return KeyPair{}, fmt.Errorf("new CA %q: generate key: %w", commonName, err)
	}
	serial, err := newSerial()
	if err != nil {
		return KeyPair{}, fmt.Errorf("new CA %q: %w", commonName, err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{CommonName: commonName},
		NotBefore:             now.Add(-Backdate).UTC(),
		NotAfter:              now.Add(validity).UTC(),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign | x509.KeyUsageDigitalSignature,
		BasicConstraintsValid: true,
		IsCA:                  true,
		// Go fills SubjectKeyId for CAs from the public key.
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		return KeyPair{}, fmt.Errorf("new CA %q: sign: %w", commonName, err)
	}
	keyPEM, err := encodePrivateKey(key)
	if err != nil {
		return KeyPair{}, fmt.Errorf("new CA %q: %w", commonName, err)
	}
	return KeyPair{CertPEM: encodeCert(der), KeyPEM: keyPEM}, nil
}

// Issue signs a new leaf certificate for req with ca, using a fresh ECDSA P-256 key. NotAfter is
// now+req.Validity, or the CA's NotAfter if that comes first.
func Issue(ca KeyPair, req Request, now time.Time) (KeyPair, error) {
	if err := req.Validate(); err != nil {
		return KeyPair{}, fmt.Errorf("issue: %w", err)
	}
	caCert, caKey, err := ParseKeyPair(ca)
	if err != nil {
		return KeyPair{}, fmt.Errorf("issue %q: CA: %w", req.CommonName, err)
	}
	if !caCert.IsCA || caCert.KeyUsage&x509.KeyUsageCertSign == 0 {
		return KeyPair{}, fmt.Errorf("issue %q: %q is not a certificate authority", req.CommonName, caCert.Subject.CommonName)
	}
	if now.After(caCert.NotAfter) {
		return KeyPair{}, fmt.Errorf("issue %q: CA %q expired at %s", req.CommonName, caCert.Subject.CommonName,
			caCert.NotAfter.Format(time.RFC3339))
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return KeyPair{}, fmt.Errorf("issue %q: generate key: %w", req.CommonName, err)
	}
	serial, err := newSerial()
	if err != nil {
		return KeyPair{}, fmt.Errorf("issue %q: %w", req.CommonName, err)
	}
	notAfter := now.Add(req.Validity)
	if notAfter.After(caCert.NotAfter) {
		notAfter = caCert.NotAfter
	}
	var eku []x509.ExtKeyUsage
	if req.Server {
		eku = append(eku, x509.ExtKeyUsageServerAuth)
	}
	if req.Client {
		eku = append(eku, x509.ExtKeyUsageClientAuth)
	}
	tmpl := &x509.Certificate{
		SerialNumber: serial,
		Subject: pkix.Name{
			CommonName:   req.CommonName,
			Organization: slices.Clone(req.Organization),
		},
		DNSNames:              dedupe(req.DNSNames),
		IPAddresses:           dedupeIPs(req.IPs),
		NotBefore:             now.Add(-Backdate).UTC(),
		NotAfter:              notAfter.UTC(),
		KeyUsage:              x509.KeyUsageDigitalSignature,
		ExtKeyUsage:           eku,
		BasicConstraintsValid: true,
		IsCA:                  false,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, caCert, key.Public(), caKey)
	if err != nil {
		return KeyPair{}, fmt.Errorf("issue %q: sign: %w", req.CommonName, err)
	}
	keyPEM, err := encodePrivateKey(key)
	if err != nil {
		return KeyPair{}, fmt.Errorf("issue %q: %w", req.CommonName, err)
	}
	return KeyPair{CertPEM: encodeCert(der), KeyPEM: keyPEM}, nil
}

// ParseKeyPair decodes a key pair and checks that the private key belongs to the certificate.
func ParseKeyPair(kp KeyPair) (*x509.Certificate, crypto.Signer, error) {
	cert, err := ParseCertificate(kp.CertPEM)
	if err != nil {
		return nil, nil, err
	}
	signer, err := ParsePrivateKey(kp.KeyPEM)
	if err != nil {
		return nil, nil, err
	}
	pub, ok := cert.PublicKey.(interface{ Equal(crypto.PublicKey) bool })
	if !ok || !pub.Equal(signer.Public()) {
		return nil, nil, fmt.Errorf("private key does not match certificate %q", cert.Subject.CommonName)
	}
	return cert, signer, nil
}

// ParseCertificate decodes the first PEM "CERTIFICATE" block.
func ParseCertificate(certPEM []byte) (*x509.Certificate, error) {
	block, _ := pem.Decode(certPEM)
	if block == nil {
		return nil, errors.New("no PEM block in certificate data")
	}
	if block.Type != pemCertificate {
		return nil, fmt.Errorf("PEM block is %q, want %q", block.Type, pemCertificate)
	}
	cert, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		return nil, fmt.Errorf("parse certificate: %w", err)
	}
	return cert, nil
}

// ParsePrivateKey decodes a PEM private key: PKCS #8 "PRIVATE KEY", SEC 1 "EC PRIVATE KEY" or PKCS #1
// "RSA PRIVATE KEY", so that a user-supplied CA from kubeadm or openssl also works.
func ParsePrivateKey(keyPEM []byte) (crypto.Signer, error) {
	block, _ := pem.Decode(keyPEM)
	if block == nil {
		return nil, errors.New("no PEM block in private key data")
	}
	var (
		key any
		err error
	)
	switch block.Type {
	case pemPrivateKey:
		key, err = x509.ParsePKCS8PrivateKey(block.Bytes)
	case "EC PRIVATE KEY":
		key, err = x509.ParseECPrivateKey(block.Bytes)
	case "RSA PRIVATE KEY":
		key, err = x509.ParsePKCS1PrivateKey(block.Bytes)
	default:
		return nil, fmt.Errorf("unsupported private key PEM block %q", block.Type)
	}
	if err != nil {
		return nil, fmt.Errorf("parse %s: %w", block.Type, err)
	}
	signer, ok := key.(crypto.Signer)
	if !ok {
		return nil, fmt.Errorf("private key of type %T cannot sign", key)
	}
	return signer, nil
}

// Fingerprint is the lowercase hex SHA-256 of the certificate's DER encoding, as `openssl x509 -fingerprint
// -sha256` prints it without colons. It is how kubesmith recognises a CA it created (adoption).
func Fingerprint(certPEM []byte) (string, error) {
	cert, err := ParseCertificate(certPEM)
	if err != nil {
		return "", fmt.Errorf("fingerprint: %w", err)
	}
	sum := sha256.Sum256(cert.Raw)
	return hex.EncodeToString(sum[:]), nil
}

// Expiry is the certificate's NotAfter.
func Expiry(certPEM []byte) (time.Time, error) {
	cert, err := ParseCertificate(certPEM)
	if err != nil {
		return time.Time{}, fmt.Errorf("expiry: %w", err)
	}
	return cert.NotAfter, nil
}

// Verify checks that leaf chains to ca for the given extended key usage at time now.
func Verify(ca KeyPair, leafPEM []byte, usage x509.ExtKeyUsage, now time.Time) error {
	caCert, err := ParseCertificate(ca.CertPEM)
	if err != nil {
		return fmt.Errorf("verify: CA: %w", err)
	}
	leaf, err := ParseCertificate(leafPEM)
	if err != nil {
		return fmt.Errorf("verify: leaf: %w", err)
	}
	roots := x509.NewCertPool()
	roots.AddCert(caCert)
	if _, err := leaf.Verify(x509.VerifyOptions{Roots: roots, CurrentTime: now, KeyUsages: []x509.ExtKeyUsage{usage}}); err != nil {
		return fmt.Errorf("verify %q against %q: %w", leaf.Subject.CommonName, caCert.Subject.CommonName, err)
	}
	return nil
}

// Covers reports why the existing certificate does not satisfy req, or nil if it does: same subject, at least
// the requested SANs and usages, and signed by ca. Validity is not compared; use Expiry for renewal decisions.
// The engine uses it to decide whether a certificate found on a host can be kept.
func Covers(ca KeyPair, certPEM []byte, req Request, now time.Time) error {
	cert, err := ParseCertificate(certPEM)
	if err != nil {
		return fmt.Errorf("covers: %w", err)
	}
	var problems []error
	if cert.Subject.CommonName != req.CommonName {
		problems = append(problems, fmt.Errorf("common name %q, want %q", cert.Subject.CommonName, req.CommonName))
	}
	if !slices.Equal(sortedCopy(cert.Subject.Organization), sortedCopy(req.Organization)) {
		problems = append(problems, fmt.Errorf("organization %q, want %q", cert.Subject.Organization, req.Organization))
	}
	for _, d := range req.DNSNames {
		if !slices.Contains(cert.DNSNames, d) {
			problems = append(problems, fmt.Errorf("missing DNS name %q", d))
		}
	}
	for _, ip := range req.IPs {
		if !slices.ContainsFunc(cert.IPAddresses, ip.Equal) {
			problems = append(problems, fmt.Errorf("missing IP address %s", ip))
		}
	}
	if req.Server && !slices.Contains(cert.ExtKeyUsage, x509.ExtKeyUsageServerAuth) {
		problems = append(problems, errors.New("missing serverAuth usage"))
	}
	if req.Client && !slices.Contains(cert.ExtKeyUsage, x509.ExtKeyUsageClientAuth) {
		problems = append(problems, errors.New("missing clientAuth usage"))
	}
	usage := x509.ExtKeyUsageClientAuth
	if req.Server {
		usage = x509.ExtKeyUsageServerAuth
	}
	if err := Verify(ca, certPEM, usage, now); err != nil {
		problems = append(problems, err)
	}
	if err := errors.Join(problems...); err != nil {
		return fmt.Errorf("certificate %q does not match the request: %w", req.CommonName, err)
	}
	return nil
}

func newSerial() (*big.Int, error) {
	// 128 random bits, as RFC 5280 allows up to 20 octets and CAB forum asks for at least 64 bits of entropy.
	limit := new(big.Int).Lsh(big.NewInt(1), 128)
	n, err := rand.Int(rand.Reader, limit)
	if err != nil {
		return nil, fmt.Errorf("serial number: %w", err)
	}
	// A zero serial is not allowed; add one.
	return n.Add(n, big.NewInt(1)), nil
}

func encodeCert(der []byte) []byte {
	return pem.EncodeToMemory(&pem.Block{Type: pemCertificate, Bytes: der})
}

func encodePrivateKey(key crypto.PrivateKey) ([]byte, error) {
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, fmt.Errorf("marshal private key: %w", err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: pemPrivateKey, Bytes: der}), nil
}

func dedupe(in []string) []string {
	var out []string
	for _, s := range in {
		if !slices.Contains(out, s) {
			out = append(out, s)
		}
	}
	return out
}

func dedupeIPs(in []net.IP) []net.IP {
	var out []net.IP
	for _, ip := range in {
		if v4 := ip.To4(); v4 != nil {
			ip = v4
		}
		if !slices.ContainsFunc(out, ip.Equal) {
			out = append(out, ip)
		}
	}
	return out
}

func sortedCopy(in []string) []string {
	out := slices.Clone(in)
	slices.Sort(out)
	return out
}

// certsEqual reports whether two PEM certificates hold the same DER bytes.
func certsEqual(a, b []byte) bool {
	ca, errA := ParseCertificate(a)
	cb, errB := ParseCertificate(b)
	return errA == nil && errB == nil && bytes.Equal(ca.Raw, cb.Raw)
}
