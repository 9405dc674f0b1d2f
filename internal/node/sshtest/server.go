// Package sshtest runs an in-process SSH server for tests of SSH clients. It listens on loopback, accepts public
// keys from a list (any user name), runs "exec" requests with /bin/sh -c as the current user (in a new session,
// as sshd does, so that "signal" requests reach the whole process group), serves the "sftp" subsystem with
// github.com/pkg/sftp and forwards "direct-tcpip" channels to loopback addresses, so that it can act as a bastion.
package sshtest

import (
	"crypto/ed25519"
	"crypto/rand"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/pkg/sftp"
	"golang.org/x/crypto/ssh"
)

// Config configures a Server.
type Config struct {
	// Addr is where to listen; "127.0.0.1:0" when empty. Only loopback addresses are accepted.
	Addr string
	// HostKeys are the server's host keys; one new ed25519 key when empty.
	HostKeys []ssh.Signer
	// AuthorizedKeys may log in, as any user.
	AuthorizedKeys []ssh.PublicKey
	// Env is added to the environment of commands, e.g. "PATH=/shim:/usr/bin:/bin".
	Env []string
	// Dir is the working directory of commands and SFTP; the process's when empty.
	Dir string
}

// Server is a running in-process SSH server.
type Server struct {
	cfg      Config
	ln       net.Listener
	sshCfg   *ssh.ServerConfig
	hostKeys []ssh.PublicKey

	mu       sync.Mutex
	execs    []string
	conns    map[net.Conn]struct{}
	procs    map[*exec.Cmd]struct{}
	accepted int
	closed   bool
	wg       sync.WaitGroup
}

// Start listens and serves in the background until Close.
func Start(cfg Config) (*Server, error) {
	if cfg.Addr == "" {
		cfg.Addr = "127.0.0.1:0"
	}
	host, _, err := net.SplitHostPort(cfg.Addr)
	if err != nil {
		return nil, fmt.Errorf("sshtest: address %q: %w", cfg.Addr, err)
	}
	if ip := net.ParseIP(host); ip == nil || !ip.IsLoopback() {
		return nil, fmt.Errorf("sshtest: address %q is not a loopback IP", cfg.Addr)
	}
	if len(cfg.HostKeys) == 0 {
		signer, _, err := GenerateKey()
		if err != nil {
			return nil, err
		}
		cfg.HostKeys = []ssh.Signer{signer}
	}
	s := &Server{cfg: cfg, conns: make(map[net.Conn]struct{}), procs: make(map[*exec.Cmd]struct{})}
	authorized := make(map[string]bool)
	for _, k := range cfg.AuthorizedKeys {
		authorized[string(k.Marshal())] = true
	}
	s.sshCfg = &ssh.ServerConfig{
		PublicKeyCallback: func(_ ssh.ConnMetadata, key ssh.PublicKey) (*ssh.Permissions, error) {
			if authorized[string(key.Marshal())] {
				return &ssh.Permissions{}, nil
			}
			return nil, errors.New("key not authorized")
		},
	}
	for _, k := range cfg.HostKeys {
		s.sshCfg.AddHostKey(k)
		s.hostKeys = append(s.hostKeys, k.PublicKey())
	}
	if s.ln, err = net.Listen("tcp", cfg.Addr); err != nil {
		return nil, fmt.Errorf("sshtest: listen: %w", err)
	}
	s.wg.Add(1)
	go s.serve()
	return s, nil
}

// GenerateKey returns a new ed25519 key as a signer and in OpenSSH PEM form.
func GenerateKey() (ssh.Signer, []byte, error) {
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return nil, nil, fmt.Errorf("sshtest: generate key: %w", err)
	}
	block, err := ssh.MarshalPrivateKey(priv, "")
	if err != nil {
		return nil, nil, fmt.Errorf("sshtest: marshal key: %w", err)
	}
	signer, err := ssh.NewSignerFromKey(priv)
	if err != nil {
		return nil, nil, fmt.Errorf("sshtest: signer: %w", err)
	}
	return signer, pem.EncodeToMemory(block), nil
}

// Addr returns the host:port the server listens on.
func (s *Server) Addr() string { return s.ln.Addr().String() }

