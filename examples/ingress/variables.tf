variable "name" {
  description = "Cluster name."
  type        = string
  default     = "ingress"
}

variable "kubernetes_version" {
  description = "Kubernetes version to install; it must be in the artifact bundle."
  type        = string
  default     = "1.37.2"
}

variable "node_network" {
  description = "The hosts' network; the VIPs and the service pool are free addresses in it."
  type        = string
  default     = "172.30.0.0/24"
}

variable "api_vip" {
  description = "Free address in node_network for the Kubernetes API."
  type        = string
}

variable "frontend_vip" {
  description = "Free address in node_network for the HTTP(S) frontend; point the hostnames' DNS records at it."
  type        = string
}

variable "service_pool" {
  description = "MetalLB addresses (CIDRs or FIRST-LAST ranges in node_network) for LoadBalancer Services."
  type        = list(string)
}

variable "masters" {
  description = "The control-plane hosts (1 or 3): name, address and pinned SSH host key."
  type = list(object({
    name            = string
    address         = string
    host_public_key = string
  }))
}

variable "addons" {
  description = "Built-in add-ons: metallb (the service pool needs it) and metrics-server (kubectl top)."
  type        = list(string)
  default     = ["metallb", "metrics-server"]
  validation {
    condition     = contains(var.addons, "metallb")
    error_message = "The load balancer's service pool needs the metallb add-on."
  }
}

variable "masters_schedulable" {
  description = "Let ordinary workloads run on the masters too."
  type        = bool
  default     = false
}

variable "workers" {
  description = "The worker hosts; Traefik's NodePorts on them are the frontend's backends."
  type = list(object({
    name            = string
    address         = string
    host_public_key = string
  }))
  validation {
    condition     = length(var.workers) >= 1
    error_message = "Give at least one worker (two for HA)."
  }
}

variable "frontend_hosts" {
  description = "Hosts that run the frontend (HAProxy and keepalived installed); empty means the workers."
  type = list(object({
    name            = string
    address         = string
    host_public_key = string
  }))
  default = []
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

variable "kubeconfig_path" {
  description = "File to write the admin kubeconfig to (mode 0600)."
  type        = string
  default     = null
}

variable "traefik_image" {
  description = "Traefik image; `make artifacts-ingress` builds this one into the bundle, which imports it on every node."
  type        = string
  default     = "docker.io/library/traefik:v3.6.12"
}

variable "traefik_replicas" {
  description = "Traefik replicas, spread over the nodes."
  type        = number
  default     = 2
}

variable "echo_image" {
  description = "The echo server image from the bundle (listens on 8080, answers host=<pod> ... path=<path>)."
  type        = string
  default     = "kubesmith.invalid/echo:v1.0.0"
}

variable "http_node_port" {
  description = "Traefik's fixed HTTP NodePort (the frontend's port 80 backend)."
  type        = number
  default     = 30080
}

variable "https_node_port" {
  description = "Traefik's fixed HTTPS NodePort (the frontend's port 443 backend)."
  type        = number
  default     = 30443
}

variable "hostnames" {
  description = "Ingress hostnames, each routed to its own echo Deployment and Service named echo-<key>."
  type        = map(string)
  default = {
    alpha = "alpha.example.test"
    beta  = "beta.example.test"
  }
  validation {
    condition     = alltrue([for k, h in var.hostnames : can(regex("^[a-z0-9]([-a-z0-9]{0,20}[a-z0-9])?$", k)) && can(regex("^[a-z0-9.-]+$", h))])
    error_message = "Keys must be short DNS labels and values host names."
  }
}
