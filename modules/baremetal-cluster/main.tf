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
