#!/bin/bash
# OCI runtime wrapper for the kubesmith lab dockerd. Installed (with @RUNC@ replaced by the real runc)
# and registered as dockerd's default runtime ONLY when this process's capability bounding set lacks
# capabilities that the kernel knows (for example CAP_SYS_RESOURCE in some CI micro-VMs). There,
# `docker run --privileged` asks runc for every capability and fails with
# "unable to apply caps: operation not permitted"; docker's --cap-drop does not help for privileged
# containers. This wrapper removes the capabilities we do not hold from every capability list of the
# OCI config.json (create/run) or process.json (exec), then execs the real runc. Needs jq.
REAL=@RUNC@
bnd=$((16#$(awk '/^CapBnd/{print $2}' /proc/self/status)))
names=(CHOWN DAC_OVERRIDE DAC_READ_SEARCH FOWNER FSETID KILL SETGID SETUID SETPCAP LINUX_IMMUTABLE NET_BIND_SERVICE
  NET_BROADCAST NET_ADMIN NET_RAW IPC_LOCK IPC_OWNER SYS_MODULE SYS_RAWIO SYS_CHROOT SYS_PTRACE SYS_PACCT SYS_ADMIN
  SYS_BOOT SYS_NICE SYS_RESOURCE SYS_TIME SYS_TTY_CONFIG MKNOD LEASE AUDIT_WRITE AUDIT_CONTROL SETFCAP MAC_OVERRIDE
  MAC_ADMIN SYSLOG WAKE_ALARM BLOCK_SUSPEND AUDIT_READ PERFMON BPF CHECKPOINT_RESTORE)
drop=()
for i in "${!names[@]}"; do (( (bnd >> i) & 1 )) || drop+=("\"CAP_${names[i]}\""); done
if (( ${#drop[@]} )); then
  bundle=; proc=; cmd=
  args=("$@")
  for ((i=0; i<${#args[@]}; i++)); do
    case ${args[i]} in
      --bundle|-b) bundle=${args[i+1]} ;; --bundle=*) bundle=${args[i]#*=} ;;
      --process|-p) proc=${args[i+1]} ;; --process=*) proc=${args[i]#*=} ;;
      create|run|exec) [[ -z $cmd ]] && cmd=${args[i]} ;;
    esac
  done
  f=
  [[ $cmd == create || $cmd == run ]] && f=${bundle:-.}/config.json
  [[ $cmd == exec && -n $proc ]] && f=$proc
  if [[ -n $f && -f $f ]]; then
    list=$(IFS=,; echo "${drop[*]}")
    jq -c "[$list] as \$d | walk(if type==\"object\" and has(\"bounding\") then map_values(if type==\"array\" then map(select(. as \$c | \$d | index(\$c) | not)) else . end) else . end)" \
      "$f" >"$f.capfix" && mv "$f.capfix" "$f"
  fi
fi
exec "$REAL" "$@"
