//go:build e2e

package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/kubesmith/terraform-provider-kubesmith/internal/lab/containerhosts"
)

// TestNodePool joins a pool of workers to a development (one-master) cluster on container hosts, runs pods on
// them, changes a label in place, scales the pool down with a drain and checks that the removed host is back to
// its pre-install state.
func TestNodePool(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 40*time.Minute)
	defer cancel()
	tm := newTimings(t, "e2e-pool")
	l := newLab(t)
	tm.measure(t, "lab: dockerd, network, node image", func() error { _, err := l.Prepare(ctx); return err })
	var nodes []containerhosts.Node
	tm.measure(t, "lab: 3 container hosts to SSH", func() error {
		nodes = labNodes(t, ctx, l, "e2ep", []string{"172.30.0.31", "172.30.0.32", "172.30.0.33"})
		return nil
	})
	var before map[string]containerhosts.Snapshot
	tm.measure(t, "snapshot hosts before install", func() error {
		var err error
		before, err = snapshotAll(ctx, l, nodes)
		return err
	})
	dir := t.TempDir()
	data, err := os.ReadFile(filepath.Join(repoRoot(t), "test", "e2e", "testdata", "pool", "main.tf"))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "main.tf"), data, 0o644); err != nil {
		t.Fatal(err)
	}
	kubeconfig := filepath.Join(dir, "kubeconfig")
	host := func(n containerhosts.Node) map[string]string {
		return map[string]string{"name": n.Name, "address": n.Address, "host_public_key": n.HostPublicKey}
	}
	writeVars := func(workers []containerhosts.Node, labels map[string]string) {
		ws := []map[string]string{}
		for _, w := range workers {
			ws = append(ws, host(w))
		}
		vj, _ := json.MarshalIndent(map[string]any{
			"masters": []map[string]string{host(nodes[0])}, "workers": ws, "ssh_private_key_path": l.ClientKeyPath(),
			"bundle": bundleDir(), "kubeconfig_path": kubeconfig, "labels": labels,
		}, "", "  ")
		if err := os.WriteFile(filepath.Join(dir, "terraform.tfvars.json"), vj, 0o600); err != nil {
			t.Fatal(err)
		}
	}
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
	apply := func() error {
		applied = true
		out, err := tf.run(ctx, "apply", "-auto-approve", "-input=false", "-no-color")
		t.Log(tail(out, 8))
		return err
	}
	emptyPlan := func() error { return tf.emptyPlan(ctx) }
	writeVars(nodes[1:], map[string]string{"tier": "general"})
	tm.measure(t, "terraform init", func() error { _, err := tf.run(ctx, "init", "-input=false", "-no-color"); return err })
	tm.measure(t, "terraform apply: 1 master + pool of 2 workers Ready", apply)
	k := newKubectl(t, kubeconfig)
	readyCount := func(want int) error {
		return eventually(ctx, 3*time.Minute, 2*time.Second, func(ctx context.Context) error {
			out, err := k.run(ctx, "get", "nodes", "--no-headers")
			if err != nil {
				return err
			}
			if n := strings.Count(out, " Ready "); n != want {
				return fmt.Errorf("%d Ready nodes, want %d:\n%s", n, want, out)
			}
			return nil
		})
	}
	tm.measure(t, "3 Ready nodes", func() error { return readyCount(3) })
	tm.measure(t, "empty plan after apply", emptyPlan)
	tm.measure(t, "echo Deployment on the workers; pod-to-pod across nodes", func() error {
		manifest := fmt.Sprintf(`apiVersion: apps/v1
kind: Deployment
metadata: {name: echo, namespace: default}
spec:
  replicas: 4
  selector: {matchLabels: {app: echo}}
  template:
    metadata: {labels: {app: echo}}
    spec:
      topologySpreadConstraints: [{maxSkew: 1, topologyKey: kubernetes.io/hostname, whenUnsatisfiable: DoNotSchedule, nodeTaintsPolicy: Honor, labelSelector: {matchLabels: {app: echo}}}]
      containers:
      - name: echo
        image: %s
        imagePullPolicy: Never
        env: [{name: POD_IP, valueFrom: {fieldRef: {fieldPath: status.podIP}}}]
`, echoImage(t))
		if _, err := k.stdin(ctx, manifest, "apply", "-f", "-"); err != nil {
			return err
		}
		if _, err := k.run(ctx, "rollout", "status", "deployment/echo", "--timeout=180s"); err != nil {
			return err
		}
		out, err := k.run(ctx, "get", "pods", "-l", "app=echo", "-o", `jsonpath={range .items[*]}{.metadata.name} {.spec.nodeName} {.status.podIP}{"\n"}{end}`)
		if err != nil {
			return err
		}
		lines := strings.Split(strings.TrimSpace(out), "\n")
		byNode := map[string][]string{}
		for _, ln := range lines {
			f := strings.Fields(ln)
			if len(f) == 3 {
				byNode[f[1]] = append(byNode[f[1]], f[0]+" "+f[2])
			}
		}
		if len(byNode[nodes[1].Name]) == 0 || len(byNode[nodes[2].Name]) == 0 {
			return fmt.Errorf("pods not spread over both workers: %v", byNode)
		}
		a := strings.Fields(byNode[nodes[1].Name][0])
		b := strings.Fields(byNode[nodes[2].Name][0])
		res, err := k.run(ctx, "exec", a[0], "--", "/echo", "get", "http://"+b[1]+":8080/cross-node")
		if err != nil {
			return err
		}
		if !strings.Contains(res, "path=/cross-node") {
			return fmt.Errorf("unexpected answer: %s", res)
		}
		return nil
	})
	tm.measure(t, "a CSR for an unplanned name stays unapproved", func() error {
		return rogueCSRStaysPending(ctx, k, dir, apply)
	})
	tm.measure(t, "label change updates the Nodes in place", func() error {
		writeVars(nodes[1:], map[string]string{"tier": "gold"})
		if err := apply(); err != nil {
			return err
		}
		out, err := k.run(ctx, "get", "nodes", "-l", "tier=gold", "--no-headers")
		if err != nil {
			return err
		}
		if strings.Count(out, "\n") != 2 {
			return fmt.Errorf("want 2 nodes with tier=gold:\n%s", out)
		}
		// That apply went through the pool's engine (which approves CSRs of planned names): the rogue one stays.
		csr, err := k.run(ctx, "get", "csr", "rogue-node", "--no-headers")
		if err != nil {
			return err
		}
		if !strings.Contains(csr, "Pending") {
			return fmt.Errorf("rogue CSR is not pending after a pool update: %s", csr)
		}
		return emptyPlan()
	})
	tm.measure(t, "scale 2 -> 1 with drain; pods rescheduled", func() error {
		writeVars(nodes[1:2], map[string]string{"tier": "gold"})
		if err := apply(); err != nil {
			return err
		}
		if err := readyCount(2); err != nil {
			return err
		}
		// With a hostname spread constraint and one worker left, some replicas may stay pending, so the rollout's
		// result is not checked; the point is that none runs on the removed node.
		_, _ = k.run(ctx, "rollout", "status", "deployment/echo", "--timeout=180s")
		// Evicted pods end as Succeeded/Failed objects until the pod garbage collector removes them; what must not
		// exist is a pod still running (or about to) on the removed node. DaemonSet pods (MetalLB's speaker) are
		// not drained: the pod garbage collector deletes them once their Node is gone (after its 40 s quarantine).
		if err := eventually(ctx, 2*time.Minute, 2*time.Second, func(ctx context.Context) error {
			out, err := k.run(ctx, "get", "pods", "-A", "-o", "wide", "--no-headers",
				"--field-selector", "spec.nodeName="+nodes[2].Name+",status.phase!=Succeeded,status.phase!=Failed")
			if err != nil {
				return err
			}
			if strings.TrimSpace(out) != "" && !strings.Contains(out, "No resources found") {
				return fmt.Errorf("pods still on the removed node:\n%s", out)
			}
			return nil
		}); err != nil {
			return err
		}
		return emptyPlan()
	})
	tm.measure(t, "removed host matches its pre-install snapshot", func() error {
		after, err := l.Snapshot(ctx, nodes[2].Name)
		if err != nil {
			return err
		}
		if d := containerhosts.Diff(before[nodes[2].Name], after); len(d) > 0 {
			return fmt.Errorf("%s differs:\n%s", nodes[2].Name, strings.Join(d, "\n"))
		}
		return nil
	})
	tm.measure(t, "terraform destroy leaves every host as before", func() error {
		if _, err := tf.run(ctx, "destroy", "-auto-approve", "-input=false", "-no-color"); err != nil {
			return err
		}
		applied = false
		return sameAsBefore(ctx, l, nodes, before)
	})
}

