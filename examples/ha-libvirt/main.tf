# The HA topology on libvirt VMs that kubesmith creates: 3 masters behind the API VIP and a pool of 2 workers,
# on the isolated network that `make lab` sets up. This is the KVM path: under TCG emulation (no usable KVM,
# as on a nested PVM host) 5 VMs do not fit 2 cores, so there use examples/baremetal on container hosts, or keep to
# 1 master + 1 worker (what `make e2e-libvirt` runs).
terraform {
  required_version = ">= 1.11.0"
  required_providers {
    kubesmith = {
      source  = "registry.terraform.io/kubesmith/kubesmith"
      version = "~> 0.1"
    }
  }
}

provider "kubesmith" {
  libvirt_uri = var.libvirt_uri
  ssh         = { user = "root", private_key_path = var.ssh_private_key_path }
  artifacts   = { bundle = var.bundle }
}

module "cluster" {
  source            = "../../modules/libvirt-cluster"
  name              = var.name
  api_vip           = "192.168.150.10"
  master_addresses  = ["192.168.150.11", "192.168.150.12", "192.168.150.13"]
  worker_addresses  = ["192.168.150.21", "192.168.150.22"]
  accelerator       = var.accelerator
  master_memory_mib = 2048
  worker_memory_mib = 2048
  service_pools     = [{ name = "default", addresses = ["192.168.150.200-192.168.150.220"] }]
  kubeconfig_path   = "${path.root}/kubeconfig"
}
