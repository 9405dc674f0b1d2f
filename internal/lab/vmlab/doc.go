// Package vmlab sets up kubesmith's local libvirt lab: the apt packages, virtlogd and libvirtd (started by
// hand when systemd is not PID 1), the isolated network "kubesmith" (192.168.150.0/24, no forwarding, no
// DHCP), the dir storage pool "kubesmith", and the Debian 12 guest base image built from the host's apt
// mirror and uploaded as the volumes kubesmith-debian12.{qcow2,vmlinuz,initrd}. Check boots one VM from the
// image through the libvirt machine driver and reaches it over SSH with a pinned host key; Clean removes
// exactly what Setup created.
//
// The objects and the image follow the contract with internal/machine (notes/MACHINE-CONTRACT.md): the
// image has no cloud-init and no SSH host keys; its kubesmith-seed.service applies the kubesmith/ files of
// the seed ISO (label cidata) at first boot.
//
// The libvirt parts need cgo and Linux (the libvirt_dlopen build tag loads libvirt at run time); elsewhere
// every operation returns ErrUnsupported.
package vmlab
