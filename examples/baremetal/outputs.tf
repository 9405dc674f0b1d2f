output "api_endpoint" {
  description = "The API URL through the VIP."
  value       = module.cluster.api_endpoint
}

output "nodes" {
  description = "The nodes."
  value       = module.cluster.nodes
}

output "kubeconfig_path" {
  description = "The admin kubeconfig."
  value       = module.cluster.kubeconfig_path
}

output "load_balancer" {
  description = "Services holding addresses from the pools, and the nodes announcing them."
  value       = module.cluster.load_balancer
}
