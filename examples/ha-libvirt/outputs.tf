output "api_endpoint" {
  description = "The API URL, through the VIP."
  value       = module.cluster.api_endpoint
}

output "kubeconfig_path" {
  description = "The admin kubeconfig written by the apply."
  value       = module.cluster.kubeconfig_path
}

output "nodes" {
  description = "Every node with its address, role and readiness."
  value       = module.cluster.nodes
}

output "machines" {
  description = "The VMs kubesmith created, with their libvirt domain UUIDs and pinned SSH host keys."
  value       = module.cluster.machines
}
