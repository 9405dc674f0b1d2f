#!/usr/bin/env bash
# `make demo`: builds what is missing, then applies the HA example (3 masters behind the API VIP, a pool of 2
# workers, a load balancer with a MetalLB service pool) and shows the nodes and a LoadBalancer Service's answer.
# `make demo-destroy` (demo.sh destroy) removes it all. The demo's state lives in ~/.cache/kubesmith/demo.
#
# Where KVM really works, the HA topology belongs on libvirt VMs (examples/ha-libvirt, `make lab` first); the demo
# does not switch to it by itself yet. On this kind of machine (nested /dev/kvm, TCG only) 5 VMs do not fit in 2
# cores anyway. So the demo uses container hosts: privileged systemd containers on an isolated bridge, reached over
# SSH with pinned host keys, exactly like physical hosts, through examples/baremetal and modules/baremetal-cluster.
set -euo pipefail
cd "$(dirname "$0")/.."
export GOTOOLCHAIN=local GOFLAGS=-buildvcs=false
cache=${KUBESMITH_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/kubesmith}
work=$cache/demo
start=$(date +%s)
say() { printf '\n\033[1m[%4ss] %s\033[0m\n' "$(( $(date +%s) - start ))" "$*"; }
kslab() { go run ./internal/cmd/kslab "$@"; }

if [[ "${1:-}" == destroy ]]; then
  if [[ -d $work/tf ]]; then
    say "terraform destroy"
    make -s build
    TF_CLI_CONFIG_FILE=$(hack/install-provider.sh bin/terraform-provider-kubesmith "${VERSION:-0.1.0}")
    export TF_CLI_CONFIG_FILE
    # The provider may have been rebuilt since the demo was applied: the lock file only pins this locally built
    # provider, so let init record the binary it uses now.
    rm -f "$work/tf/.terraform.lock.hcl"
    "$(hack/terraform.sh)" -chdir="$work/tf" init -input=false >/dev/null
    "$(hack/terraform.sh)" -chdir="$work/tf" destroy -auto-approve -input=false
  fi
  say "removing the container hosts"
  kslab hosts down --prefix demo
  # The lab's dockerd, network and host settings go too, unless other container hosts (a test) still use them.
  if [[ $(kslab hosts list 2>/dev/null | python3 -c 'import json,sys; d=json.load(sys.stdin); print(len(d.get("nodes") or []))' 2>/dev/null || echo 0) == 0 ]]; then
    kslab hosts destroy-all
  else
    say "other container hosts are running: the lab's dockerd stays for them (kslab hosts destroy-all removes it)"
  fi
  rm -rf "$work"
  say "demo removed"
  exit 0
fi

say "host packages"; hack/deps.sh
if [[ -e /dev/kvm ]]; then
  say "KVM: /dev/kvm exists, but this build runs the HA demo on container hosts (see the top of hack/demo.sh)"
else
  say "KVM: not available; using container hosts"
fi
say "artifact bundle (first run builds everything from the Go module proxy: about 25 min on 2 cores)"
make -s artifacts
say "container hosts: own dockerd, isolated network, node image"
kslab hosts setup
say "provider: build and install into a local filesystem mirror"
make -s build
TF_CLI_CONFIG_FILE=$(hack/install-provider.sh bin/terraform-provider-kubesmith "${VERSION:-0.1.0}")
export TF_CLI_CONFIG_FILE
TF=$(hack/terraform.sh)
say "5 container hosts: 3 masters, 2 workers"
mkdir -p "$work"
kslab hosts up --prefix demo --count 5 --json "$work/hosts.json" >/dev/null
mkdir -p "$work/tf"
cp examples/baremetal/*.tf "$work/tf/"
sed -i "s#\.\./\.\./modules/baremetal-cluster#$PWD/modules/baremetal-cluster#" "$work/tf/main.tf"
python3 - "$work/hosts.json" "$work/tf/terraform.tfvars.json" <<'PY'
import json, sys
h = json.load(open(sys.argv[1]))
nodes = h["nodes"]
json.dump({
  "masters": [{"name": n["name"], "address": n["address"], "host_public_key": n["host_public_key"]} for n in nodes[:3]],
  "workers": [{"name": n["name"], "address": n["address"], "host_public_key": n["host_public_key"]} for n in nodes[3:]],
  "ssh_private_key_path": h["client_key"],
}, open(sys.argv[2], "w"), indent=2)
PY
say "terraform init"
rm -f "$work/tf/.terraform.lock.hcl" # pins only the locally built provider, which may have been rebuilt
"$TF" -chdir="$work/tf" init -input=false >/dev/null
say "terraform apply: 3 masters behind the API VIP, a pool of 2 workers, a MetalLB service pool (progress below)"
"$TF" -chdir="$work/tf" apply -auto-approve -input=false
kc=$work/tf/kubeconfig
kubectl=$(go run ./internal/cmd/ksartifacts path)/$(python3 -c '
import json,sys
m=json.load(open(sys.argv[1]+"/manifest.json"))
print([f["path"] for f in m["files"] if f["name"]=="kubectl"][-1])' "$(go run ./internal/cmd/ksartifacts path)")
say "kubectl get nodes -o wide"
"$kubectl" --kubeconfig "$kc" get nodes -o wide
echo_image=$(python3 -c '
import json,sys
m=json.load(open(sys.argv[1]+"/manifest.json"))
print([f["image"] for f in m["files"] if f["name"]=="echo"][-1])' "$(go run ./internal/cmd/ksartifacts path)")
say "an echo Deployment and a LoadBalancer Service (MetalLB, from the demo's service pool)"
"$kubectl" --kubeconfig "$kc" apply -f - <<YAML
apiVersion: apps/v1
kind: Deployment
metadata: {name: echo, namespace: default}
spec:
  replicas: 2
  selector: {matchLabels: {app: echo}}
  template:
    metadata: {labels: {app: echo}}
    spec:
      containers:
      - name: echo
        image: $echo_image
        imagePullPolicy: Never
        env: [{name: POD_IP, valueFrom: {fieldRef: {fieldPath: status.podIP}}}]
        ports: [{containerPort: 8080}]
---
apiVersion: v1
kind: Service
metadata: {name: echo, namespace: default}
spec:
  type: LoadBalancer
  selector: {app: echo}
  ports: [{port: 80, targetPort: 8080}]
YAML
"$kubectl" --kubeconfig "$kc" rollout status deployment/echo --timeout=180s
for _ in $(seq 60); do
  lb=$("$kubectl" --kubeconfig "$kc" get service echo -o jsonpath='{.status.loadBalancer.ingress[0].ip}')
  [[ -n $lb ]] && break
  sleep 2
done
[[ -n $lb ]] || { echo "the echo Service got no LoadBalancer address" >&2; exit 1; }
"$kubectl" --kubeconfig "$kc" get service echo -o wide
say "the LoadBalancer Service answers (http://$lb/)"
for i in 1 2 3; do curl -sS --retry 10 --retry-all-errors --retry-delay 1 --max-time 5 "http://$lb/demo"; done
say "done: KUBECONFIG=$kc; remove it all with 'make demo-destroy'"
