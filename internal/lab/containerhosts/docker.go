package containerhosts

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strings"
)

// dockerCLI runs the docker client against the lab's own dockerd only: -H is always given, and the
// environment is stripped of DOCKER_HOST/DOCKER_CONTEXT/TLS settings and points DOCKER_CONFIG at the
// lab's state dir, so the user's ~/.docker (contexts, credentials) is neither read nor written.
type dockerCLI struct {
	bin  string
	host string
	env  []string
}

func (l *Lab) docker(bin string) dockerCLI {
	return dockerCLI{bin: bin, host: l.DockerHost(), env: cleanDockerEnv(os.Environ(), l.paths.cliConfig)}
}

// cleanDockerEnv drops the variables that would point the docker client elsewhere.
func cleanDockerEnv(environ []string, cliConfig string) []string {
	out := make([]string, 0, len(environ)+1)
	for _, kv := range environ {
		k, _, _ := strings.Cut(kv, "=")
		switch k {
		case "DOCKER_HOST", "DOCKER_CONTEXT", "DOCKER_TLS_VERIFY", "DOCKER_CERT_PATH", "DOCKER_CONFIG", "DOCKER_API_VERSION":
			continue
		}
		out = append(out, kv)
	}
	return append(out, "DOCKER_CONFIG="+cliConfig)
}

// run runs `docker -H <ours> args...` and returns its stdout. A failure carries the command and the end of
// its stderr.
func (d dockerCLI) run(ctx context.Context, stdin io.Reader, args ...string) (string, error) {
	var stdout, stderr bytes.Buffer
	cmd := exec.CommandContext(ctx, d.bin, append([]string{"-H", d.host}, args...)...)
	cmd.Env = d.env
	cmd.Stdin = stdin
	cmd.Stdout = &stdout
	cmd.Stderr = &stderr
	if err := cmd.Run(); err != nil {
		return stdout.String(), &dockerError{args: args, err: err, stderr: lastLines(stderr.String(), 5), fullStderr: stderr.String()}
	}
	return stdout.String(), nil
}

// dockerError is a failed docker client command.
type dockerError struct {
	args       []string
	err        error
	stderr     string // last lines, for messages
	fullStderr string
}

func (e *dockerError) Error() string {
	verb := strings.Join(e.args[:min(2, len(e.args))], " ")
	return fmt.Sprintf("docker %s: %v: %s", verb, e.err, e.stderr)
}

func (e *dockerError) Unwrap() error { return e.err }

// exitCode is the exit status of a failed command, or -1 when it did not run to an exit.
func exitCode(err error) int {
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		return ee.ExitCode()
	}
	return -1
}

func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
