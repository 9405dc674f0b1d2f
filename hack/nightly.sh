#!/usr/bin/env bash
# `make nightly`: runs every e2e scenario that exists, cleans up after each even when it fails, and writes
# nightly/report.json and nightly/summary.md (per-phase timings, pass/fail, host facts). Exits non-zero when a
# scenario failed. Scenarios not built yet (libvirt, load balancer, upgrade, restore) are listed as not run.
set -uo pipefail
cd "$(dirname "$0")/.."
export GOTOOLCHAIN=local GOFLAGS=-buildvcs=false
out=nightly
rm -rf "$out" && mkdir -p "$out/reports"
export KUBESMITH_E2E_REPORT_DIR=$PWD/$out/reports
make -s artifacts hosts-image build || exit 1
declare -A result
for s in TestClusterHA:e2e-cluster TestNodePool:e2e-pool; do
  test=${s%%:*} name=${s#*:}
  echo "=== nightly: $name"
  if hack/e2e.sh "$test" > "$out/$name.log" 2>&1; then result[$name]=pass; else result[$name]=fail; fi
  echo "    $name: ${result[$name]}"
done
go run ./internal/cmd/kslab hosts destroy-all >/dev/null 2>&1 || true
kvm=tcg; [[ -c /dev/kvm ]] && kvm="kvm device present (usable KVM not probed by this build)"
python3 - "$out" "$(nproc)" "$kvm" "${result[e2e-cluster]}" "${result[e2e-pool]}" <<'PY'
import json, os, sys, glob, datetime
out, cores, kvm, cluster, pool = sys.argv[1:6]
scen = {"e2e-cluster": cluster, "e2e-pool": pool}
reports = {}
for f in glob.glob(os.path.join(out, "reports", "*.json")):
    r = json.load(open(f)); reports[r["scenario"]] = r
doc = {"date": datetime.datetime.utcnow().isoformat() + "Z", "host": {"cores": int(cores), "accelerator": kvm},
       "scenarios": [{"name": n, "result": res, "phases": reports.get(n, {}).get("phases", [])} for n, res in scen.items()],
       "not_run": ["e2e (load balancer)", "e2e-libvirt", "e2e-libvirt-ha", "upgrade", "restore"]}
json.dump(doc, open(os.path.join(out, "report.json"), "w"), indent=2)
with open(os.path.join(out, "summary.md"), "w") as md:
    md.write(f"# kubesmith nightly {doc['date']}\n\nHost: {cores} cores, {kvm}.\n\n")
    for s in doc["scenarios"]:
        md.write(f"## {s['name']}: {s['result']}\n\n| phase | seconds | ok |\n|---|---|---|\n")
        for p in s["phases"]:
            md.write(f"| {p['name']} | {p['seconds']:.1f} | {p['ok']} |\n")
        md.write("\n")
    md.write("Not run (not built yet): " + ", ".join(doc["not_run"]) + "\n")
PY
cat "$out/summary.md"
for r in "${result[@]}"; do [[ $r == pass ]] || exit 1; done
