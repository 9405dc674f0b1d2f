# An HA cluster on hosts you already have, reached over SSH. `make demo` applies this example on container hosts
# (privileged systemd containers that kubesmith treats exactly like physical hosts) when KVM is not usable.
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
  ssh       = { user = "root", private_key_path = var.ssh_private_key_path }
  artifacts = { bundle = var.bundle }
}

module "cluster" {
  source          = "../../modules/baremetal-cluster"
  name            = var.name
  node_network    = var.node_network
  api_vip         = var.api_vip
  masters         = var.masters
  workers         = var.workers
  service_pools   = var.service_pools
  kubeconfig_path = "${path.root}/kubeconfig"
}
