variable "name" {
  description = "Cluster name: 1-32 lower-case letters, digits or '-'."
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

variable "node_network" {
  description = "CIDR of the network the hosts live on; the API VIP must be a free address in it."
  type        = string
  validation {
    condition     = can(cidrhost(var.node_network, 0))
    error_message = "node_network must be a CIDR such as 10.0.0.0/24."
  }
}

variable "api_vip" {
  description = "Free address in node_network that keepalived moves between the masters."
  type        = string
}

variable "masters" {
  description = "The control-plane hosts: 3 for HA, 1 for development. host_public_key pins each host's SSH key."
  type = list(object({
    name            = string
    address         = string
    host_public_key = string
  }))
  validation {
    condition     = length(var.masters) == 1 || length(var.masters) == 3
    error_message = "Give 3 masters (HA) or 1 (development)."
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
  description = "Resolvers CoreDNS forwards to; empty for an air-gapped cluster."
  type        = list(string)
  default     = []
}

variable "kubeconfig_path" {
  description = "File to write the admin kubeconfig to (mode 0600); null to write none."
  type        = string
  default     = null
}

variable "workers" {
  description = "Worker hosts, joined as one kubesmith_nodepool; empty for a control plane only."
  type = list(object({
    name            = string
    address         = string
    host_public_key = string
  }))
  default = []
}

variable "worker_labels" {
  description = "Labels of the worker nodes."
  type        = map(string)
  default     = {}
}
