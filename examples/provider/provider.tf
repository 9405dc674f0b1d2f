terraform {
  # 1.10 for the kubesmith_kubeconfig ephemeral resource.
  required_version = ">= 1.10"

  required_providers {
    kubesmith = {
      # Always the full address: under OpenTofu the short form would resolve to another registry.
      source = "registry.terraform.io/kubesmith/kubesmith"
    }
  }
}

provider "kubesmith" {
  # Binaries and images come only from here (checksummed); nodes never pull from the internet.
  artifacts = {
    bundle = "~/.cache/kubesmith/bundle" # or: mirror = "http://10.0.0.5:8080/kubesmith"
  }

  ssh = {
    user             = "root"
    private_key_path = "~/.ssh/id_ed25519"
    # Or a key that never touches disk: private_key = var.ssh_private_key
    # Hosts without a pinned host_public_key are checked against this file:
    # known_hosts_path = "~/.ssh/known_hosts"
  }
}
