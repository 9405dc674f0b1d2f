terraform {
  required_providers {
    kubesmith = {
      source = "registry.terraform.io/kubesmith/kubesmith"
    }
  }
}

variable "libvirt_uri" {
  description = "libvirt connection URI where kubesmith creates the VMs."
  type        = string
  default     = "qemu:///system"
}

variable "ssh_private_key_path" {
  description = "Private key whose public half becomes root's authorized key on the VMs."
  type        = string
}

variable "bundle" {
  description = "The artifact bundle directory."
  type        = string
}

variable "kubeconfig_path" {
  description = "Where the admin kubeconfig is written."
  type        = string
}

variable "masters" {
  description = "Static addresses of the master VMs (1 or 3) on the kubesmith network."
  type        = list(string)
}

variable "workers" {
  description = "Static addresses of the worker VMs."
  type        = list(string)
}

variable "master_vcpu" {
  description = "vCPUs of the master VM: 2 (under TCG one vCPU cannot serve the apiserver once a worker joins)."
  type        = number
  default     = 2
}

variable "worker_vcpu" {
  description = "vCPUs per worker VM: 2 under KVM; 1 under TCG, where 2-vCPU guests were seen to lock up (QEMU 7.2)."
  type        = number
  default     = 2
}

variable "master_memory_mib" {
  description = "Memory per master VM."
  type        = number
  default     = 2048
}

variable "worker_memory_mib" {
  description = "Memory per worker VM."
  type        = number
  default     = 1536
}

provider "kubesmith" {
  libvirt_uri = var.libvirt_uri
  ssh         = { user = "root", private_key_path = var.ssh_private_key_path }
  artifacts   = { bundle = var.bundle }
}

resource "kubesmith_cluster" "e2e" {
  name               = "e2elv"
  kubernetes_version = "1.37.2"
  node_network       = "192.168.150.0/24"
  api_vip            = "192.168.150.10"
  control_plane = {
    libvirt = {
      count      = length(var.masters)
      network    = "kubesmith"
      addresses  = var.masters
      vcpu       = var.master_vcpu
      memory_mib = var.master_memory_mib
      disk_gib   = 10
    }
  }
  # Under TCG every image import costs minutes: only what the checks need (CoreDNS is built in).
  addons          = []
  kubeconfig_path = var.kubeconfig_path
  timeouts        = { create = "75m", update = "75m", delete = "20m" }
}

resource "kubesmith_nodepool" "workers" {
  name        = "w"
  cluster     = kubesmith_cluster.e2e.join
  credentials = kubesmith_cluster.e2e.pool_credentials
  libvirt = {
    count      = length(var.workers)
    network    = "kubesmith"
    addresses  = var.workers
    vcpu       = var.worker_vcpu
    memory_mib = var.worker_memory_mib
    disk_gib   = 10
  }
  drain_timeout = "3m"
  timeouts      = { create = "60m", update = "60m", delete = "20m" }
}

output "machines" {
  description = "The VMs kubesmith created."
  value       = concat(kubesmith_cluster.e2e.machines, kubesmith_nodepool.workers.machines)
}
