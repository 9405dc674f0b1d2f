resource "kubesmith_cluster" "this" {
  name               = var.name
  kubernetes_version = var.kubernetes_version
  node_network       = var.node_network
  api_vip            = var.api_vip
  pod_cidr           = var.pod_cidr
  service_cidr       = var.service_cidr
  upstream_dns       = var.upstream_dns
  control_plane = {
    hosts = var.masters
  }
  kubeconfig_path = var.kubeconfig_path
}

resource "kubesmith_nodepool" "workers" {
  count           = length(var.workers) > 0 ? 1 : 0
  name            = "workers"
  cluster         = kubesmith_cluster.this.join
  credentials     = kubesmith_cluster.this.pool_credentials
  hosts           = var.workers
  labels          = var.worker_labels
  max_unavailable = 1
  drain_timeout   = "5m"
}

locals {
  frontend_hosts = length(var.frontend_hosts) > 0 ? var.frontend_hosts : var.workers
  load_balancer  = length(var.service_pools) > 0 || length(var.frontends) > 0
}

resource "kubesmith_loadbalancer" "this" {
  count         = local.load_balancer ? 1 : 0
  name          = "edge"
  cluster       = kubesmith_cluster.this.join
  credentials   = kubesmith_cluster.this.pool_credentials
  service_pools = length(var.service_pools) > 0 ? var.service_pools : null
  vip           = length(var.frontends) > 0 ? var.frontend_vip : null
  frontends = length(var.frontends) > 0 ? [for f in var.frontends : {
    port              = f.port
    target_port       = f.target_port
    backend_addresses = kubesmith_nodepool.workers[0].addresses
  }] : null
  hosts = length(var.frontends) > 0 ? local.frontend_hosts : null
}
