#!/bin/sh
# Managed by kubesmith: local changes are overwritten and reported as drift.
# keepalived runs this every 2+1 s. It succeeds while the local kube-apiserver reports ready. /readyz is
# reachable anonymously (authentication-config.yaml); the server certificate is verified against the cluster CA.
exec curl --silent --fail --max-time 2 --output /dev/null \
  --cacert /etc/kubernetes/pki/ca.crt https://127.0.0.1:6443/readyz
