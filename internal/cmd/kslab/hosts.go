package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/kubesmith/terraform-provider-kubesmith/internal/lab/containerhosts"
)

const hostsUsage = `usage: kslab hosts <command> [flags]

commands:
  setup                         install docker.io/debootstrap if missing, start the lab dockerd, create the
                                network, build/import the node image
  up --prefix P --count N       create N nodes P-1..P-N in parallel and wait for SSH; prints JSON
     [--addresses a,b,...] [--json FILE] [--timeout 3m]
  down --prefix P               remove the nodes P-* and their volumes
  list [--prefix P]             print the nodes as JSON
  stop|start|restart NAME       stop, start or restart a node (start/restart wait for SSH)
  exec NAME -- CMD...           run a command in a node through docker exec
  snapshot NAME                 print a JSON snapshot of a node's host state
  diff A.json B.json            compare two snapshots (exit 1 when they differ)
  quirks                        print what was detected about this machine
  destroy-all                   remove every node and the network, stop the lab dockerd, remove its
                                iptables chains; keeps the cached image

flags of every command:
  --state-dir DIR   kept state (default ${XDG_CACHE_HOME:-~/.cache}/kubesmith/lab/containers)
  --run-dir DIR     runtime state (default /run/kubesmith-lab)
`

// upOutput is what `up` and `list` print.
type upOutput struct {
	ClientKey  string                `json:"client_key"`
	KnownHosts string                `json:"known_hosts"`
	DockerHost string                `json:"docker_host"`
	VIPRange   string                `json:"vip_range"`
	Nodes      []containerhosts.Node `json:"nodes"`
}

// commonFlags are accepted by every hosts command.
type commonFlags struct {
	stateDir, runDir string
}

func newFlagSet(name string, stderr io.Writer) (*flag.FlagSet, *commonFlags) {
	fs := flag.NewFlagSet("kslab hosts "+name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	c := &commonFlags{}
	fs.StringVar(&c.stateDir, "state-dir", "", "kept state directory")
	fs.StringVar(&c.runDir, "run-dir", "", "runtime state directory")
	return fs, c
}

func (c *commonFlags) lab(stderr io.Writer) (*containerhosts.Lab, error) {
	return containerhosts.New(containerhosts.Config{StateDir: c.stateDir, RunDir: c.runDir, Progress: stderr})
}

func usageError(format string, args ...any) error {
	return &exitCodeError{code: 2, msg: fmt.Sprintf(format, args...)}
}

// parse parses flags and checks the number of positional arguments.
func parse(fs *flag.FlagSet, args []string, positional int, what string) ([]string, error) {
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil, &exitCodeError{code: 0}
		}
		return nil, &exitCodeError{code: 2}
	}
	if fs.NArg() != positional {
		return nil, usageError("%s: want %s", fs.Name(), what)
	}
	return fs.Args(), nil
}

func printJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	if err := enc.Encode(v); err != nil {
		return fmt.Errorf("write JSON: %w", err)
	}
	return nil
}

func nodesOutput(lab *containerhosts.Lab, nodes []containerhosts.Node) upOutput {
	if nodes == nil {
		nodes = []containerhosts.Node{}
	}
	return upOutput{
		ClientKey: lab.ClientKeyPath(), KnownHosts: lab.KnownHostsPath(), DockerHost: lab.DockerHost(),
		VIPRange: containerhosts.VIPRange, Nodes: nodes,
	}
}

