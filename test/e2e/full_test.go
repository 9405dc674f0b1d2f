//go:build e2e

package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/kubesmith/terraform-provider-kubesmith/internal/lab/containerhosts"
)

// Addresses of the full topology on the lab network.
var (
	fullMasterAddrs = []string{"172.30.0.11", "172.30.0.12", "172.30.0.13"}
	fullWorkerAddrs = []string{"172.30.0.21", "172.30.0.22", "172.30.0.23"}
	fullLBAddrs     = []string{"172.30.0.26", "172.30.0.27"}
)

const (
	fullAPIVIP   = "172.30.0.250"
	fullLBVIP    = "172.30.0.249"
	fullNodePort = 30080
)

// TestFullTopology is `make e2e`: 3 masters behind the API VIP, a pool of workers and a load balancer with a
// MetalLB service pool and an HA frontend, on container hosts, through terraform apply. It checks every Service
// type, the failover of both VIPs and of a MetalLB address, scaling with drain, in-place label and taint changes,
// CSR approval by name, empty plans after each apply, and a destroy that leaves every host as it was.
func TestFullTopology(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 80*time.Minute)
	defer cancel()
	tm := newTimings(t, "e2e-full")
	l := newLab(t)
	tm.measure(t, "lab: dockerd, network, node image", func() error { _, err := l.Prepare(ctx); return err })
	var masters, workers, lbs []containerhosts.Node
	tm.measure(t, "lab: 8 container hosts to SSH", func() error {
		masters = labNodes(t, ctx, l, "e2em", fullMasterAddrs)
		workers = labNodes(t, ctx, l, "e2ew", fullWorkerAddrs)
		lbs = labNodes(t, ctx, l, "e2elb", fullLBAddrs)
		return nil
	})
	all := slices.Concat(masters, workers, lbs)
	var before map[string]containerhosts.Snapshot
	tm.measure(t, "snapshot hosts before install", func() error {
		var err error
		before, err = snapshotAll(ctx, l, all)
		return err
	})

	dir := t.TempDir()
	data, err := os.ReadFile(filepath.Join(repoRoot(t), "test", "e2e", "testdata", "full", "main.tf"))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "main.tf"), data, 0o644); err != nil {
		t.Fatal(err)
	}
	kubeconfig := filepath.Join(dir, "kubeconfig")
	hostList := func(ns []containerhosts.Node) []map[string]string {
		out := []map[string]string{}
		for _, n := range ns {
			out = append(out, map[string]string{"name": n.Name, "address": n.Address, "host_public_key": n.HostPublicKey})
		}
		return out
	}
	type taint struct {
		Key    string `json:"key"`
		Value  string `json:"value"`
		Effect string `json:"effect"`
	}
	writeVars := func(pool []containerhosts.Node, labels map[string]string, taints []taint) {
		if taints == nil {
			taints = []taint{}
		}
		vj, _ := json.MarshalIndent(map[string]any{
			"masters": hostList(masters), "workers": hostList(pool), "lb_hosts": hostList(lbs),
			"ssh_private_key_path": l.ClientKeyPath(), "bundle": bundleDir(), "kubeconfig_path": kubeconfig,
			"labels": labels, "taints": taints,
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
		t.Log(tail(out, 6))
		return err
	}
	emptyPlan := func() error { return tf.emptyPlan(ctx) }
	pool := workers[:2]
	writeVars(pool, map[string]string{"tier": "general"}, nil)
	tm.measure(t, "terraform init", func() error { _, err := tf.run(ctx, "init", "-input=false", "-no-color"); return err })
	tm.measure(t, "terraform apply: 3 masters + 2 workers + load balancer", apply)
	k := newKubectl(t, kubeconfig)

	readyNodes := func(want []containerhosts.Node) error {
		return eventually(ctx, 3*time.Minute, 2*time.Second, func(ctx context.Context) error {
			out, err := k.run(ctx, "get", "nodes", "--no-headers")
			if err != nil {
				return err
			}
			for _, n := range want {
				if !strings.Contains(out, n.Name+" ") {
					return fmt.Errorf("node %s missing:\n%s", n.Name, out)
				}
			}
			if c := strings.Count(out, " Ready "); c != len(want) {
				return fmt.Errorf("%d Ready nodes, want %d:\n%s", c, len(want), out)
			}
			return nil
		})
	}
	tm.measure(t, "5 Ready nodes; kubeconfig on the API VIP", func() error {
		if err := readyNodes(slices.Concat(masters, pool)); err != nil {
			return err
		}
		server, err := k.run(ctx, "config", "view", "-o", "jsonpath={.clusters[0].cluster.server}")
		if err != nil {
			return err
		}
		if server != "https://"+fullAPIVIP+":6443" {
			return fmt.Errorf("kubeconfig server is %q, want the VIP", server)
		}
		return nil
	})
	tm.measure(t, "empty plan after apply", emptyPlan)

	tm.measure(t, "echo Deployment: 4 replicas over the workers; Services of every type", func() error {
		manifest := fmt.Sprintf(`apiVersion: apps/v1
kind: Deployment
metadata: {name: echo, namespace: default}
spec:
  replicas: 4
  selector: {matchLabels: {app: echo}}
  template:
    metadata: {labels: {app: echo}}
    spec:
      topologySpreadConstraints: [{maxSkew: 1, topologyKey: kubernetes.io/hostname, whenUnsatisfiable: ScheduleAnyway, labelSelector: {matchLabels: {app: echo}}}]
      containers:
      - name: echo
        image: %s
        imagePullPolicy: Never
        env: [{name: POD_IP, valueFrom: {fieldRef: {fieldPath: status.podIP}}}]
        readinessProbe: {httpGet: {path: /healthz, port: 8080}, periodSeconds: 2}
---
apiVersion: v1
kind: Service
metadata: {name: echo, namespace: default}
spec: {selector: {app: echo}, ports: [{port: 8080, targetPort: 8080}]}
---
apiVersion: v1
kind: Service
metadata: {name: echo-np, namespace: default}
spec: {type: NodePort, selector: {app: echo}, ports: [{port: 8080, targetPort: 8080, nodePort: %d}]}
---
apiVersion: v1
kind: Service
metadata: {name: echo-lb, namespace: default}
spec: {type: LoadBalancer, selector: {app: echo}, ports: [{port: 80, targetPort: 8080}]}
---
apiVersion: v1
kind: Service
metadata: {name: echo-ext, namespace: default}
spec: {type: ExternalName, externalName: echo.default.svc.cluster.local}
`, echoImage(t), fullNodePort)
		if _, err := k.stdin(ctx, manifest, "apply", "-f", "-"); err != nil {
			return err
		}
		if _, err := k.run(ctx, "rollout", "status", "deployment/echo", "--timeout=180s"); err != nil {
			return err
		}
		byNode, err := echoPods(ctx, k)
		if err != nil {
			return err
		}
		for _, w := range pool {
			if len(byNode[w.Name]) == 0 {
				return fmt.Errorf("no echo pod on worker %s: %v", w.Name, byNode)
			}
		}
		for n := range byNode {
			if strings.HasPrefix(n, "e2em-") {
				return fmt.Errorf("an echo pod runs on master %s: %v", n, byNode)
			}
		}
		// ClusterIP, from a pod, through CoreDNS.
		a := byNode[pool[0].Name][0]
		if out, err := k.run(ctx, "exec", a.name, "--", "/echo", "get", "http://echo.default.svc.cluster.local:8080/clusterip"); err != nil || !strings.Contains(out, "path=/clusterip") {
			return fmt.Errorf("ClusterIP from a pod: %v %s", err, out)
		}
		// ExternalName, resolved by CoreDNS to the in-cluster name, from a pod.
		clusterIP, err := k.run(ctx, "get", "service", "echo", "-o", "jsonpath={.spec.clusterIP}")
		if err != nil {
			return err
		}
		if out, err := k.run(ctx, "exec", a.name, "--", "/echo", "resolve", "echo-ext.default.svc.cluster.local"); err != nil || !strings.Contains(out, clusterIP) {
			return fmt.Errorf("ExternalName: %v %q, want %s", err, out, clusterIP)
		}
		if out, err := k.run(ctx, "exec", a.name, "--", "/echo", "get", "http://echo-ext.default.svc.cluster.local:8080/externalname"); err != nil || !strings.Contains(out, "path=/externalname") {
			return fmt.Errorf("ExternalName HTTP: %v %s", err, out)
		}
		// NodePort, from the host, on every node (masters included).
		for _, n := range slices.Concat(masters, pool) {
			if err := httpAnswers(ctx, fmt.Sprintf("http://%s:%d/nodeport", n.Address, fullNodePort), "path=/nodeport"); err != nil {
				return fmt.Errorf("NodePort on %s: %w", n.Name, err)
			}
		}
		// LoadBalancer, from the host, through the MetalLB address.
		lbIP, err := serviceLBIP(ctx, k, "echo-lb")
		if err != nil {
			return err
		}
		t.Logf("echo-lb got %s from the MetalLB pool", lbIP)
		return eventually(ctx, time.Minute, time.Second, func(ctx context.Context) error {
			return httpAnswers(ctx, "http://"+lbIP+"/loadbalancer", "path=/loadbalancer")
		})
	})
	tm.measure(t, "pod-to-pod across nodes", func() error {
		byNode, err := echoPods(ctx, k)
		if err != nil {
			return err
		}
		a, b := byNode[pool[0].Name][0], byNode[pool[1].Name][0]
		out, err := k.run(ctx, "exec", a.name, "--", "/echo", "get", "http://"+b.ip+":8080/cross-node")
		if err != nil || !strings.Contains(out, "pod_ip="+b.ip) {
			return fmt.Errorf("pod %s -> %s: %v %s", a.name, b.ip, err, out)
		}
		return nil
	})
	tm.measure(t, "frontend VIP answers and its backends are healthy", func() error {
		if err := eventually(ctx, time.Minute, time.Second, func(ctx context.Context) error {
			return httpAnswers(ctx, "http://"+fullLBVIP+"/frontend", "path=/frontend")
		}); err != nil {
			return err
		}
		st, err := lbState(ctx, tf)
		if err != nil {
			return err
		}
		if st.VIPHolder != lbs[0].Name {
			return fmt.Errorf("vip_holder is %q, want %s (the first frontend host)", st.VIPHolder, lbs[0].Name)
		}
		for _, b := range st.Backends {
			if b.Status != "UP" {
				return fmt.Errorf("backend %s:%d is %s", b.Address, b.TargetPort, b.Status)
			}
		}
		if len(st.Backends) != len(pool) {
			return fmt.Errorf("%d backends, want %d: %+v", len(st.Backends), len(pool), st.Backends)
		}
		return nil
	})
	tm.measure(t, "frontend VIP keeps answering when its holder stops", func() error {
		if err := l.Stop(ctx, lbs[0].Name); err != nil {
			return err
		}
		stopped := time.Now()
		if err := eventually(ctx, 30*time.Second, 500*time.Millisecond, func(ctx context.Context) error {
			return httpAnswers(ctx, "http://"+fullLBVIP+"/failover", "path=/failover")
		}); err != nil {
			return fmt.Errorf("frontend VIP not answering after %s stopped: %w", lbs[0].Name, err)
		}
		t.Logf("frontend VIP answered %s after its holder stopped", time.Since(stopped).Round(100*time.Millisecond))
		if err := l.Start(ctx, lbs[0].Name); err != nil {
			return err
		}
		// Back on its host, the first frontend takes the VIP again, and the next refresh sees no drift.
		return eventually(ctx, 2*time.Minute, 2*time.Second, func(ctx context.Context) error {
			if err := httpAnswers(ctx, "http://"+fullLBVIP+"/back", "path=/back"); err != nil {
				return err
			}
			return emptyPlan()
		})
	})
	tm.measure(t, "MetalLB address moves when its announcing node stops", func() error {
		lbIP, err := serviceLBIP(ctx, k, "echo-lb")
		if err != nil {
			return err
		}
		var announcer string
		if err := eventually(ctx, time.Minute, 2*time.Second, func(ctx context.Context) error {
			st, err := lbState(ctx, tf)
			if err != nil {
				return err
			}
			for _, s := range st.Services {
				if s.Service == "default/echo-lb" && s.Node != "" {
					announcer = s.Node
					return nil
				}
			}
			return fmt.Errorf("no announcing node for echo-lb yet: %+v", st.Services)
		}); err != nil {
			return err
		}
		t.Logf("%s is announced by %s; stopping it", lbIP, announcer)
		if err := l.Stop(ctx, announcer); err != nil {
			return err
		}
		stopped := time.Now()
		if err := eventually(ctx, 2*time.Minute, time.Second, func(ctx context.Context) error {
			return httpAnswers(ctx, "http://"+lbIP+"/moved", "path=/moved")
		}); err != nil {
			return fmt.Errorf("%s not answering after %s stopped: %w", lbIP, announcer, err)
		}
		t.Logf("%s answered again %s after %s stopped", lbIP, time.Since(stopped).Round(100*time.Millisecond), announcer)
		if err := l.Start(ctx, announcer); err != nil {
			return err
		}
		return readyNodes(slices.Concat(masters, pool))
	})
	tm.measure(t, "empty plan after the failovers", func() error {
		return eventually(ctx, 2*time.Minute, 3*time.Second, func(context.Context) error { return emptyPlan() })
	})
	tm.measure(t, "a CSR for an unplanned name stays unapproved", func() error {
		return rogueCSRStaysPending(ctx, k, dir, apply)
	})
	tm.measure(t, "label and taint change update the Nodes in place", func() error {
		writeVars(pool, map[string]string{"tier": "gold"}, []taint{{Key: "dedicated", Value: "web", Effect: "PreferNoSchedule"}})
		if err := apply(); err != nil {
			return err
		}
		out, err := k.run(ctx, "get", "nodes", "-l", "tier=gold", "-o", `jsonpath={range .items[*]}{.metadata.name} {.spec.taints[*].key}{"\n"}{end}`)
		if err != nil {
			return err
		}
		for _, w := range pool {
			if !strings.Contains(out, w.Name+" ") || !strings.Contains(out, "dedicated") {
				return fmt.Errorf("want %s labelled tier=gold with the dedicated taint:\n%s", w.Name, out)
			}
		}
		return emptyPlan()
	})
	tm.measure(t, "scale the pool 2 -> 3 (adding one worker)", func() error {
		pool = workers[:3]
		writeVars(pool, map[string]string{"tier": "gold"}, []taint{{Key: "dedicated", Value: "web", Effect: "PreferNoSchedule"}})
		start := time.Now()
		if err := apply(); err != nil {
			return err
		}
		t.Logf("adding one worker took %s", time.Since(start).Round(100*time.Millisecond))
		if err := readyNodes(slices.Concat(masters, pool)); err != nil {
			return err
		}
		st, err := lbState(ctx, tf)
		if err != nil {
			return err
		}
		if len(st.Backends) != 3 {
			return fmt.Errorf("the frontend has %d backends, want the 3 workers", len(st.Backends))
		}
		return emptyPlan()
	})
	tm.measure(t, "scale the pool 3 -> 1 with drain; pods rescheduled", func() error {
		pool = workers[:1]
		writeVars(pool, map[string]string{"tier": "gold"}, []taint{{Key: "dedicated", Value: "web", Effect: "PreferNoSchedule"}})
		if err := apply(); err != nil {
			return err
		}
		if err := readyNodes(slices.Concat(masters, pool)); err != nil {
			return err
		}
		if _, err := k.run(ctx, "rollout", "status", "deployment/echo", "--timeout=180s"); err != nil {
			return err
		}
		if err := eventually(ctx, 2*time.Minute, 2*time.Second, func(ctx context.Context) error {
			byNode, err := echoPods(ctx, k)
			if err != nil {
				return err
			}
			for n, ps := range byNode {
				if n != pool[0].Name {
					return fmt.Errorf("%d echo pods still on %s", len(ps), n)
				}
			}
			for _, w := range workers[1:] {
				out, err := k.run(ctx, "get", "pods", "-A", "--no-headers", "--field-selector",
					"spec.nodeName="+w.Name+",status.phase!=Succeeded,status.phase!=Failed")
				if err != nil {
					return err
				}
				if strings.TrimSpace(out) != "" && !strings.Contains(out, "No resources found") {
					return fmt.Errorf("pods still on removed %s:\n%s", w.Name, out)
				}
			}
			return nil
		}); err != nil {
			return err
		}
		if err := httpAnswers(ctx, "http://"+fullLBVIP+"/after-scale-down", "path=/after-scale-down"); err != nil {
			return err
		}
		return emptyPlan()
	})
	tm.measure(t, "removed workers match their pre-install snapshots", func() error {
		return sameAsBefore(ctx, l, workers[1:], before)
	})
	tm.measure(t, "terraform destroy leaves every host as before", func() error {
		if _, err := tf.run(ctx, "destroy", "-auto-approve", "-input=false", "-no-color"); err != nil {
			return err
		}
		applied = false
		return sameAsBefore(ctx, l, all, before)
	})
}

type echoPod struct{ name, ip string }

// echoPods lists the running echo pods by node.
func echoPods(ctx context.Context, k kubectl) (map[string][]echoPod, error) {
	out, err := k.run(ctx, "get", "pods", "-l", "app=echo", "--field-selector", "status.phase=Running",
		"-o", `jsonpath={range .items[*]}{.metadata.name} {.spec.nodeName} {.status.podIP}{"\n"}{end}`)
	if err != nil {
		return nil, err
	}
	byNode := map[string][]echoPod{}
	for _, ln := range strings.Split(strings.TrimSpace(out), "\n") {
		if f := strings.Fields(ln); len(f) == 3 {
			byNode[f[1]] = append(byNode[f[1]], echoPod{name: f[0], ip: f[2]})
		}
	}
	return byNode, nil
}

// serviceLBIP waits for a LoadBalancer Service's address.
func serviceLBIP(ctx context.Context, k kubectl, name string) (string, error) {
	var ip string
	err := eventually(ctx, 2*time.Minute, 2*time.Second, func(ctx context.Context) error {
		out, err := k.run(ctx, "get", "service", name, "-o", "jsonpath={.status.loadBalancer.ingress[0].ip}")
		if err != nil {
			return err
		}
		if ip = strings.TrimSpace(out); ip == "" {
			return fmt.Errorf("%s has no address yet", name)
		}
		return nil
	})
	return ip, err
}

// httpAnswers GETs url from this machine and checks the body.
func httpAnswers(ctx context.Context, url, want string) error {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer func() { _ = resp.Body.Close() }()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 1<<16))
	if err != nil {
		return err
	}
	if resp.StatusCode != http.StatusOK || !strings.Contains(string(body), want) {
		return fmt.Errorf("GET %s: %s %q", url, resp.Status, body)
	}
	return nil
}

