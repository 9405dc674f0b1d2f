//go:build !(linux && cgo)

package vmlab

import "context"

// SetupResult is what Setup did; see the Linux implementation.
type SetupResult struct{}

// CleanOptions says what Clean removes besides the libvirt objects.
type CleanOptions struct {
	// Cache also removes the image and .deb caches.
	Cache bool
}

// Setup returns ErrUnsupported: the lab needs Linux and cgo.
func (l *Lab) Setup(context.Context) (*SetupResult, error) { return nil, ErrUnsupported }

// Clean returns ErrUnsupported: the lab needs Linux and cgo.
func (l *Lab) Clean(context.Context, CleanOptions) error { return ErrUnsupported }