// hostsCmd runs `kslab hosts <command>`.
func hostsCmd(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		_, _ = fmt.Fprint(stderr, hostsUsage) // best effort: the usage error is returned anyway
		return usageError("no hosts command given")
	}
	cmd, args := args[0], args[1:]
	fs, common := newFlagSet(cmd, stderr)
	switch cmd {
	case "help", "-h", "--help":
		if _, err := fmt.Fprint(stdout, hostsUsage); err != nil {
			return fmt.Errorf("write usage: %w", err)
		}
		return nil

	case "setup":
		if _, err := parse(fs, args, 0, "no arguments"); err != nil {
			return err
		}
		lab, err := common.lab(stderr)
		if err != nil {
			return err
		}
		_, err = lab.Setup(ctx)
		return err

	case "up":
		prefix := fs.String("prefix", "", "node name prefix (required)")
		count := fs.Int("count", 3, "number of nodes")
		addresses := fs.String("addresses", "", "comma-separated node addresses (default: lowest free from .11)")
		jsonOut := fs.String("json", "", "also write the JSON to this file")
		timeout := fs.Duration("timeout", 3*time.Minute, "per-node wait for SSH")
		if _, err := parse(fs, args, 0, "flags only"); err != nil {
			return err
		}
		if *prefix == "" {
			return usageError("up: --prefix is required")
		}
		spec := containerhosts.Spec{Prefix: *prefix, Count: *count, ReadyTimeout: *timeout}
		if *addresses != "" {
			spec.Addresses = strings.Split(*addresses, ",")
		}
		lab, err := common.lab(stderr)
		if err != nil {
			return err
		}
		nodes, err := lab.Up(ctx, spec)
		if err != nil {
			return err
		}
		out := nodesOutput(lab, nodes)
		if *jsonOut != "" {
			data, err := json.MarshalIndent(out, "", "  ")
			if err != nil {
				return fmt.Errorf("write JSON: %w", err)
			}
			if err := os.WriteFile(*jsonOut, append(data, '\n'), 0o644); err != nil {
				return fmt.Errorf("write JSON: %w", err)
			}
		}
		return printJSON(stdout, out)

	case "down":
		prefix := fs.String("prefix", "", "node name prefix (required)")
		if _, err := parse(fs, args, 0, "flags only"); err != nil {
			return err
		}
		if *prefix == "" {
			return usageError("down: --prefix is required")
		}
		lab, err := common.lab(stderr)
		if err != nil {
			return err
		}
		return lab.Down(ctx, *prefix)

	case "list":
		prefix := fs.String("prefix", "", "only nodes with this prefix")
		if _, err := parse(fs, args, 0, "flags only"); err != nil {
			return err
		}
		lab, err := common.lab(stderr)
		if err != nil {
			return err
		}
		nodes, err := lab.Nodes(ctx, *prefix)
		if err != nil {
			return err
		}
		return printJSON(stdout, nodesOutput(lab, nodes))

	case "stop", "start", "restart":
		pos, err := parse(fs, args, 1, "one node NAME")
		if err != nil {
			return err
		}
		lab, err := common.lab(stderr)
		if err != nil {
			return err
		}
		t0 := time.Now()
		switch cmd {
		case "stop":
			err = lab.Stop(ctx, pos[0])
		case "start":
			err = lab.Start(ctx, pos[0])
		default:
			err = lab.Restart(ctx, pos[0])
		}
		if err == nil {
			_, _ = fmt.Fprintf(stderr, "%s %s: done in %.1fs\n", cmd, pos[0], time.Since(t0).Seconds()) // progress note
		}
		return err

	case "exec":
		if err := fs.Parse(args); err != nil {
			return &exitCodeError{code: 2}
		}
		rest := fs.Args()
		if len(rest) > 0 && rest[0] == "--" {
			rest = rest[1:]
		}
		if len(rest) < 2 {
			return usageError("exec: want NAME -- CMD...")
		}
		if rest[1] == "--" {
			rest = append(rest[:1], rest[2:]...)
		}
		lab, err := common.lab(stderr)
		if err != nil {
			return err
		}
		res, err := lab.Exec(ctx, rest[0], strings.Join(rest[1:], " "))
		_, werr := fmt.Fprint(stdout, res.Stdout)
		_, _ = fmt.Fprint(stderr, res.Stderr) // the command's diagnostics: best effort, like any stderr
		var ee *containerhosts.ExitError
		if errors.As(err, &ee) {
			return &exitCodeError{code: ee.ExitCode}
		}
		if err != nil {
			return err
		}
		if werr != nil {
			return fmt.Errorf("exec: write output: %w", werr)
		}
		return nil

	case "snapshot":
		pos, err := parse(fs, args, 1, "one node NAME")
		if err != nil {
			return err
		}
		lab, err := common.lab(stderr)
		if err != nil {
			return err
		}
		snap, err := lab.Snapshot(ctx, pos[0])
		if err != nil {
			return err
		}
		return printJSON(stdout, snap)

	case "diff":
		pos, err := parse(fs, args, 2, "two snapshot files")
		if err != nil {
			return err
		}
		var snaps [2]containerhosts.Snapshot
		for i, f := range pos {
			data, err := os.ReadFile(f)
			if err != nil {
				return fmt.Errorf("diff: %w", err)
			}
			if err := json.Unmarshal(data, &snaps[i]); err != nil {
				return fmt.Errorf("diff %s: %w", f, err)
			}
		}
		d := containerhosts.Diff(snaps[0], snaps[1])
		for _, l := range d {
			if _, err := fmt.Fprintln(stdout, l); err != nil {
				return fmt.Errorf("diff: write output: %w", err)
			}
		}
		if len(d) > 0 {
			return &exitCodeError{code: 1}
		}
		return nil

	case "quirks":
		if _, err := parse(fs, args, 0, "no arguments"); err != nil {
			return err
		}
		q, err := containerhosts.DetectQuirks()
		if err != nil {
			return err
		}
		return printJSON(stdout, q)

	case "destroy-all":
		if _, err := parse(fs, args, 0, "no arguments"); err != nil {
			return err
		}
		lab, err := common.lab(stderr)
		if err != nil {
			return err
		}
		return lab.Teardown(ctx)

	default:
		_, _ = fmt.Fprint(stderr, hostsUsage) // best effort: the usage error is returned anyway
		return usageError("unknown hosts command %q", cmd)
	}
}
