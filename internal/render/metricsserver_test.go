package render

import (
	"slices"
	"strings"
	"testing"

	"sigs.k8s.io/yaml"
)

// TestMetricsServerVerifiesKubelets checks the security-relevant parts of the metrics-server Deployment: kubelet
// serving certificates are verified with the cluster CA from the kube-root-ca.crt ConfigMap, and kubelets are
// reached on their InternalIP (the address their certificates name).
func TestMetricsServerVerifiesKubelets(t *testing.T) {
	r, err := RenderFile(MetricsServerAddon{
		Image: "registry.k8s.io/metrics-server/metrics-server:v0.9.0", ImagePullPolicy: "Never", MetricResolution: DefaultMetricResolution,
	})
	if err != nil {
		t.Fatal(err)
	}
	type container struct {
		Image           string   `json:"image"`
		ImagePullPolicy string   `json:"imagePullPolicy"`
		Args            []string `json:"args"`
		VolumeMounts    []struct {
			Name      string `json:"name"`
			MountPath string `json:"mountPath"`
		} `json:"volumeMounts"`
	}
	type object struct {
		Kind     string `json:"kind"`
		Metadata struct {
			Name string `json:"name"`
		} `json:"metadata"`
		Spec struct {
			Template struct {
				Spec struct {
					Containers []container `json:"containers"`
					Volumes    []struct {
						Name      string `json:"name"`
						ConfigMap *struct {
							Name string `json:"name"`
						} `json:"configMap"`
					} `json:"volumes"`
				} `json:"spec"`
			} `json:"template"`
			Service *struct {
				Name string `json:"name"`
			} `json:"service"`
		} `json:"spec"`
	}
	kinds := map[string]object{}
	for _, d := range splitYAML(r.Data) {
		var o object
		if err := yaml.Unmarshal(d, &o); err != nil {
			t.Fatal(err)
		}
		if o.Kind != "" {
			kinds[o.Kind+"/"+o.Metadata.Name] = o
		}
	}
	dep, ok := kinds["Deployment/metrics-server"]
	if !ok || len(dep.Spec.Template.Spec.Containers) != 1 {
		t.Fatalf("no metrics-server Deployment with one container in:\n%s", r.Data)
	}
	c := dep.Spec.Template.Spec.Containers[0]
	if c.Image != "registry.k8s.io/metrics-server/metrics-server:v0.9.0" || c.ImagePullPolicy != "Never" {
		t.Errorf("image %s (%s), want the bundle's image, never pulled", c.Image, c.ImagePullPolicy)
	}
	for _, a := range c.Args {
		if strings.HasPrefix(a, "--kubelet-insecure-tls") {
			t.Errorf("argument %s turns off kubelet certificate verification", a)
		}
	}
	if !slices.Contains(c.Args, "--kubelet-preferred-address-types=InternalIP") {
		t.Errorf("args %v: kubelets must be reached on their InternalIP only", c.Args)
	}
	var caFile string
	for _, a := range c.Args {
		if v, ok := strings.CutPrefix(a, "--kubelet-certificate-authority="); ok {
			caFile = v
		}
	}
	if caFile == "" {
		t.Fatalf("args %v: no --kubelet-certificate-authority", c.Args)
	}
	// The CA file must come from a mount of the kube-root-ca.crt ConfigMap.
	var fromRootCA bool
	for _, m := range c.VolumeMounts {
		if !strings.HasPrefix(caFile, strings.TrimSuffix(m.MountPath, "/")+"/") {
			continue
		}
		for _, v := range dep.Spec.Template.Spec.Volumes {
			if v.Name == m.Name && v.ConfigMap != nil && v.ConfigMap.Name == "kube-root-ca.crt" {
				fromRootCA = true
			}
		}
	}
	if !fromRootCA {
		t.Errorf("kubelet CA %s is not mounted from the kube-root-ca.crt ConfigMap", caFile)
	}
	api, ok := kinds["APIService/v1beta1.metrics.k8s.io"]
	if !ok || api.Spec.Service == nil || api.Spec.Service.Name != "metrics-server" {
		t.Errorf("no APIService v1beta1.metrics.k8s.io backed by the metrics-server Service")
	}
	for _, k := range []string{
		"Service/metrics-server", "ServiceAccount/metrics-server", "ClusterRole/system:metrics-server",
		"ClusterRoleBinding/system:metrics-server", "ClusterRoleBinding/metrics-server:system:auth-delegator",
		"RoleBinding/metrics-server-auth-reader", "ClusterRole/system:aggregated-metrics-reader",
	} {
		if _, ok := kinds[k]; !ok {
			t.Errorf("manifest has no %s", k)
		}
	}
}
