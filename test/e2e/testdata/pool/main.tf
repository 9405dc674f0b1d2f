terraform {
  required_providers {
    kubesmith = {
      source = "registry.terraform.io/kubesmith/kubesmith"
    }
  }
}

variable "masters" {
  description = "The single (development) master."
  type = list(object({
    name            = string
    address         = string
    host_public_key = string
  }))
}

variable "workers" {
  description = "The pool's hosts."
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

variable "kubeconfig_path" {
  description = "Where the admin kubeconfig is written."
  type        = string
}

variable "labels" {
  description = "Labels of the pool's nodes."
  type        = map(string)
  default     = { tier = "general" }
}

provider "kubesmith" {
  ssh       = { user = "root", private_key_path = var.ssh_private_key_path }
  artifacts = { bundle = var.bundle }
}

resource "kubesmith_cluster" "e2e" {
  name               = "e2epool"
  kubernetes_version = "1.37.2"
  node_network       = "172.30.0.0/24"
  api_vip            = "172.30.0.251"
  control_plane      = { hosts = var.masters }
  kubeconfig_path    = var.kubeconfig_path
}

resource "kubesmith_nodepool" "workers" {
  name            = "general"
  cluster         = kubesmith_cluster.e2e.join
  credentials     = kubesmith_cluster.e2e.pool_credentials
  hosts           = var.workers
  labels          = var.labels
  max_unavailable = 1
  drain_timeout   = "2m"
}
