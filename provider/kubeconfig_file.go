package provider

import (
	"fmt"
	"os"
	"path/filepath"
)

// writeKubeconfigFile writes data to path (~ expanded) with mode 0600, atomically: readers see either the old
// file or the new one, never a partial write, and the secret is never world-readable, not even briefly.
func writeKubeconfigFile(path string, data []byte) error {
	p, err := expandHome(path, osEnv{})
	if err != nil {
		return err
	}
	dir := filepath.Dir(p)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("create directory for kubeconfig: %w", err)
	}
	tmp, err := os.CreateTemp(dir, ".kubeconfig-*")
	if err != nil {
		return fmt.Errorf("create kubeconfig: %w", err)
	}
	defer func() { _ = os.Remove(tmp.Name()) }() // no-op after a successful rename
	if err := tmp.Chmod(0o600); err != nil {
		_ = tmp.Close() // the write already failed; that error is reported
		return fmt.Errorf("restrict kubeconfig permissions: %w", err)
	}
	if _, err := tmp.Write(data); err != nil {
		_ = tmp.Close() // the write already failed; that error is reported
		return fmt.Errorf("write kubeconfig: %w", err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("write kubeconfig: %w", err)
	}
	if err := os.Rename(tmp.Name(), p); err != nil {
		return fmt.Errorf("install kubeconfig at %s: %w", p, err)
	}
	return nil
}
