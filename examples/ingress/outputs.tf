output "api_endpoint" {
  description = "The Kubernetes API URL through the API VIP."
  value       = kubesmith_cluster.this.api_endpoint
}

output "kubeconfig_path" {
  description = "The admin kubeconfig, if one was written."
  value       = var.kubeconfig_path
}

output "frontend_vip" {
  description = "The HTTP(S) frontend address: point the hostnames at it."
  value       = var.frontend_vip
}

output "frontend_vip_holder" {
  description = "The frontend host holding the VIP at the last refresh."
  value       = kubesmith_loadbalancer.edge.vip_holder
}

output "urls" {
  description = "The Ingress hostnames, reached through the frontend VIP."
  value       = { for k, h in var.hostnames : k => "http://${h}/ (curl -H 'Host: ${h}' http://${var.frontend_vip}/)" }
}

output "nodes" {
  description = "Every node: masters, then workers."
  value       = concat(kubesmith_cluster.this.nodes, kubesmith_nodepool.workers.nodes)
}
