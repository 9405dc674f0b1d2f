variable "name" {
  description = "Cluster name."
  type        = string
  default     = "demo"
}

variable "node_network" {
  description = "The hosts' network."
  type        = string
  default     = "172.30.0.0/24"
}

variable "api_vip" {
  description = "Free address in node_network for the API."
  type        = string
  default     = "172.30.0.250"
}

variable "masters" {
  description = "The three masters: name, address and pinned SSH host key."
  type = list(object({
    name            = string
    address         = string
    host_public_key = string
  }))
}

variable "ssh_private_key_path" {
  description = "Private key that logs in to the hosts as root."
  type        = string
}

variable "bundle" {
  description = "The artifact bundle directory (`make artifacts`)."
  type        = string
  default     = "~/.cache/kubesmith/bundle"
}

variable "workers" {
  description = "The worker hosts (a kubesmith_nodepool)."
  type = list(object({
    name            = string
    address         = string
    host_public_key = string
  }))
  default = []
}

variable "service_pools" {
  description = "MetalLB address pools for Services of type LoadBalancer."
  type = list(object({
    name      = string
    addresses = list(string)
  }))
  default = [{ name = "default", addresses = ["172.30.0.200-172.30.0.210"] }]
}
