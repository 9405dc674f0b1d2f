// Package machine provides the machines a cluster runs on, behind one Driver interface:
//
//   - Baremetal: static hosts that exist already. Ensure checks that each answers SSH with its expected host key
//     (a TCP dial and an SSH key exchange; no session, no command).
//   - Libvirt: VMs that kubesmith creates through libvirt (a qcow2 overlay on the base image, a NoCloud seed ISO
//     built in Go and uploaded through a libvirt stream, a host key generated here and pinned, direct kernel
//     boot). It needs cgo on linux and the libvirt_dlopen build tag; elsewhere NewLibvirt returns a clear error.
//
// The package knows no Kubernetes and runs no SSH commands (DESIGN §2).
package machine
