resource "kubesmith_cluster" "main" {
  name               = "demo"
  kubernetes_version = "1.37.2"
  node_network       = "192.168.150.0/24" # every address below must be inside it
  api_vip            = "192.168.150.10"   # keepalived moves it between the masters
  pod_cidr           = "10.244.0.0/16"
  service_cidr       = "10.96.0.0/12"
  upstream_dns       = [] # empty: CoreDNS forwards nowhere (air gap)

  control_plane = {
    # Host keys are pinned; collect them out of band, for example with ssh-keyscan from a trusted network.
    hosts = [
      { name = "m1", address = "192.168.150.11", host_public_key = trimspace(file("${path.module}/host-keys/m1.pub")) },
      { name = "m2", address = "192.168.150.12", host_public_key = trimspace(file("${path.module}/host-keys/m2.pub")) },
      { name = "m3", address = "192.168.150.13", host_public_key = trimspace(file("${path.module}/host-keys/m3.pub")) },
    ]
  }

  # Optional: also write an admin kubeconfig (mode 0600) after each apply. Only the path is kept in state.
  kubeconfig_path = pathexpand("~/.kube/kubesmith-demo")

  timeouts = {
    create = "30m"
    update = "60m"
    delete = "15m"
  }
}

output "api_endpoint" {
  value = kubesmith_cluster.main.api_endpoint
}

output "certificates_expire" {
  value = kubesmith_cluster.main.certificates_expire
}