// Host returns the IP the server listens on.
func (s *Server) Host() string { return s.ln.Addr().(*net.TCPAddr).IP.String() }

// Port returns the port the server listens on.
func (s *Server) Port() int { return s.ln.Addr().(*net.TCPAddr).Port }

// HostKey returns the server's first host key.
func (s *Server) HostKey() ssh.PublicKey { return s.hostKeys[0] }

// AuthorizedKeyLine returns the first host key in authorized_keys format, as a client pins it.
func (s *Server) AuthorizedKeyLine() string {
	return strings.TrimSpace(string(ssh.MarshalAuthorizedKey(s.hostKeys[0])))
}

// Execs returns the command lines of all exec requests received, in order.
func (s *Server) Execs() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.execs...)
}

// Accepted returns how many TCP connections the server accepted.
func (s *Server) Accepted() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.accepted
}

// Close stops listening, closes every connection and kills every running command's process group.
func (s *Server) Close() error {
	s.mu.Lock()
	s.closed = true
	for c := range s.conns {
		_ = c.Close()
	}
	for p := range s.procs {
		_ = syscall.Kill(-p.Process.Pid, syscall.SIGKILL)
	}
	s.mu.Unlock()
	err := s.ln.Close()
	s.wg.Wait()
	return err
}

func (s *Server) serve() {
	defer s.wg.Done()
	for {
		nc, err := s.ln.Accept()
		if err != nil {
			return
		}
		s.mu.Lock()
		if s.closed {
			s.mu.Unlock()
			_ = nc.Close()
			return
		}
		s.accepted++
		s.conns[nc] = struct{}{}
		s.mu.Unlock()
		go s.handleConn(nc)
	}
}

func (s *Server) handleConn(nc net.Conn) {
	defer func() {
		_ = nc.Close()
		s.mu.Lock()
		delete(s.conns, nc)
		s.mu.Unlock()
	}()
	_ = nc.SetDeadline(time.Now().Add(10 * time.Second))
	_, chans, reqs, err := ssh.NewServerConn(nc, s.sshCfg)
	if err != nil {
		return
	}
	_ = nc.SetDeadline(time.Time{})
	go ssh.DiscardRequests(reqs)
	for nch := range chans {
		switch nch.ChannelType() {
		case "session":
			go s.handleSession(nch)
		case "direct-tcpip":
			go s.handleDirectTCPIP(nch)
		default:
			_ = nch.Reject(ssh.UnknownChannelType, "unsupported channel type")
		}
	}
}

func (s *Server) handleSession(nch ssh.NewChannel) {
	ch, reqs, err := nch.Accept()
	if err != nil {
		return
	}
	var cmd *exec.Cmd
	started := false
	for req := range reqs {
		switch req.Type {
		case "exec":
			var payload struct{ Command string }
			if started || ssh.Unmarshal(req.Payload, &payload) != nil {
				_ = req.Reply(false, nil)
				continue
			}
			started = true
			s.mu.Lock()
			s.execs = append(s.execs, payload.Command)
			s.mu.Unlock()
			cmd, err = s.startCommand(ch, payload.Command)
			_ = req.Reply(err == nil, nil)
			if err != nil {
				_, _ = fmt.Fprintf(ch.Stderr(), "sshtest: %v\n", err)
				sendExitStatus(ch, 127)
				_ = ch.Close()
			}
		case "subsystem":
			var payload struct{ Name string }
			if started || ssh.Unmarshal(req.Payload, &payload) != nil || payload.Name != "sftp" {
				_ = req.Reply(false, nil)
				continue
			}
			started = true
			var opts []sftp.ServerOption
			if s.cfg.Dir != "" {
				opts = append(opts, sftp.WithServerWorkingDirectory(s.cfg.Dir))
			}
			srv, err := sftp.NewServer(ch, opts...)
			_ = req.Reply(err == nil, nil)
			if err != nil {
				_ = ch.Close()
				continue
			}
			go func() {
				_ = srv.Serve()
				sendExitStatus(ch, 0)
				_ = ch.Close()
			}()
		case "signal":
			var payload struct{ Signal string }
			if ssh.Unmarshal(req.Payload, &payload) == nil && cmd != nil {
				if sig, ok := signals()[payload.Signal]; ok {
					// Like sshd: the command leads its own session, so this reaches all its processes.
					_ = syscall.Kill(-cmd.Process.Pid, sig)
				}
			}
			if req.WantReply {
				_ = req.Reply(true, nil)
			}
		default:
			if req.WantReply {
				_ = req.Reply(false, nil)
			}
		}
	}
}

