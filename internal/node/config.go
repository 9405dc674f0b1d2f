package node

import (
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// Defaults applied by Dial to a zero field of Config.
const (
	DefaultPort              = 22
	DefaultUser              = "root"
	DefaultConnectTimeout    = 15 * time.Second
	DefaultKeepAliveInterval = 15 * time.Second
)

// Config says how to reach one host over SSH.
type Config struct {
	// Name is the node name used in messages; it defaults to Address.
	Name string
	// Address is the host name or IP address that SSH connects to.
	Address string
	// Port is the SSH port, 22 when zero.
	Port int
	// User is the login user, root when empty. A non-root user needs passwordless sudo (sudo -n).
	User string

	// HostPublicKey pins the host key: one line in authorized_keys format, e.g. "ssh-ed25519 AAAA... comment".
	// Either it or KnownHostsPath is required; there is no way to skip host key checking.
	HostPublicKey string
	// KnownHostsPath is an OpenSSH known_hosts file used when HostPublicKey is empty.
	KnownHostsPath string

	// PrivateKeyPEM is a private key in PEM or OpenSSH format. It is secret.
	PrivateKeyPEM []byte
	// PrivateKeyPath is a file holding a private key; a leading ~/ means the home directory.
	PrivateKeyPath string
	// UseAgent adds the keys of the ssh-agent at AgentSocket.
	UseAgent bool
	// AgentSocket is the agent's unix socket; empty means $SSH_AUTH_SOCK.
	AgentSocket string

	// Bastion, if set, is the jump host through which this host is reached.
	Bastion *Config

	// ConnectTimeout bounds one connection attempt (TCP connect plus SSH handshake); 15s when zero.
	ConnectTimeout time.Duration
	// RetryFor is how long Dial keeps retrying while the host is not up yet (refused, timed out, unreachable, or
	// the connection dropped during the handshake). Zero means until ctx is done; negative means one attempt.
	RetryFor time.Duration
	// KeepAliveInterval is how often the connection is probed; when a probe stays unanswered for three
	// intervals the connection is closed, so commands on a dead host fail instead of hanging. 15s when zero,
	// negative disables it.
	KeepAliveInterval time.Duration

	// Redact lists secrets that are replaced by "[REDACTED]" in errors and logs.
	Redact []string
	// CompressUploads makes Upload gzip the file (once, cached in CacheDir) and decompress it on the host.
	CompressUploads bool
	// CacheDir holds the compressed copies of uploaded files; empty means
	// ${XDG_CACHE_HOME:-$HOME/.cache}/kubesmith/upload-gz. If it cannot be used, files are compressed on the fly.
	CacheDir string

	// Logger receives debug records of commands and connection attempts, redacted. Nil discards them.
	Logger *slog.Logger
}

// withDefaults returns cfg with every zero field that has a default filled in.
func (cfg Config) withDefaults() Config {
	if cfg.Port == 0 {
		cfg.Port = DefaultPort
	}
	if cfg.User == "" {
		cfg.User = DefaultUser
	}
	if cfg.Name == "" {
		cfg.Name = cfg.Address
	}
	if cfg.ConnectTimeout <= 0 {
		cfg.ConnectTimeout = DefaultConnectTimeout
	}
	if cfg.KeepAliveInterval == 0 {
		cfg.KeepAliveInterval = DefaultKeepAliveInterval
	}
	if cfg.AgentSocket == "" && cfg.UseAgent {
		cfg.AgentSocket = os.Getenv("SSH_AUTH_SOCK")
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	return cfg
}

// Validate checks cfg (after defaults) without contacting the host: an address, a valid host key pin and at
// least one usable authentication method, recursively for the bastion.
func (cfg Config) Validate() error {
	return cfg.withDefaults().validate()
}

func (cfg Config) validate() error {
	var errs []error
	if cfg.Address == "" {
		errs = append(errs, errors.New("address is empty"))
	}
	if cfg.Port < 1 || cfg.Port > 65535 {
		errs = append(errs, fmt.Errorf("port %d is out of range 1-65535", cfg.Port))
	}
	switch {
	case cfg.HostPublicKey != "":
		if err := ValidateHostPublicKey(cfg.HostPublicKey); err != nil {
			errs = append(errs, err)
		}
	case cfg.KnownHostsPath != "":
	default:
		errs = append(errs, errors.New("no host key to verify the host against: set the host public key "+
			"(\"ssh-ed25519 AAAA...\", e.g. from /etc/ssh/ssh_host_ed25519_key.pub on the host) or a known_hosts file"))
	}
	if len(cfg.PrivateKeyPEM) == 0 && cfg.PrivateKeyPath == "" && !cfg.UseAgent {
		errs = append(errs, errors.New("no SSH authentication configured: set a private key, a private key path, or use the ssh-agent"))
	}
	if len(cfg.PrivateKeyPEM) > 0 {
		if err := ValidatePrivateKey(cfg.PrivateKeyPEM); err != nil {
			errs = append(errs, err)
		}
	}
	if cfg.UseAgent && cfg.AgentSocket == "" {
		errs = append(errs, errors.New("the ssh-agent is to be used but SSH_AUTH_SOCK is not set"))
	}
	if cfg.Bastion != nil {
		if err := cfg.Bastion.Validate(); err != nil {
			errs = append(errs, fmt.Errorf("bastion: %w", err))
		}
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("ssh config for %s: %w", cfg.Name, err)
	}
	return nil
}

// expandHome replaces a leading ~/ with the user's home directory.
func expandHome(p string) (string, error) {
	if p != "~" && !strings.HasPrefix(p, "~/") {
		return p, nil
	}
	home, err := os.UserHomeDir()
	if err != nil {
		return "", fmt.Errorf("expand %s: %w", p, err)
	}
	return filepath.Join(home, strings.TrimPrefix(p, "~")), nil
}
