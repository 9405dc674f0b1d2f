terraform {
  required_providers {
    kubesmith = {
      source = "registry.terraform.io/kubesmith/kubesmith"
    }
  }
}

variable "masters" {
  description = "The three masters."
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

variable "lb_hosts" {
  description = "The frontend hosts of the load balancer."
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

variable "taints" {
  description = "Taints of the pool's nodes."
  type = list(object({
    key    = string
    value  = string
    effect = string
  }))
  default = []
}

provider "kubesmith" {
  ssh       = { user = "root", private_key_path = var.ssh_private_key_path }
  artifacts = { bundle = var.bundle }
}

resource "kubesmith_cluster" "e2e" {
  name               = "e2efull"
  kubernetes_version = "1.37.2"
  node_network       = "172.30.0.0/24"
  api_vip            = "172.30.0.250"
  control_plane      = { hosts = var.masters }
  kubeconfig_path    = var.kubeconfig_path
}

resource "kubesmith_nodepool" "workers" {
  name            = "general"
  cluster         = kubesmith_cluster.e2e.join
  credentials     = kubesmith_cluster.e2e.pool_credentials
  hosts           = var.workers
  labels          = var.labels
  taints          = var.taints
  max_unavailable = 1
  drain_timeout   = "2m"
}

resource "kubesmith_loadbalancer" "edge" {
  name          = "edge"
  cluster       = kubesmith_cluster.e2e.join
  credentials   = kubesmith_cluster.e2e.pool_credentials
  service_pools = [{ name = "default", addresses = ["172.30.0.200-172.30.0.210"] }]
  vip           = "172.30.0.249"
  frontends     = [{ port = 80, target_port = 30080, backend_addresses = kubesmith_nodepool.workers.addresses }]
  hosts         = var.lb_hosts
}

output "vip_holder" {
  value = kubesmith_loadbalancer.edge.vip_holder
}
