#!/usr/bin/env bash
# `make nightly`: runs every e2e scenario that exists, cleans up after each even when it fails, and writes
# nightly/report.json and nightly/summary.md (per-phase timings, pass/fail, host facts). Exits non-zero when a
# scenario failed. Scenarios not built yet are listed as not run.
#
# A scenario is "GoTestName:make-target:report-name" (the report name is what the test passes to newTimings);
# add new ones to the list below.
set -uo pipefail
cd "$(dirname "$0")/.."
export GOTOOLCHAIN=local GOFLAGS=-buildvcs=false
scenarios=(
  TestClusterHA:e2e-cluster:e2e-cluster
  TestNodePool:e2e-pool:e2e-pool
  TestFullTopology:e2e:e2e-full
  TestIngress:e2e-ingress:e2e-ingress
  TestLibvirt:e2e-libvirt:e2e-libvirt
  TestLibvirtHA:e2e-libvirt-ha:e2e-libvirt-ha
)
not_built=(upgrade restore)
out=nightly
rm -rf "$out" && mkdir -p "$out/reports"
export KUBESMITH_E2E_REPORT_DIR=$PWD/$out/reports
make -s artifacts-ingress hosts-image lab build || exit 1
: > "$out/results.txt"
failed=0
for s in "${scenarios[@]}"; do
  IFS=: read -r test name report <<<"$s"
  echo "=== nightly: $name"
  if hack/e2e.sh "$test" > "$out/$name.log" 2>&1; then r=pass; else r=fail; failed=1; fi
  echo "$name $report $r" >> "$out/results.txt"
  echo "    $name: $r"
done
# The Pulumi package (make e2e-pulumi): its own test module and tools, so it runs outside hack/e2e.sh.
echo "=== nightly: e2e-pulumi"
if make -s pulumi > "$out/e2e-pulumi.log" 2>&1 && hack/e2e-pulumi.sh >> "$out/e2e-pulumi.log" 2>&1; then r=pass; else r=fail; failed=1; fi
echo "e2e-pulumi e2e-pulumi $r" >> "$out/results.txt"
echo "    e2e-pulumi: $r"
go run ./internal/cmd/kslab hosts destroy-all >/dev/null 2>&1 || true
# The libvirt scenarios probe KVM with a real guest boot and cache the verdict per libvirt host.
kvm=tcg; [[ -c /dev/kvm ]] && kvm="kvm device present, not probed"
probe=$(ls -t "${XDG_CACHE_HOME:-$HOME/.cache}"/kubesmith/accelerator/*.json 2>/dev/null | head -1 | xargs -r cat | python3 -c \
  'import json,sys; r=json.loads(sys.stdin.read() or "{}"); print(r.get("accelerator","") + (" (" + r["reason"].splitlines()[0] + ")" if r.get("reason") else ""))' 2>/dev/null || true)
[[ -n $probe ]] && kvm="libvirt probe: $probe"
python3 - "$out" "$(nproc)" "$kvm" "${not_built[*]}" <<'PY'
import json, os, sys, glob, datetime
out, cores, kvm, not_built = sys.argv[1:5]
reports = {}
for f in glob.glob(os.path.join(out, "reports", "*.json")):
    r = json.load(open(f)); reports[r["scenario"]] = r
scen = []
for line in open(os.path.join(out, "results.txt")):
    name, report, res = line.split()
    scen.append({"name": name, "result": res, "phases": reports.get(report, {}).get("phases", [])})
doc = {"date": datetime.datetime.utcnow().isoformat() + "Z", "host": {"cores": int(cores), "accelerator": kvm},
       "scenarios": scen, "not_run": not_built.split()}
json.dump(doc, open(os.path.join(out, "report.json"), "w"), indent=2)
with open(os.path.join(out, "summary.md"), "w") as md:
    md.write(f"# kubesmith nightly {doc['date']}\n\nHost: {cores} cores, {kvm}.\n\n")
    for s in doc["scenarios"]:
        md.write(f"## {s['name']}: {s['result']}\n\n| phase | seconds | ok |\n|---|---|---|\n")
        for p in s["phases"]:
            md.write(f"| {p['name']} | {p['seconds']:.1f} | {p['ok']} |\n")
        md.write("\n")
    if doc["not_run"]:
        md.write("Not run (not built yet): " + ", ".join(doc["not_run"]) + "\n")
PY
cat "$out/summary.md"
exit $failed
