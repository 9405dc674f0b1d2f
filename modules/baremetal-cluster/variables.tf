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
  description = "Address in node_network for the HA TCP frontends (keepalived + HAProxy on frontend_hosts); null for none."
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
    condition     = length(var.frontends) == 0 || (length(var.workers) > 0 && var.frontend_vip != null)
    error_message = "frontends forward to the workers on frontend_vip: set workers and frontend_vip too."
  }
}

variable "frontend_hosts" {
  description = "Hosts that run the frontends (two for HA); empty to run them on the workers."
  type = list(object({
    name            = string
    address         = string
    host_public_key = string
  }))
  default = []
}
