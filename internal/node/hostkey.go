package node

import (
	"bytes"
	"crypto/ed25519"
	"errors"
	"fmt"
	"net"
	"slices"
	"strings"

	"golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/knownhosts"
)

// HostKeyMismatchError means the host presented a key other than the pinned one. It is never retried: either
// the host was reinstalled (then update the pin) or the connection is being intercepted.
type HostKeyMismatchError struct {
	// Host is the node name and Address the address that was dialled.
	Host    string
	Address string
	// Got is the SHA256 fingerprint of the key the host presented, GotType its type.
	Got     string
	GotType string
	// Want holds the SHA256 fingerprints of the pinned keys.
	Want []string
	// Source says where the pin came from: "host public key" or a known_hosts file.
	Source string
}

// Error names the host and both fingerprints.
func (e *HostKeyMismatchError) Error() string {
	return fmt.Sprintf("SSH host key mismatch for %s (%s): the host presented %s key %s, but %s pins %s; "+
		"refusing to connect (if the host was reinstalled, update the pinned key; otherwise the connection may be intercepted)",
		e.Host, e.Address, e.GotType, e.Got, e.Source, strings.Join(e.Want, ", "))
}

// HostKeyUnknownError means a known_hosts file has no key for the host.
type HostKeyUnknownError struct {
	Host, Address, Got, GotType, KnownHostsPath string
}

// Error names the host, the presented fingerprint and the file.
func (e *HostKeyUnknownError) Error() string {
	return fmt.Sprintf("SSH host key for %s (%s) is not in %s: the host presented %s key %s; "+
		"add it to the known_hosts file or pin it as the host public key", e.Host, e.Address, e.KnownHostsPath, e.GotType, e.Got)
}

// ValidateHostPublicKey checks that s is one public key in authorized_keys format ("ssh-ed25519 AAAA...
// [comment]"), the form in which Config.HostPublicKey pins a host key.
func ValidateHostPublicKey(s string) error {
	_, err := parseHostPublicKey(s)
	return err
}

func parseHostPublicKey(s string) (ssh.PublicKey, error) {
	t := strings.TrimSpace(s)
	const format = `expected one line "TYPE BASE64 [COMMENT]" such as the content of /etc/ssh/ssh_host_ed25519_key.pub`
	if t == "" {
		return nil, errors.New("host public key is empty; " + format)
	}
	if strings.Contains(t, "PRIVATE KEY") {
		return nil, errors.New("host public key holds a private key; " + format)
	}
	if strings.Contains(t, "\n") {
		return nil, errors.New("host public key has more than one line; pin exactly one key, " + format)
	}
	key, _, options, _, err := ssh.ParseAuthorizedKey([]byte(t))
	if err != nil {
		if f := strings.Fields(t); len(f) >= 3 && !strings.HasPrefix(f[0], "ssh-") && !strings.HasPrefix(f[0], "ecdsa-") &&
			!strings.HasPrefix(f[0], "sk-") {
			return nil, fmt.Errorf("host public key %q looks like a known_hosts line (it starts with %q); drop the host name: %s",
				shorten(t), f[0], format)
		}
		return nil, fmt.Errorf("host public key %q cannot be parsed (%w); %s", shorten(t), err, format)
	}
	if len(options) > 0 && looksLikeKnownHostsLine(options[0]) {
		return nil, fmt.Errorf("host public key %q looks like a known_hosts line (it starts with %q); drop the host name: %s",
			shorten(t), strings.Fields(t)[0], format)
	}
	if len(options) > 0 {
		return nil, fmt.Errorf("host public key %q has authorized_keys options (%s); %s", shorten(t), strings.Join(options, ","), format)
	}
	if _, ok := key.(*ssh.Certificate); ok {
		return nil, errors.New("host public key is a certificate; pin the host's plain public key instead")
	}
	return key, nil
}

// looksLikeKnownHostsLine tells a known_hosts host field (or @marker) from an authorized_keys option, which is
// either name=value or one of a few bare words.
func looksLikeKnownHostsLine(firstOption string) bool {
	if strings.HasPrefix(firstOption, "@") {
		return true
	}
	if strings.Contains(firstOption, "=") {
		return false
	}
	switch strings.ToLower(firstOption) {
	case "agent-forwarding", "cert-authority", "no-agent-forwarding", "no-port-forwarding", "no-pty", "no-user-rc",
		"no-x11-forwarding", "no-touch-required", "port-forwarding", "pty", "restrict", "user-rc", "verify-required",
		"x11-forwarding":
		return false
	}
	return true
}

// ValidatePrivateKey checks that pem is an unencrypted private key that SSH can use.
func ValidatePrivateKey(pem []byte) error {
	_, err := parsePrivateKey(pem, "private key")
	return err
}

