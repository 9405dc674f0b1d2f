package artifacts

// Sources of the two programs the bundle builds from its own code: the pause container and the HTTP echo server
// used by tests and examples.

// pauseC is a minimal pause: it sleeps forever, reaps zombies and exits on SIGINT/SIGTERM, like Kubernetes'
// build/pause/linux/pause.c. Same text as shared/lab/build-k8s-bins.sh.
const pauseC = `/* minimal pause: sleep forever, reap zombies, exit on SIGINT/SIGTERM (like k8s build/pause/linux/pause.c) */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>
static void sigdown(int signo) { psignal(signo, "Shutting down, got signal"); exit(0); }
static void sigreap(int signo) { (void)signo; while (waitpid(-1, NULL, WNOHANG) > 0) ; }
int main(int argc, char **argv) {
  if (argc > 1 && !strcmp(argv[1], "-v")) { printf("pause.c offline-build\n"); return 0; }
  if (getpid() != 1) fprintf(stderr, "Warning: pause should be the first process\n");
  struct sigaction a = {.sa_handler = sigdown};
  sigaction(SIGINT, &a, NULL); sigaction(SIGTERM, &a, NULL);
  struct sigaction r = {.sa_handler = sigreap, .sa_flags = SA_NOCLDSTOP};
  sigaction(SIGCHLD, &r, NULL);
  for (;;) pause();
  return 42;
}
`

// echoGoMod is the echo server's module; it has no dependencies.
const echoGoMod = `module example.invalid/echo

go 1.26.0
`

// echoMainGo is a static HTTP echo server. Every answer is one line of key=value pairs: the host name, the pod IP
// (from the POD_IP environment variable, set through the downward API), the method, path and remote address.
// /healthz answers "ok". It listens on $ADDR, or :$PORT, or :8080, and shuts down cleanly on SIGTERM. As a
// client, "echo get URL" prints the body of a GET and "echo resolve NAME" prints the addresses of a name, so
// tests can probe Services and DNS from inside a pod of this image.
const echoMainGo = `// Command echo is kubesmith's HTTP echo server for tests and examples.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"time"
)

// version is set with -ldflags "-X main.version=...".
var version = "dev"

func client(args []string) int {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	switch {
	case len(args) == 2 && args[0] == "get":
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, args[1], nil)
		if err != nil {
			_, _ = fmt.Fprintln(os.Stderr, err)
			return 2
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			_, _ = fmt.Fprintln(os.Stderr, err)
			return 1
		}
		defer func() { _ = resp.Body.Close() }()
		_, _ = io.Copy(os.Stdout, resp.Body)
		if resp.StatusCode != http.StatusOK {
			_, _ = fmt.Fprintln(os.Stderr, resp.Status)
			return 1
		}
		return 0
	case len(args) == 2 && args[0] == "resolve":
		addrs, err := net.DefaultResolver.LookupHost(ctx, args[1])
		if err != nil {
			_, _ = fmt.Fprintln(os.Stderr, err)
			return 1
		}
		for _, a := range addrs {
			fmt.Println(a)
		}
		return 0
	default:
		_, _ = fmt.Fprintln(os.Stderr, "usage: echo [get URL | resolve NAME]")
		return 2
	}
}

func main() {
	if len(os.Args) > 1 {
		os.Exit(client(os.Args[1:]))
	}
	addr := ":8080"
	if v := os.Getenv("ADDR"); v != "" {
		addr = v
	} else if p := os.Getenv("PORT"); p != "" {
		addr = ":" + p
	}
	host, _ := os.Hostname()
	podIP := os.Getenv("POD_IP")
	mux := http.NewServeMux()
	mux.HandleFunc("/healthz", func(w http.ResponseWriter, r *http.Request) {
		_, _ = fmt.Fprintln(w, "ok")
	})
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "host=%s pod_ip=%s method=%s path=%s remote=%s version=%s\n",
			host, podIP, r.Method, r.URL.Path, r.RemoteAddr, version)
	})
	srv := &http.Server{Addr: addr, Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer stop()
	go func() {
		<-ctx.Done()
		shutdown, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = srv.Shutdown(shutdown)
	}()
	fmt.Printf("echo %s listening on %s\n", version, addr)
	if err := srv.ListenAndServe(); err != nil && !errors.Is(err, http.ErrServerClosed) {
		_, _ = fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
}
`