// startCommand runs command under /bin/sh -c with the channel as stdin, stdout and stderr, and reports its exit.
func (s *Server) startCommand(ch ssh.Channel, command string) (*exec.Cmd, error) {
	cmd := exec.Command("/bin/sh", "-c", command)
	cmd.Dir = s.cfg.Dir
	cmd.Env = append(os.Environ(), s.cfg.Env...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	cmd.Stdout = ch
	cmd.Stderr = ch.Stderr()
	stdin, err := cmd.StdinPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	s.mu.Lock()
	s.procs[cmd] = struct{}{}
	s.mu.Unlock()
	go func() {
		_, _ = io.Copy(stdin, ch)
		_ = stdin.Close()
	}()
	go func() {
		_ = cmd.Wait()
		s.mu.Lock()
		delete(s.procs, cmd)
		s.mu.Unlock()
		_ = ch.CloseWrite()
		ws, _ := cmd.ProcessState.Sys().(syscall.WaitStatus)
		if ws.Signaled() {
			name := signalName(ws.Signal())
			_, _ = ch.SendRequest("exit-signal", false, ssh.Marshal(struct {
				Signal     string
				CoreDumped bool
				Error      string
				Lang       string
			}{Signal: name, CoreDumped: ws.CoreDump()}))
		} else {
			sendExitStatus(ch, ws.ExitStatus())
		}
		_ = ch.Close()
	}()
	return cmd, nil
}

func sendExitStatus(ch ssh.Channel, code int) {
	_, _ = ch.SendRequest("exit-status", false, ssh.Marshal(struct{ Status uint32 }{uint32(code)}))
}

func (s *Server) handleDirectTCPIP(nch ssh.NewChannel) {
	var payload struct {
		Host     string
		Port     uint32
		OrigHost string
		OrigPort uint32
	}
	if err := ssh.Unmarshal(nch.ExtraData(), &payload); err != nil {
		_ = nch.Reject(ssh.ConnectionFailed, "bad direct-tcpip request")
		return
	}
	if ip := net.ParseIP(payload.Host); ip == nil || !ip.IsLoopback() {
		_ = nch.Reject(ssh.Prohibited, "sshtest forwards to loopback addresses only")
		return
	}
	target, err := net.DialTimeout("tcp", net.JoinHostPort(payload.Host, strconv.Itoa(int(payload.Port))), 5*time.Second)
	if err != nil {
		_ = nch.Reject(ssh.ConnectionFailed, err.Error())
		return
	}
	ch, reqs, err := nch.Accept()
	if err != nil {
		_ = target.Close()
		return
	}
	go ssh.DiscardRequests(reqs)
	var once sync.Once
	closeBoth := func() {
		once.Do(func() {
			_ = ch.Close()
			_ = target.Close()
		})
	}
	go func() {
		_, _ = io.Copy(target, ch)
		closeBoth()
	}()
	go func() {
		_, _ = io.Copy(ch, target)
		closeBoth()
	}()
}

// signals are the signal names of RFC 4254 section 6.10 (without "SIG").
func signals() map[string]syscall.Signal {
	return map[string]syscall.Signal{
		"ABRT": syscall.SIGABRT, "ALRM": syscall.SIGALRM, "FPE": syscall.SIGFPE, "HUP": syscall.SIGHUP,
		"ILL": syscall.SIGILL, "INT": syscall.SIGINT, "KILL": syscall.SIGKILL, "PIPE": syscall.SIGPIPE,
		"QUIT": syscall.SIGQUIT, "SEGV": syscall.SIGSEGV, "TERM": syscall.SIGTERM, "USR1": syscall.SIGUSR1,
		"USR2": syscall.SIGUSR2,
	}
}

func signalName(sig syscall.Signal) string {
	for name, s := range signals() {
		if s == sig {
			return name
		}
	}
	return "SIG" + strconv.Itoa(int(sig))
}
