# Import by the address of any master. Its host key is checked against the provider's ssh.known_hosts_path ...
terraform import kubesmith_cluster.main 192.168.150.11

# ... or pinned in the ID, after a comma:
terraform import kubesmith_cluster.main '192.168.150.11,ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl'
