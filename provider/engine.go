package provider

import (
	"github.com/kubesmith/terraform-provider-kubesmith/internal/engine"
)

// newRealEngine builds the production engine; libvirtURI is where libvirt machines are created.
func newRealEngine(libvirtURI string) (engine.API, error) {
	return engine.New(engine.Options{LibvirtURI: libvirtURI}), nil
}
