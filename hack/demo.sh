#!/usr/bin/env bash
# `make demo`: builds what is missing, then applies the HA example (3 masters behind the API VIP, a pool of 2
# workers, a load balancer with a MetalLB service pool) and shows the nodes and a LoadBalancer Service's answer.
# `make demo-destroy` (demo.sh destroy) removes it all. The demo's state lives in ~/.cache/kubesmith/demo.
#
# Where it runs:
# - libvirt VMs (examples/ha-libvirt, after `make lab`) where KVM really works: the lab's accelerator probe boots a
#   guest kernel under KVM and it finishes booting quickly;
# - container hosts otherwise: privileged systemd containers on an isolated bridge, reached over SSH with pinned
#   host keys exactly like physical hosts, through examples/baremetal and modules/baremetal-cluster. Under TCG
#   emulation 5 VMs do not fit 2 cores (tcg-capacity.md), and without /dev/kvm there is nothing to probe.
# KUBESMITH_DEMO_TARGET=libvirt|hosts skips the choice.
set -euo pipefail
cd "$(dirname "$0")/.."
export GOTOOLCHAIN=local GOFLAGS=-buildvcs=false
cache=${KUBESMITH_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/kubesmith}
work=$cache/demo
start=$(date +%s)
say() { printf '\n\033[1m[%4ss] %s\033[0m\n' "$(( $(date +%s) - start ))" "$*"; }
kslab() { go run ./internal/cmd/kslab "$@"; }

if [[ "${1:-}" == destroy ]]; then
  target=$(cat "$work/target" 2>/dev/null || echo hosts)
  if [[ -d $work/tf ]]; then
    say "terraform destroy ($target)"
    make -s build
    TF_CLI_CONFIG_FILE=$(hack/install-provider.sh bin/terraform-provider-kubesmith "${VERSION:-0.1.0}")
    export TF_CLI_CONFIG_FILE
    # The provider may have been rebuilt since the demo was applied: the lock file only pins this locally built
    # provider, so let init record the binary it uses now.
    rm -f "$work/tf/.terraform.lock.hcl"
    "$(hack/terraform.sh)" -chdir="$work/tf" init -input=false >/dev/null
    "$(hack/terraform.sh)" -chdir="$work/tf" destroy -auto-approve -input=false
  fi
  if [[ $target == hosts ]]; then
    say "removing the container hosts"
    kslab hosts down --prefix demo
    # The lab's dockerd, network and host settings go too, unless other container hosts (a test) still use them.
    if [[ $(kslab hosts list 2>/dev/null | python3 -c 'import json,sys; d=json.load(sys.stdin); print(len(d.get("nodes") or []))' 2>/dev/null || echo 0) == 0 ]]; then
      kslab hosts destroy-all
    else
      say "other container hosts are running: the lab's dockerd stays for them (kslab hosts destroy-all removes it)"
    fi
  else
    say "the libvirt lab (network, pool, base image) stays for the next run; make lab-clean removes it"
  fi
  rm -rf "$work"
  say "demo removed"
  exit 0
fi

say "host packages"; hack/deps.sh
mkdir -p "$work"

# choose sets target (libvirt or hosts) and why. Only a machine whose CPU offers hardware virtualization is worth
# building the lab for; there the lab's self-check runs the real probe (a guest kernel booted under KVM).
choose() {
  if [[ -n ${KUBESMITH_DEMO_TARGET:-} ]]; then
    target=$KUBESMITH_DEMO_TARGET why="KUBESMITH_DEMO_TARGET=$KUBESMITH_DEMO_TARGET"
    [[ $target == libvirt || $target == hosts ]] || { echo "KUBESMITH_DEMO_TARGET must be libvirt or hosts" >&2; exit 2; }
    return
  fi
  if [[ ! -e /dev/kvm ]]; then
    target=hosts why="there is no /dev/kvm, and 5 VMs under TCG emulation do not fit a small host"
    return
  fi
  if ! grep -qw -e vmx -e svm /proc/cpuinfo; then
    local mods=(/sys/module/kvm_*)
    target=hosts why="/dev/kvm exists, but the CPU offers no vmx/svm: it is a paravirtual KVM (${mods[0]##*/}), on which a stock guest kernel crawls, and 5 VMs under TCG do not fit"
    return
  fi
  say "KVM: the CPU has hardware virtualization; building the libvirt lab and probing KVM with a guest kernel"
  make -s lab
  local accel
  accel=$(go run -tags libvirt_dlopen ./internal/cmd/kslab vm check 2>/dev/null | python3 -c 'import json,sys; print(json.load(sys.stdin).get("accelerator",""))')
  if [[ $accel == kvm ]]; then
    target=libvirt why="the accelerator probe booted a guest kernel under KVM"
  else
    target=hosts why="the accelerator probe fell back to ${accel:-TCG} (a guest kernel did not finish booting under KVM in 20 s)"
  fi
}
choose
echo "$target" > "$work/target"
if [[ $target == libvirt ]]; then
  say "using libvirt VMs (examples/ha-libvirt): $why"
