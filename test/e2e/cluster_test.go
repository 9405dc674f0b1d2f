//go:build e2e

package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/kubesmith/terraform-provider-kubesmith/internal/lab/containerhosts"
)

const (
	clusterVIP    = "172.30.0.250"
	clusterPrefix = "e2ec"
)

var clusterAddrs = []string{"172.30.0.11", "172.30.0.12", "172.30.0.13"}

// TestClusterHA applies a 3-master cluster with the API VIP on container hosts through terraform and checks
// it the way an operator would, including the loss of the VIP holder, import and a clean destroy.
func TestClusterHA(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Minute)
	defer cancel()
	tm := newTimings(t, "e2e-cluster")
	l := newLab(t)
	tm.measure(t, "lab: dockerd, network, node image", func() error { _, err := l.Prepare(ctx); return err })
	var nodes []containerhosts.Node
	tm.measure(t, "lab: 3 container hosts to SSH", func() error {
		nodes = labNodes(t, ctx, l, clusterPrefix, clusterAddrs)
		return nil
	})
	var before map[string]containerhosts.Snapshot
	tm.measure(t, "snapshot hosts before install", func() error {
		var err error
		before, err = snapshotAll(ctx, l, nodes)
		return err
	})

	dir := t.TempDir()
	src := filepath.Join(repoRoot(t), "test", "e2e", "testdata", "cluster", "main.tf")
	data, err := os.ReadFile(src)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "main.tf"), data, 0o644); err != nil {
		t.Fatal(err)
	}
	kubeconfig := filepath.Join(dir, "kubeconfig")
	type master struct {
		Name          string `json:"name"`
		Address       string `json:"address"`
		HostPublicKey string `json:"host_public_key"`
	}
	vars := map[string]any{
		"ssh_private_key_path": l.ClientKeyPath(),
		"bundle":               bundleDir(),
		"api_vip":              clusterVIP,
		"kubeconfig_path":      kubeconfig,
	}
	var ms []master
	for _, n := range nodes {
		ms = append(ms, master{Name: n.Name, Address: n.Address, HostPublicKey: n.HostPublicKey})
	}
	vars["masters"] = ms
	vj, _ := json.MarshalIndent(vars, "", "  ")
	if err := os.WriteFile(filepath.Join(dir, "terraform.tfvars.json"), vj, 0o600); err != nil {
		t.Fatal(err)
	}
	tf := newTF(t, dir)
	applied := false
	t.Cleanup(func() {
		if applied && t.Failed() && os.Getenv("KUBESMITH_E2E_KEEP") == "" {
			c, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
			defer cancel()
			if out, err := tf.run(c, "destroy", "-auto-approve", "-input=false", "-no-color"); err != nil {
				t.Logf("cleanup destroy failed: %v\n%s", err, tail(out, 30))
			}
		}
	})
	tm.measure(t, "terraform init", func() error { _, err := tf.run(ctx, "init", "-input=false", "-no-color"); return err })
	tm.measure(t, "terraform apply: 3 masters Ready behind the VIP", func() error {
		applied = true
		out, err := tf.run(ctx, "apply", "-auto-approve", "-input=false", "-no-color")
		t.Log(tail(out, 15))
		return err
	})
	k := newKubectl(t, kubeconfig)
	tm.measure(t, "kubeconfig uses the VIP; 3 Ready masters", func() error {
		kc, err := os.ReadFile(kubeconfig)
		if err != nil {
			return err
		}
		if !strings.Contains(string(kc), "https://"+clusterVIP+":6443") {
			return fmt.Errorf("kubeconfig does not point at the VIP")
		}
		return eventually(ctx, 2*time.Minute, 2*time.Second, func(ctx context.Context) error {
			out, err := k.run(ctx, "get", "nodes", "--no-headers")
			if err != nil {
				return err
			}
			if n := strings.Count(out, " Ready "); n != 3 {
				return fmt.Errorf("%d Ready nodes:\n%s", n, out)
			}
			return nil
		})
	})
	tm.measure(t, "/readyz through each master", func() error {
		for _, n := range nodes {
			if _, err := k.run(ctx, "--server", "https://"+n.Address+":6443", "get", "--raw", "/readyz"); err != nil {
				return fmt.Errorf("%s: %w", n.Name, err)
			}
		}
		return nil
	})
	etcdctl := "ETCDCTL_API=3 etcdctl --endpoints=https://172.30.0.11:2379,https://172.30.0.12:2379,https://172.30.0.13:2379 " +
		"--cacert=/etc/kubernetes/pki/etcd/ca.crt --cert=/etc/kubernetes/pki/etcd/healthcheck-client.crt --key=/etc/kubernetes/pki/etcd/healthcheck-client.key "
	tm.measure(t, "etcd: 3 healthy members", func() error {
		res, err := l.Exec(ctx, nodes[0].Name, etcdctl+"endpoint health")
		if err != nil {
			return fmt.Errorf("%w: %s", err, res.Stderr)
		}
		if n := strings.Count(res.Stdout+res.Stderr, "is healthy"); n != 3 {
			return fmt.Errorf("%d healthy members: %s %s", n, res.Stdout, res.Stderr)
		}
		return nil
	})
	tm.measure(t, "pod on a master: logs and exec", func() error {
		pod := `apiVersion: v1
kind: Pod
metadata: {name: probe, namespace: default}
spec:
  nodeName: ` + nodes[1].Name + `
  tolerations: [{key: node-role.kubernetes.io/control-plane, operator: Exists, effect: NoSchedule}]
  containers:
  - name: echo
    image: ` + echoImage(t) + `
    imagePullPolicy: Never
`
		if _, err := k.stdin(ctx, pod, "apply", "-f", "-"); err != nil {
			return err
		}
		if _, err := k.run(ctx, "wait", "--for=condition=Ready", "pod/probe", "--timeout=120s"); err != nil {
			return err
		}
		if _, err := k.run(ctx, "logs", "probe"); err != nil {
			return err
		}
		out, err := k.run(ctx, "exec", "probe", "--", "/echo", "get", "http://127.0.0.1:8080/exec-check")
		if err != nil {
			return err
		}
		if !strings.Contains(out, "path=/exec-check") {
			return fmt.Errorf("unexpected exec output: %s", out)
		}
		return nil
	})
	tm.measure(t, "CoreDNS resolves kubernetes.default", func() error {
		return eventually(ctx, 2*time.Minute, 3*time.Second, func(ctx context.Context) error {
			out, err := k.run(ctx, "exec", "probe", "--", "/echo", "resolve", "kubernetes.default.svc.cluster.local")
			if err != nil {
				return err
			}
			if !strings.Contains(out, "10.96.0.1") {
				return fmt.Errorf("unexpected answer: %s", out)
			}
			return nil
		})
	})
	tm.measure(t, "Secrets are encrypted in etcd", func() error {
		if _, err := k.run(ctx, "create", "secret", "generic", "e2e-secret", "--from-literal=k=plaintext-value"); err != nil {
			return err
		}
		res, err := l.Exec(ctx, nodes[0].Name, etcdctl+"get /registry/secrets/default/e2e-secret --print-value-only | head -c 64 | od -c | head -3")
		if err != nil {
			return err
		}
		if !strings.Contains(strings.ReplaceAll(strings.Join(strings.Fields(res.Stdout), ""), " ", ""), "k8s:enc:") {
			return fmt.Errorf("secret is not encrypted at rest: %s", res.Stdout)
		}
		return nil
	})
	tm.measure(t, "kubelet :10250 rejects anonymous requests", func() error {
		out, err := exec.CommandContext(ctx, "curl", "-sk", "-o", "/dev/null", "-w", "%{http_code}", "https://"+nodes[0].Address+":10250/pods").Output()
		if err != nil {
			return err
		}
		if string(out) != "401" {
			return fmt.Errorf("anonymous kubelet request got HTTP %s, want 401", out)
		}
		return nil
	})
	tm.measure(t, "VIP survives the loss of its holder (within 10 s)", func() error {
		holder := ""
		for _, n := range nodes {
			res, err := l.Exec(ctx, n.Name, "ip -o -4 addr show | grep -q ' "+clusterVIP+"/' && echo yes || true")
			if err == nil && strings.TrimSpace(res.Stdout) == "yes" {
				holder = n.Name
			}
		}
		if holder == "" {
			return fmt.Errorf("no master holds the VIP")
		}
		t.Logf("VIP holder: %s; stopping it", holder)
		if err := l.Stop(ctx, holder); err != nil {
			return err
		}
		stopped := time.Now()
		err := eventually(ctx, 10*time.Second, 500*time.Millisecond, func(ctx context.Context) error {
			_, err := k.run(ctx, "get", "--raw", "/readyz")
			return err
		})
		if err != nil {
			return fmt.Errorf("API not answering through the VIP 10 s after stopping %s: %w", holder, err)
		}
		t.Logf("API answered through the VIP %s after the holder stopped", time.Since(stopped).Round(100*time.Millisecond))
		for _, n := range nodes {
			if n.Name == holder {
				continue
			}
			res, err := l.Exec(ctx, n.Name, etcdctl+"endpoint status --cluster -w table 2>&1 | grep -c true || true")
			if err == nil && strings.TrimSpace(res.Stdout) != "0" {
				break
			}
		}
		if _, err := k.run(ctx, "create", "configmap", "quorum-check", "--from-literal=a=b"); err != nil {
			return fmt.Errorf("etcd lost quorum: %w", err)
		}
		if err := l.Start(ctx, holder); err != nil {
			return err
		}
		return eventually(ctx, 3*time.Minute, 3*time.Second, func(ctx context.Context) error {
			out, err := k.run(ctx, "get", "node", holder, "--no-headers")
			if err != nil || !strings.Contains(out, " Ready ") {
				return fmt.Errorf("%s not Ready again: %s %v", holder, out, err)
			}
			return nil
		})
	})
	tm.measure(t, "docker restart of a node: back to Ready", func() error {
		if err := l.Restart(ctx, nodes[2].Name); err != nil {
			return err
		}
		if err := eventually(ctx, 3*time.Minute, 3*time.Second, func(ctx context.Context) error {
			out, err := k.run(ctx, "get", "nodes", "--no-headers")
			if err != nil {
				return err
			}
			if n := strings.Count(out, " Ready "); n != 3 {
				return fmt.Errorf("%d Ready nodes:\n%s", n, out)
			}
			return nil
		}); err != nil {
			return err
		}
		// Every kubesmith unit on the restarted node must be running again, not merely the kubelet.
		return eventually(ctx, 2*time.Minute, 2*time.Second, func(ctx context.Context) error {
			// systemctl is-active succeeds when any one unit is active, so check every line.
			res, _ := l.Exec(ctx, nodes[2].Name, "systemctl is-active containerd etcd kube-apiserver kube-controller-manager kube-scheduler kubelet kube-proxy flanneld keepalived")
			for _, st := range strings.Fields(res.Stdout) {
				if st != "active" {
					return fmt.Errorf("units not all active: %s", strings.Join(strings.Fields(res.Stdout), " "))
				}
			}
			if len(strings.Fields(res.Stdout)) != 9 {
				return fmt.Errorf("unexpected is-active output: %q", res.Stdout)
			}
			return nil
		})
	})
	tm.measure(t, "no-change plan is empty", func() error {
		empty, out, err := tf.planIsEmpty(ctx)
		if err != nil {
			return err
		}
		if !empty {
			return fmt.Errorf("plan is not empty:\n%s", tail(out, 40))
		}
		return nil
	})
	tm.measure(t, "state rm + import gives an empty plan", func() error {
		if _, err := tf.run(ctx, "state", "rm", "kubesmith_cluster.e2e"); err != nil {
			return err
		}
		id := nodes[0].Address + "," + nodes[0].HostPublicKey
		if _, err := tf.run(ctx, "import", "-input=false", "-no-color", "kubesmith_cluster.e2e", id); err != nil {
			return err
		}
		empty, out, err := tf.planIsEmpty(ctx)
		if err != nil {
			return err
		}
		if !empty {
			return fmt.Errorf("plan after import is not empty:\n%s", tail(out, 40))
		}
		return nil
	})
	tm.measure(t, "terraform destroy", func() error {
		_, err := tf.run(ctx, "destroy", "-auto-approve", "-input=false", "-no-color")
		if err == nil {
			applied = false
		}
		return err
	})
	tm.measure(t, "hosts identical to their pre-install snapshots", func() error {
		return sameAsBefore(ctx, l, nodes, before)
	})
	tm.measure(t, "second create on the same hosts", func() error {
		applied = true
		if _, err := tf.run(ctx, "apply", "-auto-approve", "-input=false", "-no-color"); err != nil {
			return err
		}
		out, err := k.run(ctx, "get", "nodes", "--no-headers")
		if err != nil {
			return err
		}
		if n := strings.Count(out, " Ready "); n != 3 {
			return fmt.Errorf("%d Ready nodes after the second create:\n%s", n, out)
		}
		return nil
	})
	tm.measure(t, "terraform destroy (second)", func() error {
		_, err := tf.run(ctx, "destroy", "-auto-approve", "-input=false", "-no-color")
		if err == nil {
			applied = false
		}
		return err
	})
}
