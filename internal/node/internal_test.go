package node

import (
	"context"
	"errors"
	"os/exec"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

func TestQuote(t *testing.T) {
	for in, want := range map[string]string{
		"":                "''",
		"plain-word_1.2":  "plain-word_1.2",
		"/etc/app/conf.d": "/etc/app/conf.d",
		"a b":             "'a b'",
		"it's":            `'it'\''s'`,
		"$HOME":           "'$HOME'",
		"a\nb":            "'a\nb'",
	} {
		if got := Quote(in); got != want {
			t.Errorf("Quote(%q) = %s, want %s", in, got, want)
		}
	}
	// Whatever the input, the shell gets it back as one word.
	for _, in := range []string{"", "it's", `"'\$(x)` + "`y`", "a\nb\tc", "''''", "-n", "*", "~", "a;b|c&d", "é ü"} {
		out, err := exec.Command("/bin/sh", "-c", "printf '%s|' "+Quote(in)).Output()
		if err != nil {
			t.Fatal(err)
		}
		if string(out) != in+"|" {
			t.Errorf("sh saw %q for Quote(%q) = %s", out, in, Quote(in))
		}
	}
}

func TestAsRoot(t *testing.T) {
	if got, want := asRoot("root", "echo 'x'"), `/bin/sh -c 'echo '\''x'\'''`; got != want {
		t.Errorf("asRoot(root) = %s, want %s", got, want)
	}
	if got, want := asRoot("deploy", "id -u"), `sudo -n /bin/sh -c 'id -u'`; got != want {
		t.Errorf("asRoot(deploy) = %s, want %s", got, want)
	}
}

func TestRedact(t *testing.T) {
	got := Redact("token abc123 and abc and abc123456", []string{"abc", "", "abc123456", "abc123"})
	if want := "token [REDACTED] and [REDACTED] and [REDACTED]"; got != want {
		t.Errorf("Redact = %q, want %q", got, want)
	}
	r := newRedactor([]string{"pw"})
	long := strings.Repeat("line pw\n", 100)
	if tail := r.stderrTail(long); strings.Contains(tail, "pw") || strings.Count(tail, "\n") != 19 {
		t.Errorf("stderrTail = %q", tail)
	}
}

func TestHostMutex(t *testing.T) {
	var m HostMutex
	var inside, peak atomic.Int32
	var wg sync.WaitGroup
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			unlock := m.Lock("10.0.0.1:22")
			defer unlock()
			n := inside.Add(1)
			for p := peak.Load(); n > p && !peak.CompareAndSwap(p, n); p = peak.Load() {
			}
			time.Sleep(5 * time.Millisecond)
			inside.Add(-1)
		}()
	}
	wg.Wait()
	if peak.Load() != 1 {
		t.Errorf("%d holders at once", peak.Load())
	}

	unlockA := m.Lock("a")
	unlockB := m.Lock("b") // other hosts are independent
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	if _, err := m.LockContext(ctx, "a"); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("LockContext on a held host = %v", err)
	}
	unlockA()
	unlockA() // idempotent
	unlockB()
	again := m.Lock("a")
	again()
	m.mu.Lock()
	defer m.mu.Unlock()
	if len(m.hosts) != 0 {
		t.Errorf("HostMutex keeps %d idle entries", len(m.hosts))
	}
}

func TestValidateHostPublicKey(t *testing.T) {
	const good = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl host"
	if err := ValidateHostPublicKey(good); err != nil {
		t.Errorf("valid key: %v", err)
	}
	if err := ValidateHostPublicKey("  " + good + "\n"); err != nil {
		t.Errorf("valid key with spaces: %v", err)
	}
	for in, want := range map[string]string{
		"":                       "empty",
		"10.0.0.1 " + good:       "known_hosts line",
		good + "\n" + good:       "more than one line",
		"no-pty " + good:         "options",
		"ssh-ed25519 AAAAnotkey": "cannot be parsed",
		"-----BEGIN OPENSSH PRIVATE KEY-----\nabc\n-----END OPENSSH PRIVATE KEY-----": "private key",
	} {
		err := ValidateHostPublicKey(in)
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("ValidateHostPublicKey(%.30q) = %v, want an error about %q", in, err, want)
		}
	}
}

func TestConfigValidate(t *testing.T) {
	err := Config{Name: "m1"}.Validate()
	for _, want := range []string{"m1", "address is empty", "no host key", "no SSH authentication"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("Validate() = %v, want it to mention %q", err, want)
		}
	}
}
