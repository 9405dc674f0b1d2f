//go:build e2e

package e2e

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/kubesmith/terraform-provider-kubesmith/internal/artifacts"
	"github.com/kubesmith/terraform-provider-kubesmith/internal/lab/containerhosts"
)

// The ingress scenario's addresses on the shared container-host network.
const (
	ingressPrefix      = "e2ei"
	ingressAPIVIP      = "172.30.0.248"
	ingressFrontendVIP = "172.30.0.247"
	ingressPoolFirst   = "172.30.0.211"
	ingressPoolLast    = "172.30.0.215"
)

// ingressAddrs: one master, then two workers that are also the frontend hosts.
var ingressAddrs = []string{"172.30.0.51", "172.30.0.52", "172.30.0.53"}

// ingressHosts are the example's hostnames and the echo Deployment each must reach.
var ingressHosts = map[string]string{"alpha": "alpha.example.test", "beta": "beta.example.test"}

// TestIngress applies examples/ingress on container hosts (one master, two workers that also run the HA
// frontend): Traefik from the bundle behind a kubesmith_loadbalancer frontend, and an Ingress that routes two
// hostnames to two echo Services. From this machine it checks both hostnames through the frontend VIP (HTTP and
// HTTPS) and through Traefik's MetalLB address, that `kubectl top` works (the metrics-server add-on) and that
// dropping the add-on uninstalls it, and that destroy leaves every host as it was.
func TestIngress(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 45*time.Minute)
	defer cancel()
	tm := newTimings(t, "e2e-ingress")
	l := newLab(t)
	tm.measure(t, "lab: dockerd, network, node image", func() error { _, err := l.Prepare(ctx); return err })
	var nodes []containerhosts.Node
	tm.measure(t, "lab: 3 container hosts to SSH", func() error {
		nodes = labNodes(t, ctx, l, ingressPrefix, ingressAddrs)
		return nil
	})
	var before map[string]containerhosts.Snapshot
	tm.measure(t, "snapshot hosts before install", func() error {
		var err error
		before, err = snapshotAll(ctx, l, nodes)
		return err
	})

	// The example itself, unchanged, with the lab's hosts and addresses as variables.
	dir := t.TempDir()
	copyExample(t, filepath.Join(repoRoot(t), "examples", "ingress"), dir)
	kubeconfig := filepath.Join(dir, "kubeconfig")
	host := func(n containerhosts.Node) map[string]string {
		return map[string]string{"name": n.Name, "address": n.Address, "host_public_key": n.HostPublicKey}
	}
	vars := map[string]any{
		"name":                 "e2eingress",
		"api_vip":              ingressAPIVIP,
		"frontend_vip":         ingressFrontendVIP,
		"service_pool":         []string{ingressPoolFirst + "-" + ingressPoolLast},
		"masters":              []map[string]string{host(nodes[0])},
		"workers":              []map[string]string{host(nodes[1]), host(nodes[2])},
		"ssh_private_key_path": l.ClientKeyPath(),
		"bundle":               bundleDir(),
		"kubeconfig_path":      kubeconfig,
		"traefik_image":        bundleImage(t, "traefik"),
		"echo_image":           bundleImage(t, "echo"),
		"hostnames":            ingressHosts,
	}
	writeVars := func() {
		vj, _ := json.MarshalIndent(vars, "", "  ")
		if err := os.WriteFile(filepath.Join(dir, "terraform.tfvars.json"), vj, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	writeVars()

	tf := newTF(t, dir)
	applied := false
	t.Cleanup(func() {
		if applied && os.Getenv("KUBESMITH_E2E_KEEP") == "" {
			c, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
			defer cancel()
			if out, err := tf.run(c, "destroy", "-auto-approve", "-input=false", "-no-color"); err != nil {
				t.Logf("cleanup destroy failed: %v\n%s", err, tail(out, 30))
			}
		}
	})
	tm.measure(t, "terraform init", func() error { _, err := tf.run(ctx, "init", "-input=false", "-no-color"); return err })
	tm.measure(t, "terraform apply: cluster, pool of 2, frontend + pool, Traefik, Ingress", func() error {
		applied = true
		out, err := tf.run(ctx, "apply", "-auto-approve", "-input=false", "-no-color")
		t.Log(tail(out, 12))
		return err
	})
	k := newKubectl(t, kubeconfig)
	tm.measure(t, "Traefik and both echo Deployments available", func() error {
		for _, d := range []string{"traefik/traefik", "ingress-demo/echo-alpha", "ingress-demo/echo-beta"} {
			ns, name, _ := strings.Cut(d, "/")
			if _, err := k.run(ctx, "-n", ns, "rollout", "status", "deployment/"+name, "--timeout=300s"); err != nil {
				return err
			}
		}
		return nil
	})
	check := func(base string, tlsOn bool) error {
		for key, hostname := range ingressHosts {
			if err := eventually(ctx, 3*time.Minute, 2*time.Second, func(ctx context.Context) error {
				return expectEcho(ctx, base, hostname, tlsOn, "echo-"+key+"-")
			}); err != nil {
				return fmt.Errorf("%s via %s: %w", hostname, base, err)
			}
		}
		// A hostname no Ingress names gets Traefik's 404, not one of the Services.
		code, body, err := httpGet(ctx, base+"/", "nobody.example.test", tlsOn)
		if err != nil {
			return err
		}
		if code != http.StatusNotFound {
			return fmt.Errorf("unknown host via %s: %d %q, want 404", base, code, body)
		}
		return nil
	}
	tm.measure(t, "both hostnames through the frontend VIP (HTTP, port 80)", func() error {
		return check("http://"+ingressFrontendVIP, false)
	})
	tm.measure(t, "both hostnames through the frontend VIP (HTTPS, port 443)", func() error {
		return check("https://"+ingressFrontendVIP, true)
	})
	tm.measure(t, "both hostnames through Traefik's MetalLB address", func() error {
		var ip string
		if err := eventually(ctx, 2*time.Minute, 2*time.Second, func(ctx context.Context) error {
			out, err := k.run(ctx, "-n", "traefik", "get", "service", "traefik", "-o", "jsonpath={.status.loadBalancer.ingress[0].ip}")
			if err != nil {
				return err
			}
			ip = strings.TrimSpace(out)
			if ip == "" {
				return fmt.Errorf("service traefik has no LoadBalancer address yet")
			}
			return nil
		}); err != nil {
			return err
		}
		a, err := netip.ParseAddr(ip)
		if err != nil {
			return err
		}
		first, last := netip.MustParseAddr(ingressPoolFirst), netip.MustParseAddr(ingressPoolLast)
		if a.Less(first) || last.Less(a) {
			return fmt.Errorf("traefik got %s, outside the pool %s-%s", a, first, last)
		}
		return check("http://"+ip, false)
	})
	tm.measure(t, "kubectl top nodes and pods (metrics-server, kubelet certs verified)", func() error {
		return eventually(ctx, 4*time.Minute, 5*time.Second, func(ctx context.Context) error {
			out, err := k.run(ctx, "top", "nodes", "--no-headers")
			if err != nil {
				return err
			}
			for _, n := range nodes {
				if !topLine(out, n.Name) {
					return fmt.Errorf("no metrics for %s yet:\n%s", n.Name, out)
				}
			}
			pods, err := k.run(ctx, "top", "pods", "-n", "ingress-demo", "--no-headers")
			if err != nil {
				return err
			}
			if !strings.Contains(pods, "echo-alpha-") || !strings.Contains(pods, "echo-beta-") {
				return fmt.Errorf("no pod metrics for the echo pods yet:\n%s", pods)
			}
			t.Logf("kubectl top nodes:\n%s", out)
			return nil
		})
	})
	emptyPlan := func() error { return tf.emptyPlan(ctx) }
	tm.measure(t, "empty plan after apply", emptyPlan)
	tm.measure(t, "metrics-server removed from addons: uninstalled, Ingress still serves", func() error {
		vars["addons"] = []string{"metallb"}
		writeVars()
		out, err := tf.run(ctx, "apply", "-auto-approve", "-input=false", "-no-color")
		t.Log(tail(out, 4))
		if err != nil {
			return err
		}
		if err := eventually(ctx, 2*time.Minute, 2*time.Second, func(ctx context.Context) error {
			left, err := k.run(ctx, "get", "apiservice/v1beta1.metrics.k8s.io", "-n", "kube-system", "deployment/metrics-server",
				"--ignore-not-found", "-o", "name")
			if err != nil {
				return err
			}
			if strings.TrimSpace(left) != "" {
				return fmt.Errorf("still there:\n%s", left)
			}
			return nil
		}); err != nil {
			return err
		}
		if out, err := k.run(ctx, "top", "nodes"); err == nil {
			return fmt.Errorf("kubectl top still works without metrics-server:\n%s", out)
		}
		if err := expectEcho(ctx, "http://"+ingressFrontendVIP, ingressHosts["alpha"], false, "echo-alpha-"); err != nil {
			return err
		}
		return emptyPlan()
	})
	tm.measure(t, "terraform destroy leaves every host as before", func() error {
		if _, err := tf.run(ctx, "destroy", "-auto-approve", "-input=false", "-no-color"); err != nil {
			return err
		}
		applied = false
		return sameAsBefore(ctx, l, nodes, before)
	})
}

// copyExample copies the example's files (not its .terraform directory, state or lock file) into dir.
func copyExample(t *testing.T, src, dir string) {
	t.Helper()
	entries, err := os.ReadDir(src)
	if err != nil {
		t.Fatal(err)
	}
	copied := 0
	for _, e := range entries {
		tfFile := strings.HasSuffix(e.Name(), ".tf") || strings.HasSuffix(e.Name(), ".tftpl")
		if e.IsDir() || !tfFile {
			continue
		}
		data, err := os.ReadFile(filepath.Join(src, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, e.Name()), data, 0o644); err != nil {
			t.Fatal(err)
		}
		copied++
	}
	if copied == 0 {
		t.Fatalf("%s has no Terraform files", src)
	}
}

// bundleImage is the reference of the bundle's image called name.
func bundleImage(t *testing.T, name string) string {
	t.Helper()
	b, err := artifacts.Open(bundleDir())
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range b.Manifest().Files {
		if f.Kind == artifacts.KindImage && f.Name == name {
			return f.Image
		}
	}
	t.Fatalf("the bundle %s has no %s image: %s", bundleDir(), name, artifacts.HowToAdd(name))
	return ""
}

// httpGet sends one GET to url with the given Host header (and TLS server name), from this machine. TLS is not
// verified: Traefik serves its default self-signed certificate; what is checked is the routing.
func httpGet(ctx context.Context, url, host string, tlsOn bool) (int, string, error) {
	tr := &http.Transport{
		DialContext:       (&net.Dialer{Timeout: 5 * time.Second}).DialContext,
		DisableKeepAlives: true,
	}
	if tlsOn {
		tr.TLSClientConfig = &tls.Config{ServerName: host, InsecureSkipVerify: true} //nolint:gosec // test: Traefik's default self-signed certificate
	}
	c := &http.Client{Transport: tr, Timeout: 10 * time.Second}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return 0, "", err
	}
	req.Host = host
	resp, err := c.Do(req)
	if err != nil {
		return 0, "", err
	}
	defer func() { _ = resp.Body.Close() }()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 4096))
	return resp.StatusCode, strings.TrimSpace(string(body)), err
}

