package pki

import (
	"crypto/x509"
	"errors"
	"fmt"
	"time"
)

// Common names of the three cluster CAs (the same as kubeadm's, so tooling recognises them).
const (
	ClusterCAName    = "kubernetes"
	EtcdCAName       = "etcd-ca"
	FrontProxyCAName = "front-proxy-ca"
)

// ClusterCAs is the root key material of one cluster. It lives in Terraform state (sensitive) and is never
// regenerated for an existing cluster.
type ClusterCAs struct {
	// Cluster signs every Kubernetes certificate: apiserver, kubelets, clients, and (through
	// kube-controller-manager) approved CSRs.
	Cluster KeyPair
	// Etcd signs etcd server, peer and client certificates. Only etcd trusts it.
	Etcd KeyPair
	// FrontProxy signs the apiserver's aggregation-layer client certificate.
	FrontProxy KeyPair
	// ServiceAccount signs service-account tokens.
	ServiceAccount SAKey
}

// NewClusterCAs generates the three CAs (CAValidity each) and the service-account key.
func NewClusterCAs(now time.Time) (ClusterCAs, error) {
	var (
		cas ClusterCAs
		err error
	)
	if cas.Cluster, err = NewCA(ClusterCAName, CAValidity, now); err != nil {
		return ClusterCAs{}, fmt.Errorf("cluster CAs: %w", err)
	}
	if cas.Etcd, err = NewCA(EtcdCAName, CAValidity, now); err != nil {
		return ClusterCAs{}, fmt.Errorf("cluster CAs: %w", err)
	}
	if cas.FrontProxy, err = NewCA(FrontProxyCAName, CAValidity, now); err != nil {
		return ClusterCAs{}, fmt.Errorf("cluster CAs: %w", err)
	}
	if cas.ServiceAccount, err = NewServiceAccountKey(); err != nil {
		return ClusterCAs{}, fmt.Errorf("cluster CAs: %w", err)
	}
	return cas, nil
}

// Validate checks that every CA parses, is a CA, has a matching key and is valid at now, that the three CAs are
// distinct, and that the service-account key is consistent. Use it on CAs read back from state or supplied by
// the user.
func (c ClusterCAs) Validate(now time.Time) error {
	var errs []error
	named := []struct {
		name string
		kp   KeyPair
	}{{"cluster", c.Cluster}, {"etcd", c.Etcd}, {"front-proxy", c.FrontProxy}}
	for _, n := range named {
		cert, _, err := ParseKeyPair(n.kp)
		if err != nil {
			errs = append(errs, fmt.Errorf("%s CA: %w", n.name, err))
			continue
		}
		if !cert.IsCA || cert.KeyUsage&x509.KeyUsageCertSign == 0 {
			errs = append(errs, fmt.Errorf("%s CA: %q is not a certificate authority", n.name, cert.Subject.CommonName))
		}
		if now.Before(cert.NotBefore) || now.After(cert.NotAfter) {
			errs = append(errs, fmt.Errorf("%s CA: not valid at %s (valid %s to %s)", n.name, now.Format(time.RFC3339),
				cert.NotBefore.Format(time.RFC3339), cert.NotAfter.Format(time.RFC3339)))
		}
	}
	for i := range named {
		for j := i + 1; j < len(named); j++ {
			if certsEqual(named[i].kp.CertPEM, named[j].kp.CertPEM) {
				errs = append(errs, fmt.Errorf("%s and %s CA are the same certificate", named[i].name, named[j].name))
			}
		}
	}
	if err := c.ServiceAccount.Validate(); err != nil {
		errs = append(errs, err)
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("cluster CAs: %w", err)
	}
	return nil
}
