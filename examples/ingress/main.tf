# An Ingress controller on a kubesmith cluster: Traefik (from the artifact bundle) routes two hostnames to two
# echo Services. Traefik's Service has fixed NodePorts, 30080 (HTTP) and 30443 (HTTPS), and is also of type
# LoadBalancer, so it answers on three paths:
#   - the HA frontend VIP (kubesmith_loadbalancer: keepalived + HAProxy on the frontend hosts, port 80 -> the
#     workers' NodePort 30080, port 443 -> 30443), the address to put in DNS;
#   - an address from the MetalLB service pool;
#   - every node's NodePorts.
# `make e2e-ingress` applies this example on container hosts and checks both hostnames through the frontend VIP.
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

locals {
  # The frontend hosts default to the workers: each runs HAProxy and keepalived next to its kubelet.
  frontend_hosts = length(var.frontend_hosts) > 0 ? var.frontend_hosts : var.workers
}

resource "kubesmith_cluster" "this" {
  name                = var.name
  kubernetes_version  = var.kubernetes_version
  node_network        = var.node_network
  api_vip             = var.api_vip
  control_plane       = { hosts = var.masters }
  masters_schedulable = var.masters_schedulable
  kubeconfig_path     = var.kubeconfig_path

  # MetalLB for the LoadBalancer Service, metrics-server for `kubectl top`.
  addons = var.addons

  # Applied after the built-in add-ons, in order, on every apply.
  manifests = [
    templatefile("${path.module}/traefik.yaml.tftpl", {
      image      = var.traefik_image
      replicas   = var.traefik_replicas
      http_port  = var.http_node_port
      https_port = var.https_node_port
    }),
    templatefile("${path.module}/apps.yaml.tftpl", {
      image = var.echo_image
      hosts = var.hostnames
    }),
  ]
}

resource "kubesmith_nodepool" "workers" {
  name            = "workers"
  cluster         = kubesmith_cluster.this.join
  credentials     = kubesmith_cluster.this.pool_credentials
  hosts           = var.workers
  labels          = { "ingress" = "true" }
  max_unavailable = 1
  drain_timeout   = "5m"
}

resource "kubesmith_loadbalancer" "edge" {
  name        = "edge"
  cluster     = kubesmith_cluster.this.join
  credentials = kubesmith_cluster.this.pool_credentials

  service_pools = [
    { name = "default", addresses = var.service_pool },
  ]

  vip = var.frontend_vip
  frontends = [
    { port = 80, target_port = var.http_node_port, backend_addresses = kubesmith_nodepool.workers.addresses },
    { port = 443, target_port = var.https_node_port, backend_addresses = kubesmith_nodepool.workers.addresses },
  ]
  hosts = local.frontend_hosts
}
