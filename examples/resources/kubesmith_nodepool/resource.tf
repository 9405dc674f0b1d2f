resource "kubesmith_nodepool" "workers" {
  name        = "general"
  cluster     = kubesmith_cluster.main.join             # non-secret: endpoint, CA, CIDRs, cluster UID
  credentials = kubesmith_cluster.main.pool_credentials # restricted pool-manager identity, not cluster-admin

  hosts = [
    { name = "w1", address = "192.168.150.21", host_public_key = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl" },
    { name = "w2", address = "192.168.150.22", host_public_key = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl" },
  ]

  labels = { tier = "general" }
  taints = [{ key = "dedicated", value = "batch", effect = "NoSchedule" }]

  max_unavailable = 1
  drain_timeout   = "5m"
}

output "worker_addresses" {
  value = kubesmith_nodepool.workers.addresses
}
