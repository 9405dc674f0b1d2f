# An admin kubeconfig minted in memory for this run only: never in state or plan files.
ephemeral "kubesmith_kubeconfig" "admin" {
  cluster  = kubesmith_cluster.main.join
  pki      = kubesmith_cluster.main.pki
  validity = "1h"
}

provider "kubernetes" {
  host                   = ephemeral.kubesmith_kubeconfig.admin.host
  cluster_ca_certificate = ephemeral.kubesmith_kubeconfig.admin.cluster_ca_certificate
  client_certificate     = ephemeral.kubesmith_kubeconfig.admin.client_certificate
  client_key             = ephemeral.kubesmith_kubeconfig.admin.client_key
}
