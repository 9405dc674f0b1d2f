resource "kubesmith_cluster" "this" {
  name               = var.name
  kubernetes_version = var.kubernetes_version
  node_network       = var.node_network
  api_vip            = var.api_vip
  pod_cidr           = var.pod_cidr
  service_cidr       = var.service_cidr
  upstream_dns       = var.upstream_dns
  control_plane = {
    libvirt = {
      count       = length(var.master_addresses)
      network     = var.network
      addresses   = var.master_addresses
      vcpu        = var.master_vcpu
      memory_mib  = var.master_memory_mib
      disk_gib    = var.disk_gib
      base_image  = var.base_image
      accelerator = var.accelerator
    }
  }
  kubeconfig_path = var.kubeconfig_path
}

resource "kubesmith_nodepool" "workers" {
  count       = length(var.worker_addresses) > 0 ? 1 : 0
  name        = "workers"
  cluster     = kubesmith_cluster.this.join
  credentials = kubesmith_cluster.this.pool_credentials
  libvirt = {
    count       = length(var.worker_addresses)
    network     = var.network
    addresses   = var.worker_addresses
    vcpu        = var.worker_vcpu
    memory_mib  = var.worker_memory_mib
    disk_gib    = var.disk_gib
    base_image  = var.base_image
    accelerator = var.accelerator
  }
  labels          = var.worker_labels
  max_unavailable = 1
  drain_timeout   = "5m"
}

locals {
  load_balancer = length(var.service_pools) > 0 || length(var.frontends) > 0
  # The frontends run on the worker VMs, reached with the host keys kubesmith generated for them.
  worker_hosts = [for m in flatten(kubesmith_nodepool.workers[*].machines) : {
    name = m.name, address = m.address, host_public_key = m.host_public_key
  }]
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
  hosts = length(var.frontends) > 0 ? local.worker_hosts : null
}
