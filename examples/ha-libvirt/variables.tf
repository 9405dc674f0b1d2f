variable "name" {
  description = "Cluster name; the VMs are ks-<name>-m-1..3 and ks-<name>-workers-1..2."
  type        = string
  default     = "ha"
}

variable "libvirt_uri" {
  description = "Where the VMs are created (qemu:///system, or qemu+ssh://user@host/system)."
  type        = string
  default     = "qemu:///system"
}

variable "ssh_private_key_path" {
  description = "Private SSH key; its public half becomes root's authorized key on the VMs."
  type        = string
  default     = "~/.ssh/id_ed25519"
}

variable "bundle" {
  description = "The artifact bundle built by `make artifacts`."
  type        = string
  default     = "~/.cache/kubesmith/bundle"
}

variable "accelerator" {
  description = "kvm for this example's intended host; auto probes, tcg forces emulation."
  type        = string
  default     = "auto"
  validation {
    condition     = contains(["auto", "kvm", "tcg"], var.accelerator)
    error_message = "accelerator must be auto, kvm or tcg."
  }
}
