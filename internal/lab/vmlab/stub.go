//go:build !(linux && cgo)

package vmlab

import "context"

// Setup returns ErrUnsupported: the lab needs Linux and cgo.
func (l *Lab) Setup(context.Context) (*SetupResult, error) { return nil, ErrUnsupported }

// Check returns ErrUnsupported: the lab needs Linux and cgo.
func (l *Lab) Check(context.Context, CheckOptions) (*CheckResult, error) { return nil, ErrUnsupported }

// Clean returns ErrUnsupported: the lab needs Linux and cgo.
func (l *Lab) Clean(context.Context, CleanOptions) error { return ErrUnsupported }
