terraform {
  required_providers {
    kubesmith = {
      source = "registry.terraform.io/kubesmith/kubesmith"
    }
  }
}

variable "masters" {
  description = "The master hosts: name, address and pinned SSH host key."
  type = list(object({
    name            = string
    address         = string
    host_public_key = string
  }))
}

variable "ssh_private_key_path" {
  description = "The SSH key that reaches the hosts as root."
  type        = string
}

variable "bundle" {
  description = "The artifact bundle directory."
  type        = string
}

variable "api_vip" {
  description = "The API VIP."
  type        = string
  default     = "172.30.0.250"
}

variable "kubeconfig_path" {
  description = "Where the admin kubeconfig is written."
  type        = string
}

provider "kubesmith" {
  ssh       = { user = "root", private_key_path = var.ssh_private_key_path }
  artifacts = { bundle = var.bundle }
}

resource "kubesmith_cluster" "e2e" {
  name               = "e2e"
  kubernetes_version = "1.37.2"
  node_network       = "172.30.0.0/24"
  api_vip            = var.api_vip
  pod_cidr           = "10.244.0.0/16"
  service_cidr       = "10.96.0.0/12"
  upstream_dns       = []
  control_plane = {
    hosts = var.masters
  }
  kubeconfig_path = var.kubeconfig_path
}

output "api_endpoint" {
  value = kubesmith_cluster.e2e.api_endpoint
}

output "cluster_uid" {
  value = kubesmith_cluster.e2e.cluster_uid
}
