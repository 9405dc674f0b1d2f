output "api_endpoint" {
  description = "The API URL, through the VIP."
  value       = kubesmith_cluster.this.api_endpoint
}

output "ca_certificate" {
  description = "The cluster CA certificate (PEM)."
  value       = kubesmith_cluster.this.ca_certificate
}

output "nodes" {
  description = "Every node (masters, then workers) with its address, role and readiness."
  value       = concat(kubesmith_cluster.this.nodes, flatten(kubesmith_nodepool.workers[*].nodes))
}

output "kubeconfig_path" {
  description = "Where the admin kubeconfig was written, if anywhere."
  value       = var.kubeconfig_path
}

output "join" {
  description = "Non-secret join information for kubesmith_nodepool and kubesmith_loadbalancer."
  value       = kubesmith_cluster.this.join
}

output "pool_credentials" {
  description = "Restricted credentials for node pools and load balancers (not cluster-admin)."
  value       = kubesmith_cluster.this.pool_credentials
  sensitive   = true
}

output "load_balancer" {
  description = "The load balancer, when service_pools or frontends are set: the frontend VIP holder, backend health and the Services holding pool addresses."
  value = local.load_balancer ? {
    vip_holder = kubesmith_loadbalancer.this[0].vip_holder
    backends   = kubesmith_loadbalancer.this[0].backends
    services   = kubesmith_loadbalancer.this[0].services
  } : null
}

output "machines" {
  description = "The VMs kubesmith created: always empty here, since the hosts already exist (the same output as modules/libvirt-cluster)."
  value       = concat(kubesmith_cluster.this.machines, flatten(kubesmith_nodepool.workers[*].machines))
}
