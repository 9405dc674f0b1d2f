package render

import "time"

// PathMetricsServerAddon keeps a copy of the metrics-server manifest on masters.
const PathMetricsServerAddon = AddonsDir + "/metrics-server.yaml"

// DefaultMetricResolution is how often metrics-server scrapes the kubelets (the upstream default).
const DefaultMetricResolution = 15 * time.Second

// MetricsServerAddon is the data of addons/metrics-server.yaml.tmpl: metrics-server, which serves the
// metrics.k8s.io API (kubectl top, HorizontalPodAutoscaler). It verifies kubelets' serving certificates with the
// cluster CA and reaches them on their InternalIP.
type MetricsServerAddon struct {
	// Image is the metrics-server image, imported from the bundle.
	Image string
	// ImagePullPolicy is IfNotPresent or Never: nodes never pull.
	ImagePullPolicy string
	// MetricResolution is the scrape interval; metrics-server accepts 10s or more.
	MetricResolution time.Duration
}

// Target implements File.
func (MetricsServerAddon) Target() Target {
	return Target{Template: "addons/metrics-server.yaml.tmpl", Path: PathMetricsServerAddon, Mode: modeConfig}
}

// ControlPlaneTaintKey is the taint the Deployment tolerates, so that it runs on clusters of masters only.
func (MetricsServerAddon) ControlPlaneTaintKey() string { return ControlPlaneTaintKey }

// Validate implements File.
func (a MetricsServerAddon) Validate() error {
	var e errs
	e.image("Image", a.Image)
	e.oneOf("ImagePullPolicy", a.ImagePullPolicy, "IfNotPresent", "Never")
	if a.MetricResolution < 10*time.Second || a.MetricResolution%time.Second != 0 {
		e.addf("MetricResolution %s must be whole seconds, at least 10s", a.MetricResolution)
	}
	return e.join("metrics-server add-on")
}
