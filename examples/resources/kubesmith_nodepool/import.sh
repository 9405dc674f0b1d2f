# Import by the address of any worker of the pool. Its host key is checked against the provider's
# ssh.known_hosts_path ...
terraform import kubesmith_nodepool.workers 192.168.150.21

# ... or pinned in the ID, after a comma:
terraform import kubesmith_nodepool.workers '192.168.150.21,ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl'
