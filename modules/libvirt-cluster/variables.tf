variable "name" {
  description = "Cluster name: 1-32 lower-case letters, digits or '-'. The VMs are named ks-<name>-m-<n> and ks-<name>-workers-<n>."
  type        = string
  validation {
    condition     = can(regex("^[a-z0-9]([-a-z0-9]{0,30}[a-z0-9])?$", var.name))
    error_message = "name must be 1-32 lower-case letters, digits or '-', starting and ending with a letter or digit."
  }
}

variable "kubernetes_version" {
  description = "Kubernetes version to install; it must be in the artifact bundle."
  type        = string
  default     = "1.37.2"
}

variable "network" {
  description = "libvirt network the VMs attach to; `make lab` creates the isolated network kubesmith (192.168.150.0/24)."
  type        = string
  default     = "kubesmith"
}

variable "node_network" {
  description = "CIDR of the libvirt network's range; every address below and the API VIP must be inside it."
  type        = string
  default     = "192.168.150.0/24"
  validation {
    condition     = can(cidrhost(var.node_network, 0))
    error_message = "node_network must be a CIDR such as 192.168.150.0/24."
  }
}

variable "api_vip" {
  description = "Free address in node_network that keepalived moves between the masters."
  type        = string
}

variable "master_addresses" {
  description = "Static addresses of the master VMs: 3 for HA, 1 for development."
  type        = list(string)
  validation {
    condition     = length(var.master_addresses) == 1 || length(var.master_addresses) == 3
    error_message = "Give 3 master addresses (HA) or 1 (development)."
  }
}

variable "worker_addresses" {
  description = "Static addresses of the worker VMs, joined as one kubesmith_nodepool; empty for a control plane only."
  type        = list(string)
  default     = []
}

variable "master_vcpu" {
  description = "Virtual CPUs per master VM. Keep 2 under TCG (no usable KVM) too: a 1-vCPU emulated master cannot keep its apiserver answering once workers join."
  type        = number
  default     = 2
  validation {
    condition     = var.master_vcpu >= 1 && var.master_vcpu <= 64
    error_message = "master_vcpu must be between 1 and 64."
  }
}

variable "master_memory_mib" {
  description = "Memory per master VM in MiB."
  type        = number
  default     = 2048
  validation {
    condition     = var.master_memory_mib >= 1024
    error_message = "A master needs at least 1024 MiB."
  }
}

variable "worker_vcpu" {
  description = "Virtual CPUs per worker VM. Under TCG (no usable KVM) prefer 1: 2-vCPU TCG guests were once seen to lock up with QEMU 7.2, and a worker idles while it joins."
  type        = number
  default     = 2
  validation {
    condition     = var.worker_vcpu >= 1 && var.worker_vcpu <= 64
    error_message = "worker_vcpu must be between 1 and 64."
  }
}

variable "worker_memory_mib" {
  description = "Memory per worker VM in MiB."
  type        = number
  default     = 2048
  validation {
    condition     = var.worker_memory_mib >= 1024
    error_message = "A worker needs at least 1024 MiB."
  }
}

variable "disk_gib" {
  description = "Root disk per VM in GiB (a qcow2 overlay on the base image)."
  type        = number
  default     = 20
  validation {
    condition     = var.disk_gib >= 4
    error_message = "disk_gib must be at least the base image's 4 GiB."
  }
}

variable "base_image" {
  description = "Base image volumes <base>.qcow2/.vmlinuz/.initrd in the kubesmith storage pool (built by `make lab`)."
  type        = string
  default     = "kubesmith-debian12"
}

variable "accelerator" {
  description = "auto (KVM when a probe boots a guest kernel quickly, else TCG), kvm or tcg. Unless kvm, the cluster uses the slow-host tuning."
  type        = string
  default     = "auto"
  validation {
    condition     = contains(["auto", "kvm", "tcg"], var.accelerator)
    error_message = "accelerator must be auto, kvm or tcg."
  }
}

variable "pod_cidr" {
  description = "Pod network; must not overlap node_network or service_cidr."
  type        = string
  default     = "10.244.0.0/16"
}

variable "service_cidr" {
  description = "Service network; must not overlap node_network or pod_cidr."
  type        = string
  default     = "10.96.0.0/12"
}

variable "upstream_dns" {
  description = "Resolvers CoreDNS forwards to; empty for an air-gapped cluster (the lab network is isolated)."
  type        = list(string)
  default     = []
}

variable "kubeconfig_path" {
  description = "File to write the admin kubeconfig to (mode 0600); null to write none."
  type        = string
  default     = null
}

variable "worker_labels" {
  description = "Labels of the worker nodes."
  type        = map(string)
  default     = {}
}

variable "service_pools" {
  description = "MetalLB address pools for Services of type LoadBalancer (CIDRs or FIRST-LAST ranges inside node_network); empty for none."
  type = list(object({
    name      = string
    addresses = list(string)
  }))
  default = []
  validation {
    condition     = alltrue([for p in var.service_pools : length(p.addresses) > 0 && can(regex("^[a-z0-9]([a-z0-9-]{0,30}[a-z0-9])?$", p.name))])
    error_message = "Each service pool needs a DNS-label name and at least one address range."
  }
}

variable "frontend_vip" {
  description = "Address in node_network for the HA TCP frontends (keepalived + HAProxy on the worker VMs); null for none."
  type        = string
  default     = null
}

variable "frontends" {
  description = "TCP ports on frontend_vip forwarded to the workers: port on the VIP and target_port on every worker (for example an ingress NodePort)."
  type = list(object({
    port        = number
    target_port = number
  }))
  default = []
  validation {
    condition     = alltrue([for f in var.frontends : f.port >= 1 && f.port <= 65535 && f.target_port >= 1 && f.target_port <= 65535])
    error_message = "Ports must be between 1 and 65535."
  }
  validation {
    condition     = length(var.frontends) == 0 || (length(var.worker_addresses) > 0 && var.frontend_vip != null)
    error_message = "frontends forward to the workers on frontend_vip: set worker_addresses and frontend_vip too."
  }
}