func parsePrivateKey(pem []byte, what string) (ssh.Signer, error) {
	t := bytes.TrimSpace(pem)
	if len(t) == 0 {
		return nil, fmt.Errorf("%s is empty", what)
	}
	signer, err := ssh.ParsePrivateKey(t)
	if err == nil {
		return signer, nil
	}
	var missing *ssh.PassphraseMissingError
	switch {
	case errors.As(err, &missing):
		return nil, fmt.Errorf("%s is encrypted with a passphrase, which kubesmith cannot prompt for: load it into an ssh-agent and use the agent instead", what)
	case bytes.HasPrefix(t, []byte("ssh-")) || bytes.HasPrefix(t, []byte("ecdsa-")):
		return nil, fmt.Errorf("%s is a public key; the private key is needed (the file without .pub)", what)
	case !bytes.HasPrefix(t, []byte("-----BEGIN ")):
		return nil, fmt.Errorf("%s is not in PEM or OpenSSH format (it should start with \"-----BEGIN\"): %w", what, err)
	default:
		return nil, fmt.Errorf("%s cannot be parsed: %w", what, err)
	}
}

func shorten(s string) string {
	if len(s) > 60 {
		return s[:57] + "..."
	}
	return s
}

// hostKeyCheck is the host key callback for one connection, plus the host key algorithms to ask for, so that a
// host with several keys presents the pinned one.
type hostKeyCheck struct {
	callback   ssh.HostKeyCallback
	algorithms []string
}

// newHostKeyCheck builds the pinning callback from cfg. name and addr appear in errors.
func newHostKeyCheck(cfg Config, addr string) (hostKeyCheck, error) {
	if cfg.HostPublicKey != "" {
		want, err := parseHostPublicKey(cfg.HostPublicKey)
		if err != nil {
			return hostKeyCheck{}, err
		}
		return hostKeyCheck{
			callback: func(_ string, _ net.Addr, got ssh.PublicKey) error {
				if bytes.Equal(got.Marshal(), want.Marshal()) {
					return nil
				}
				return &HostKeyMismatchError{
					Host: cfg.Name, Address: addr, Got: ssh.FingerprintSHA256(got), GotType: got.Type(),
					Want: []string{ssh.FingerprintSHA256(want)}, Source: "the host public key",
				}
			},
			algorithms: algorithmsFor([]ssh.PublicKey{want}),
		}, nil
	}
	if cfg.KnownHostsPath == "" {
		return hostKeyCheck{}, errors.New("no host public key and no known_hosts file: refusing to connect without host key verification")
	}
	path, err := expandHome(cfg.KnownHostsPath)
	if err != nil {
		return hostKeyCheck{}, err
	}
	db, err := knownhosts.New(path)
	if err != nil {
		return hostKeyCheck{}, fmt.Errorf("read known_hosts file: %w", err)
	}
	// Ask the database which keys it knows for addr, by checking a throwaway key.
	var known []ssh.PublicKey
	probe, _, _ := ed25519.GenerateKey(nil)
	if probeKey, err := ssh.NewPublicKey(probe); err == nil {
		var keyErr *knownhosts.KeyError
		if errors.As(db(addr, &net.TCPAddr{IP: net.IPv4zero}, probeKey), &keyErr) {
			for _, k := range keyErr.Want {
				known = append(known, k.Key)
			}
		}
	}
	return hostKeyCheck{
		callback: func(hostname string, remote net.Addr, got ssh.PublicKey) error {
			err := db(hostname, remote, got)
			var keyErr *knownhosts.KeyError
			var revoked *knownhosts.RevokedError
			switch {
			case err == nil:
				return nil
			case errors.As(err, &keyErr) && len(keyErr.Want) > 0:
				want := make([]string, 0, len(keyErr.Want))
				for _, k := range keyErr.Want {
					want = append(want, fmt.Sprintf("%s (%s:%d)", ssh.FingerprintSHA256(k.Key), k.Filename, k.Line))
				}
				return &HostKeyMismatchError{
					Host: cfg.Name, Address: addr, Got: ssh.FingerprintSHA256(got), GotType: got.Type(),
					Want: want, Source: "known_hosts file " + path,
				}
			case errors.As(err, &keyErr):
				return &HostKeyUnknownError{
					Host: cfg.Name, Address: addr, Got: ssh.FingerprintSHA256(got), GotType: got.Type(),
					KnownHostsPath: path,
				}
			case errors.As(err, &revoked):
				return fmt.Errorf("SSH host key %s of %s (%s) is revoked in %s", ssh.FingerprintSHA256(got), cfg.Name, addr, path)
			default:
				return fmt.Errorf("check host key of %s (%s) against %s: %w", cfg.Name, addr, path, err)
			}
		},
		algorithms: algorithmsFor(known),
	}, nil
}

// algorithmsFor lists the host key algorithms that let a server present one of keys. Nil (no restriction) if
// keys is empty.
func algorithmsFor(keys []ssh.PublicKey) []string {
	var algos []string
	add := func(a ...string) {
		for _, x := range a {
			if !slices.Contains(algos, x) {
				algos = append(algos, x)
			}
		}
	}
	for _, k := range keys {
		if k.Type() == ssh.KeyAlgoRSA {
			add(ssh.KeyAlgoRSASHA512, ssh.KeyAlgoRSASHA256, ssh.KeyAlgoRSA)
		} else {
			add(k.Type())
		}
	}
	return algos
}
