package machine

import (
	"bytes"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"net"
	"net/netip"
	"strings"

	"github.com/kdomanski/iso9660"
	"golang.org/x/crypto/ssh"
)

// SeedLabel is the ISO9660 volume label of the seed: the NoCloud convention, which the image's
// kubesmith-seed.service looks for too.
const SeedLabel = "cidata"

// HostKey is an SSH host key generated for a VM.
type HostKey struct {
	// PrivatePEM is the OpenSSH private key.
	PrivatePEM []byte
	// Public is the public key in authorized_keys form ("ssh-ed25519 AAAA...").
	Public string
}

// NewHostKey generates an ed25519 host key.
func NewHostKey() (HostKey, error) {
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return HostKey{}, fmt.Errorf("generating a host key: %w", err)
	}
	block, err := ssh.MarshalPrivateKey(priv, "")
	if err != nil {
		return HostKey{}, fmt.Errorf("encoding the host key: %w", err)
	}
	pub, err := ssh.NewPublicKey(priv.Public())
	if err != nil {
		return HostKey{}, fmt.Errorf("encoding the host public key: %w", err)
	}
	return HostKey{PrivatePEM: pem.EncodeToMemory(block), Public: authorizedKey(pub)}, nil
}

func authorizedKey(k ssh.PublicKey) string {
	return strings.TrimSpace(string(ssh.MarshalAuthorizedKey(k)))
}

// Seed is what a VM learns at first boot.
type Seed struct {
	Hostname string
	MAC      net.HardwareAddr
	// Address is the VM's static address with the network's prefix length, e.g. 192.168.150.11/24.
	Address netip.Prefix
	// Gateway is the libvirt network's host address.
	Gateway        netip.Addr
	AuthorizedKeys []string
	HostKey        HostKey
}

// SeedFile is one file of the seed ISO.
type SeedFile struct {
	Path string
	Data []byte
}

// InstanceID changes whenever anything else in the seed changes.
func (s Seed) InstanceID() string {
	h := sha256.New()
	for _, f := range s.files() {
		_, _ = fmt.Fprintf(h, "%s\x00%d\x00", f.Path, len(f.Data))
		h.Write(f.Data)
	}
	return "ks-" + hex.EncodeToString(h.Sum(nil)[:8])
}

// Files are the seed's files in a stable order: the NoCloud files (meta-data, user-data, network-config) and
// the plain-text kubesmith/ files that the image's kubesmith-seed.service reads.
func (s Seed) Files() []SeedFile {
	id := s.InstanceID()
	out := []SeedFile{{"meta-data", []byte(fmt.Sprintf("instance-id: %s\nlocal-hostname: %s\n", id, s.Hostname))}}
	out = append(out, s.files()...)
	return append(out, SeedFile{"kubesmith/instance-id", []byte(id + "\n")})
}

// files are the seed files except those that carry the instance ID.
func (s Seed) files() []SeedFile {
	keys := make([]string, 0, len(s.AuthorizedKeys))
	for _, k := range s.AuthorizedKeys {
		if k = strings.TrimSpace(k); k != "" {
			keys = append(keys, k)
		}
	}
	q := func(v string) string {
		b, _ := json.Marshal(v) // a JSON string is a valid YAML double-quoted scalar
		return string(b)
	}
	var ud strings.Builder
	ud.WriteString("#cloud-config\n")
	fmt.Fprintf(&ud, "hostname: %s\n", q(s.Hostname))
	ud.WriteString("disable_root: false\nssh_pwauth: false\nssh_deletekeys: false\nssh_genkeytypes: []\n")
	ud.WriteString("ssh_authorized_keys:\n")
	for _, k := range keys {
		fmt.Fprintf(&ud, "  - %s\n", q(k))
	}
	ud.WriteString("ssh_keys:\n")
	fmt.Fprintf(&ud, "  ed25519_private: %s\n", q(string(s.HostKey.PrivatePEM)))
	fmt.Fprintf(&ud, "  ed25519_public: %s\n", q(s.HostKey.Public))

	mac := s.MAC.String()
	nc := fmt.Sprintf(`version: 2
ethernets:
  eth0:
    match:
      macaddress: %s
    set-name: eth0
    addresses:
      - %s
    gateway4: %s
    nameservers:
      addresses: []
`, q(mac), q(s.Address.String()), q(s.Gateway.String()))

	network := fmt.Sprintf(`# Written by kubesmith from the seed ISO.
[Match]
MACAddress=%s

[Link]
RequiredForOnline=yes

[Network]
Address=%s
Gateway=%s
LinkLocalAddressing=no
IPv6AcceptRA=no
`, mac, s.Address, s.Gateway)

	var ak bytes.Buffer
	for _, k := range keys {
		ak.WriteString(k + "\n")
	}
	return []SeedFile{
		{"user-data", []byte(ud.String())},
		{"network-config", []byte(nc)},
		{"kubesmith/hostname", []byte(s.Hostname + "\n")},
		{"kubesmith/authorized_keys", ak.Bytes()},
		{"kubesmith/ssh_host_ed25519_key", s.HostKey.PrivatePEM},
		{"kubesmith/ssh_host_ed25519_key.pub", []byte(s.HostKey.Public + "\n")},
		{"kubesmith/10-kubesmith.network", []byte(network)},
	}
}

// ISO builds the seed as an ISO9660 image labelled cidata.
func (s Seed) ISO() ([]byte, error) {
	w, err := iso9660.NewWriter()
	if err != nil {
		return nil, fmt.Errorf("seed ISO: %w", err)
	}
	defer func() { _ = w.Cleanup() }()
	for _, f := range s.Files() {
		if err := w.AddFile(bytes.NewReader(f.Data), f.Path); err != nil {
			return nil, fmt.Errorf("seed ISO: adding %s: %w", f.Path, err)
		}
	}
	var buf bytes.Buffer
	if err := w.WriteTo(&buf, SeedLabel); err != nil {
		return nil, fmt.Errorf("seed ISO: %w", err)
	}
	return buf.Bytes(), nil
}
