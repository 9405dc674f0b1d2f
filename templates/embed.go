// Package templates holds kubesmith's embedded provisioning assets: systemd units, configuration templates and
// scripts. They are rendered by internal/render with text/template and missingkey=error.
package templates

import "embed"

// FS holds every asset under this directory.
//
//go:embed all:files
var FS embed.FS