// rogueCSR is a PEM CSR (base64) for CN=system:node:rogue-node, O=system:nodes: a name no pool planned.
const rogueCSR = "LS0tLS1CRUdJTiBDRVJUSUZJQ0FURSBSRVFVRVNULS0tLS0KTUlIek1JR2FBZ0VBTURneEZUQVRCZ05WQkFvTURITjVjM1JsYlRwdWIyUmxjekVmTUIwR0ExVUVBd3dXYzNsegpkR1Z0T201dlpHVTZjbTluZFdVdGJtOWtaVEJaTUJNR0J5cUdTTTQ5QWdFR0NDcUdTTTQ5QXdFSEEwSUFCR2lyCi9mVzlYTHZhOGlzRVpsYVdCRllnN1pDQnEwaitTWGJaeGpLclgzanRLdWFZeEg0NjhzNTVxbEVROVlUNmZ0Y0cKWW5iRWFHOGNzZzZxZVIwdU9KeWdBREFLQmdncWhrak9QUVFEQWdOSUFEQkZBaUJ3bmRuNmNSeWNIOE1nM2RhYQpHQ2NTWWxFaXFjanZ3Z3JYU3hhMzg0OFRyUUloQUlDNElTWFkxQUR0S1RaN0JyVWhlQzduRzBWS3dNelRzRG0wCmFnNUY1Y1NnCi0tLS0tRU5EIENFUlRJRklDQVRFIFJFUVVFU1QtLS0tLQo="