// expectEcho checks that GET base/ingress-check with Host: hostname is answered by a pod whose name starts with
// podPrefix, and that the path arrived unchanged.
func expectEcho(ctx context.Context, base, hostname string, tlsOn bool, podPrefix string) error {
	code, body, err := httpGet(ctx, base+"/ingress-check", hostname, tlsOn)
	if err != nil {
		return err
	}
	if code != http.StatusOK {
		return fmt.Errorf("HTTP %d: %q", code, body)
	}
	fields := map[string]string{}
	for _, f := range strings.Fields(body) {
		if k, v, ok := strings.Cut(f, "="); ok {
			fields[k] = v
		}
	}
	if !strings.HasPrefix(fields["host"], podPrefix) || fields["path"] != "/ingress-check" {
		return fmt.Errorf("answer %q: want host=%s... path=/ingress-check", body, podPrefix)
	}
	return nil
}

// topLine reports whether `kubectl top nodes` output has a line for node with CPU and memory figures.
func topLine(out, node string) bool {
	for _, line := range strings.Split(out, "\n") {
		f := strings.Fields(line)
		if len(f) >= 5 && f[0] == node && strings.HasSuffix(f[1], "m") && strings.HasSuffix(f[3], "Mi") {
			return true
		}
	}
	return false
}