// lbObserved is the load balancer's observed state in terraform's state.
type lbObserved struct {
	VIPHolder string `json:"vip_holder"`
	Backends  []struct {
		Address    string `json:"address"`
		TargetPort int    `json:"target_port"`
		Status     string `json:"status"`
	} `json:"backends"`
	Services []struct {
		Service string `json:"service"`
		Address string `json:"address"`
		Node    string `json:"node"`
	} `json:"services"`
}

// lbState reads kubesmith_loadbalancer.edge from `terraform show -json` after a refresh.
func lbState(ctx context.Context, tf *tfRunner) (lbObserved, error) {
	var st lbObserved
	if _, err := tf.run(ctx, "apply", "-refresh-only", "-auto-approve", "-input=false", "-no-color"); err != nil {
		return st, err
	}
	out, err := tf.run(ctx, "show", "-json")
	if err != nil {
		return st, err
	}
	var doc struct {
		Values struct {
			RootModule struct {
				Resources []struct {
					Address string          `json:"address"`
					Values  json.RawMessage `json:"values"`
				} `json:"resources"`
			} `json:"root_module"`
		} `json:"values"`
	}
	if err := json.Unmarshal([]byte(out[strings.Index(out, "{"):]), &doc); err != nil {
		return st, fmt.Errorf("parsing terraform show -json: %w", err)
	}
	for _, r := range doc.Values.RootModule.Resources {
		if r.Address == "kubesmith_loadbalancer.edge" {
			return st, json.Unmarshal(r.Values, &st)
		}
	}
	return st, fmt.Errorf("kubesmith_loadbalancer.edge is not in the state")
}
