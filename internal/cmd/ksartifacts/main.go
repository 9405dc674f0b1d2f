// Command ksartifacts builds, locates and verifies kubesmith's offline artifact bundle (`make artifacts`).
//
//	ksartifacts build  [--k8s v1.37.2[,v1.36.3]] [--out DIR] [--cache DIR] [--tools] [--skip a,b] [--set comp=ver,...] [--jobs 2]
//	ksartifacts verify [--bundle DIR]
//	ksartifacts path   [--out DIR] [--cache DIR]
//	ksartifacts tool   tofu|golangci-lint [--cache DIR]
//
// Everything is cached under ${XDG_CACHE_HOME:-~/.cache}/kubesmith: build/ per component and version, bundle/ by
// default. A second build with nothing changed rebuilds nothing and rewrites nothing.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/kubesmith/terraform-provider-kubesmith/internal/artifacts"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

const usage = `usage:
  ksartifacts build  [--k8s v1.37.2[,v1.36.3]] [--out DIR] [--cache DIR] [--tools] [--skip a,b] [--set comp=ver,...] [--jobs 2]
  ksartifacts verify [--bundle DIR]
  ksartifacts path   [--out DIR] [--cache DIR]
  ksartifacts tool   tofu|golangci-lint [--cache DIR]
`

// errUsage makes run exit with status 2.
var errUsage = errors.New("usage")

// run executes one subcommand and returns the exit status.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		_, _ = fmt.Fprint(stderr, usage)
		return 2
	}
	var err error
	switch args[0] {
	case "build":
		err = cmdBuild(ctx, args[1:], stdout, stderr)
	case "verify":
		err = cmdVerify(ctx, args[1:], stdout, stderr)
	case "path":
		err = cmdPath(args[1:], stdout, stderr)
	case "tool":
		err = cmdTool(ctx, args[1:], stdout, stderr)
	case "-h", "--help", "help":
		_, _ = fmt.Fprint(stdout, usage)
		return 0
	default:
		_, _ = fmt.Fprintf(stderr, "ksartifacts: unknown command %q\n%s", args[0], usage)
		return 2
	}
	switch {
	case errors.Is(err, errUsage):
		return 2
	case err != nil:
		_, _ = fmt.Fprintf(stderr, "ksartifacts: %v\n", err)
		return 1
	}
	return 0
}

func newFlags(name string, stderr io.Writer) *flag.FlagSet {
	fs := flag.NewFlagSet("ksartifacts "+name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	return fs
}

func parse(fs *flag.FlagSet, args []string) error {
	if err := fs.Parse(args); err != nil {
		return errUsage
	}
	if fs.NArg() > 0 {
		_, _ = fmt.Fprintf(fs.Output(), "%s: unexpected argument %q\n", fs.Name(), fs.Arg(0))
		return errUsage
	}
	return nil
}

func splitList(s string) []string {
	var out []string
	for _, f := range strings.Split(s, ",") {
		if f = strings.TrimSpace(f); f != "" {
			out = append(out, f)
		}
	}
	return out
}

func cmdBuild(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlags("build", stderr)
	k8s := fs.String("k8s", "", "Kubernetes version(s), comma-separated (default "+strings.Join(artifacts.DefaultVersions().Kubernetes, ",")+")")
	out := fs.String("out", "", "bundle directory (default <cache>/bundle)")
	cache := fs.String("cache", "", "cache directory (default ${XDG_CACHE_HOME:-~/.cache}/kubesmith)")
	tools := fs.Bool("tools", false, "also build the host tools (OpenTofu, golangci-lint) into the bundle")
	skip := fs.String("skip", "", "components to leave out, comma-separated (e.g. traefik,deb)")
	with := fs.String("with", "", "optional components to build too, comma-separated ("+strings.Join(artifacts.OptionalComponents, ",")+"; kept once in the bundle)")
	jobs := fs.Int("jobs", 2, "components built at once")
	set := fs.String("set", "", "component versions, comma-separated component=version (e.g. etcd=v3.7.3,traefik=v3.6.12)")
	if err := parse(fs, args); err != nil {
		return err
	}
	if *jobs < 1 {
		return fmt.Errorf("--jobs %d: want at least 1: %w", *jobs, errUsage)
	}
	v := artifacts.DefaultVersions()
	if *k8s != "" {
		if err := v.Set(artifacts.ComponentKubernetes, *k8s); err != nil {
			return err
		}
	}
	for _, kv := range splitList(*set) {
		c, ver, ok := strings.Cut(kv, "=")
		if !ok {
			return fmt.Errorf("--set %q: want component=version", kv)
		}
		if err := v.Set(c, ver); err != nil {
			return err
		}
	}
	b := &artifacts.Builder{CacheDir: *cache, BundleDir: *out, Versions: v, Tools: *tools, Skip: splitList(*skip), With: splitList(*with), Progress: stdout, Jobs: *jobs}
	start := time.Now()
	m, err := b.Build(ctx)
	if err != nil {
		return err
	}
	dir, err := b.BundleDirPath()
	if err != nil {
		return err
	}
	_, _ = fmt.Fprintf(stdout, "bundle %s: %d files, built in %s\n", dir, len(m.Files), time.Since(start).Round(100*time.Millisecond))
	return nil
}

func cmdVerify(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlags("verify", stderr)
	dir := fs.String("bundle", "", "bundle directory (default ${XDG_CACHE_HOME:-~/.cache}/kubesmith/bundle)")
	if err := parse(fs, args); err != nil {
		return err
	}
	if *dir == "" {
		d, err := artifacts.DefaultBundleDir()
		if err != nil {
			return err
		}
		*dir = d
	}
	start := time.Now()
	b, err := artifacts.Open(*dir)
	if err != nil {
		return err
	}
	problems := b.Verify(ctx)
	for _, p := range problems {
		_, _ = fmt.Fprintln(stdout, p.String())
	}
	n := len(b.Manifest().Files)
	if len(problems) > 0 {
		return fmt.Errorf("bundle %s: %d of %d files have problems", *dir, len(problems), n)
	}
	_, _ = fmt.Fprintf(stdout, "bundle %s: all %d files verified in %s\n", *dir, n, time.Since(start).Round(100*time.Millisecond))
	return nil
}

func cmdPath(args []string, stdout, stderr io.Writer) error {
	fs := newFlags("path", stderr)
	out := fs.String("out", "", "bundle directory")
	cache := fs.String("cache", "", "cache directory")
	if err := parse(fs, args); err != nil {
		return err
	}
	dir, err := (&artifacts.Builder{CacheDir: *cache, BundleDir: *out}).BundleDirPath()
	if err != nil {
		return err
	}
	_, _ = fmt.Fprintln(stdout, dir)
	return nil
}

func cmdTool(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 || strings.HasPrefix(args[0], "-") {
		_, _ = fmt.Fprint(stderr, "ksartifacts tool: name the tool: tofu or golangci-lint\n")
		return errUsage
	}
	name := args[0]
	fs := newFlags("tool", stderr)
	cache := fs.String("cache", "", "cache directory")
	if err := parse(fs, args[1:]); err != nil {
		return err
	}
	// Progress goes to stderr: stdout is only the path, for $(ksartifacts tool tofu).
	p, err := (&artifacts.Builder{CacheDir: *cache, Progress: stderr}).Tool(ctx, name)
	if err != nil {
		return err
	}
	_, _ = fmt.Fprintln(stdout, p)
	return nil
}