else
  say "using container hosts (examples/baremetal): $why"
fi

say "artifact bundle (first run builds everything from the Go module proxy: about 25 min on 2 cores)"
make -s artifacts
bundle=$(go run ./internal/cmd/ksartifacts path)
say "provider: build and install into a local filesystem mirror"
make -s build
TF_CLI_CONFIG_FILE=$(hack/install-provider.sh bin/terraform-provider-kubesmith "${VERSION:-0.1.0}")
export TF_CLI_CONFIG_FILE
TF=$(hack/terraform.sh)
mkdir -p "$work/tf"
if [[ $target == libvirt ]]; then
  [[ $why == KUBESMITH_DEMO_TARGET* ]] && make -s lab
  [[ -f $work/id_ed25519 ]] || ssh-keygen -q -t ed25519 -N '' -C kubesmith-demo -f "$work/id_ed25519"
  cp examples/ha-libvirt/*.tf "$work/tf/"
  sed -i "s#\.\./\.\./modules/libvirt-cluster#$PWD/modules/libvirt-cluster#" "$work/tf/main.tf"
  python3 - "$work/tf/terraform.tfvars.json" "$work/id_ed25519" "$bundle" <<'PY'
import json, sys
json.dump({"name": "demo", "ssh_private_key_path": sys.argv[2], "bundle": sys.argv[3], "accelerator": "auto"},
          open(sys.argv[1], "w"), indent=2)
PY
  what="5 libvirt VMs: 3 masters behind the API VIP, a pool of 2 workers, a MetalLB service pool"
else
  say "container hosts: own dockerd, isolated network, node image"
  kslab hosts setup
  say "5 container hosts: 3 masters, 2 workers"
  kslab hosts up --prefix demo --count 5 --json "$work/hosts.json" >/dev/null
  cp examples/baremetal/*.tf "$work/tf/"
  sed -i "s#\.\./\.\./modules/baremetal-cluster#$PWD/modules/baremetal-cluster#" "$work/tf/main.tf"
  python3 - "$work/hosts.json" "$work/tf/terraform.tfvars.json" "$bundle" <<'PY'
import json, sys
h = json.load(open(sys.argv[1]))
nodes = h["nodes"]
json.dump({
  "masters": [{"name": n["name"], "address": n["address"], "host_public_key": n["host_public_key"]} for n in nodes[:3]],
  "workers": [{"name": n["name"], "address": n["address"], "host_public_key": n["host_public_key"]} for n in nodes[3:]],
  "ssh_private_key_path": h["client_key"],
  "bundle": sys.argv[3],
}, open(sys.argv[2], "w"), indent=2)
PY
  what="3 masters behind the API VIP, a pool of 2 workers, a MetalLB service pool"
fi
say "terraform init"
rm -f "$work/tf/.terraform.lock.hcl" # pins only the locally built provider, which may have been rebuilt
"$TF" -chdir="$work/tf" init -input=false >/dev/null
say "terraform apply: $what (progress below)"
"$TF" -chdir="$work/tf" apply -auto-approve -input=false
kc=$work/tf/kubeconfig
kubectl=$bundle/$(python3 -c '
import json,sys
m=json.load(open(sys.argv[1]+"/manifest.json"))
print([f["path"] for f in m["files"] if f["name"]=="kubectl"][-1])' "$bundle")
say "kubectl get nodes -o wide"
"$kubectl" --kubeconfig "$kc" get nodes -o wide
echo_image=$(python3 -c '
import json,sys
m=json.load(open(sys.argv[1]+"/manifest.json"))
print([f["image"] for f in m["files"] if f["name"]=="echo"][-1])' "$bundle")
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
for _ in 1 2 3; do curl -sS --retry 10 --retry-all-errors --retry-delay 1 --max-time 5 "http://$lb/demo"; done
say "done: KUBECONFIG=$kc; remove it all with 'make demo-destroy'"
