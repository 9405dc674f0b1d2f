//go:build !(linux && cgo)

package machine

import (
	"errors"
	"runtime"
)

// NewLibvirt reports that this build has no libvirt driver: it needs linux and cgo.
func NewLibvirt(LibvirtOptions) (Driver, error) {
	return nil, errors.New("libvirt machines need a kubesmith provider built for linux with cgo; this build is for " +
		runtime.GOOS + "/" + runtime.GOARCH + " without the libvirt driver. List existing machines under hosts instead")
}
