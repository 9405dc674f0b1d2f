#!/bin/sh
# Managed by kubesmith: local changes are overwritten and reported as drift.
# keepalived runs this every 2 seconds: the frontend VIP stays on this host only while its HAProxy runs.
exec systemctl is-active --quiet kubesmith-lb-haproxy.service
