package pki

import (
	"errors"
	"fmt"
	"net/url"

	"sigs.k8s.io/yaml"
)

// DefaultKubeconfigCluster is the cluster entry name Kubeconfig uses.
const DefaultKubeconfigCluster = "kubernetes"

// KubeconfigSpec describes a single-cluster, single-user kubeconfig with embedded credentials.
type KubeconfigSpec struct {
	// Cluster names the cluster entry; the context is "<User>@<Cluster>".
	Cluster string
	// Server is the apiserver URL, e.g. https://172.30.0.250:6443.
	Server string
	// CAPEM is the cluster CA certificate that verifies the apiserver.
	CAPEM []byte
	// User names the user entry; by convention the certificate's CN.
	User string
	// Client is the client certificate and key. Exactly one of Client and Token is set.
	Client KeyPair
	// Token is a bearer token, e.g. a bootstrap token "abcdef.0123456789abcdef".
	Token string
}

// kubeconfig mirrors the parts of clientcmd's v1.Config that kubesmith writes.
type kubeconfig struct {
	APIVersion     string         `json:"apiVersion"`
	Kind           string         `json:"kind"`
	Clusters       []namedCluster `json:"clusters"`
	Contexts       []namedContext `json:"contexts"`
	CurrentContext string         `json:"current-context"`
	Users          []namedUser    `json:"users"`
}

type namedCluster struct {
	Name    string  `json:"name"`
	Cluster cluster `json:"cluster"`
}

type cluster struct {
	Server                   string `json:"server"`
	CertificateAuthorityData []byte `json:"certificate-authority-data"`
}

type namedContext struct {
	Name    string         `json:"name"`
	Context contextSection `json:"context"`
}

type contextSection struct {
	Cluster string `json:"cluster"`
	User    string `json:"user"`
}

type namedUser struct {
	Name string   `json:"name"`
	User authInfo `json:"user"`
}

type authInfo struct {
	ClientCertificateData []byte `json:"client-certificate-data,omitempty"`
	ClientKeyData         []byte `json:"client-key-data,omitempty"`
	Token                 string `json:"token,omitempty"`
}

// Kubeconfig renders a kubeconfig for user, authenticated by the client certificate, trusting caPEM, with the
// cluster entry named DefaultKubeconfigCluster.
func Kubeconfig(server string, caPEM []byte, user string, client KeyPair) ([]byte, error) {
	return KubeconfigSpec{Cluster: DefaultKubeconfigCluster, Server: server, CAPEM: caPEM, User: user, Client: client}.Marshal()
}

// TokenKubeconfig renders a kubeconfig that authenticates with a bearer token (kubelet's bootstrap kubeconfig).
func TokenKubeconfig(server string, caPEM []byte, user, token string) ([]byte, error) {
	return KubeconfigSpec{Cluster: DefaultKubeconfigCluster, Server: server, CAPEM: caPEM, User: user, Token: token}.Marshal()
}

// Validate checks the spec: an https server URL, a parseable CA, and exactly one of a matching client key pair
// or a token.
func (s KubeconfigSpec) Validate() error {
	var errs []error
	if s.Cluster == "" {
		errs = append(errs, errors.New("cluster name is empty"))
	}
	if s.User == "" {
		errs = append(errs, errors.New("user name is empty"))
	}
	u, err := url.Parse(s.Server)
	switch {
	case err != nil:
		errs = append(errs, fmt.Errorf("server URL: %w", err))
	case u.Scheme != "https" || u.Host == "":
		errs = append(errs, fmt.Errorf("server URL %q is not https://host[:port]", s.Server))
	}
	if _, err := ParseCertificate(s.CAPEM); err != nil {
		errs = append(errs, fmt.Errorf("CA: %w", err))
	}
	hasCert := len(s.Client.CertPEM) > 0 || len(s.Client.KeyPEM) > 0
	switch {
	case hasCert && s.Token != "":
		errs = append(errs, errors.New("both a client certificate and a token are set"))
	case hasCert:
		if _, _, err := ParseKeyPair(s.Client); err != nil {
			errs = append(errs, fmt.Errorf("client: %w", err))
		}
	case s.Token == "":
		errs = append(errs, errors.New("neither a client certificate nor a token is set"))
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("kubeconfig: %w", err)
	}
	return nil
}

// Marshal validates the spec and renders it as kubeconfig YAML.
func (s KubeconfigSpec) Marshal() ([]byte, error) {
	if err := s.Validate(); err != nil {
		return nil, err
	}
	ctx := s.User + "@" + s.Cluster
	cfg := kubeconfig{
		APIVersion:     "v1",
		Kind:           "Config",
		Clusters:       []namedCluster{{Name: s.Cluster, Cluster: cluster{Server: s.Server, CertificateAuthorityData: s.CAPEM}}},
		Contexts:       []namedContext{{Name: ctx, Context: contextSection{Cluster: s.Cluster, User: s.User}}},
		CurrentContext: ctx,
		Users: []namedUser{{Name: s.User, User: authInfo{
			ClientCertificateData: s.Client.CertPEM,
			ClientKeyData:         s.Client.KeyPEM,
			Token:                 s.Token,
		}}},
	}
	out, err := yaml.Marshal(cfg)
	if err != nil {
		return nil, fmt.Errorf("kubeconfig: marshal: %w", err)
	}
	return out, nil
}

// ParseKubeconfig reads back a kubeconfig written by Marshal (or any kubeconfig whose current context uses
// embedded data). It resolves the current context.
func ParseKubeconfig(data []byte) (KubeconfigSpec, error) {
	var cfg kubeconfig
	if err := yaml.Unmarshal(data, &cfg); err != nil {
		return KubeconfigSpec{}, fmt.Errorf("parse kubeconfig: %w", err)
	}
	if cfg.Kind != "Config" || cfg.APIVersion != "v1" {
		return KubeconfigSpec{}, fmt.Errorf("parse kubeconfig: kind %q apiVersion %q, want Config v1", cfg.Kind, cfg.APIVersion)
	}
	var c *contextSection
	for i := range cfg.Contexts {
		if cfg.Contexts[i].Name == cfg.CurrentContext {
			c = &cfg.Contexts[i].Context
		}
	}
	if c == nil {
		return KubeconfigSpec{}, fmt.Errorf("parse kubeconfig: current context %q not found", cfg.CurrentContext)
	}
	spec := KubeconfigSpec{Cluster: c.Cluster, User: c.User}
	found := 0
	for _, cl := range cfg.Clusters {
		if cl.Name == c.Cluster {
			spec.Server, spec.CAPEM = cl.Cluster.Server, cl.Cluster.CertificateAuthorityData
			found++
		}
	}
	for _, u := range cfg.Users {
		if u.Name == c.User {
			spec.Client = KeyPair{CertPEM: u.User.ClientCertificateData, KeyPEM: u.User.ClientKeyData}
			spec.Token = u.User.Token
			found++
		}
	}
	if found != 2 {
		return KubeconfigSpec{}, fmt.Errorf("parse kubeconfig: cluster %q or user %q of context %q not found", c.Cluster, c.User, cfg.CurrentContext)
	}
	return spec, nil
}
