resource "kubesmith_loadbalancer" "edge" {
  name        = "edge"
  cluster     = kubesmith_cluster.main.join
  credentials = kubesmith_cluster.main.pool_credentials

  # Services of type LoadBalancer get an address from these pools (MetalLB, L2 mode).
  service_pools = [
    { name = "default", addresses = ["192.168.150.200-192.168.150.220"] },
  ]

  # Optional HA TCP frontends: a second VIP held by keepalived on the first healthy host, and HAProxy forwarding
  # each port to health-checked backends, here an ingress controller's NodePorts on the workers.
  vip = "192.168.150.20"
  frontends = [
    { port = 80, target_port = 30080, backend_addresses = kubesmith_nodepool.workers.addresses },
    { port = 443, target_port = 30443, backend_addresses = kubesmith_nodepool.workers.addresses },
  ]
  hosts = [
    { name = "lb1", address = "192.168.150.31", host_public_key = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl" },
    { name = "lb2", address = "192.168.150.32", host_public_key = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl" },
  ]
}

output "frontend_vip_holder" {
  value = kubesmith_loadbalancer.edge.vip_holder
}
