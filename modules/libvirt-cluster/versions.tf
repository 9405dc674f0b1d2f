terraform {
  required_version = ">= 1.11.0"
  required_providers {
    kubesmith = {
      source  = "registry.terraform.io/kubesmith/kubesmith"
      version = "~> 0.1"
    }
  }
}
