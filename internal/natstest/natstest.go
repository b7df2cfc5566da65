// Package natstest runs real nats-server processes with JetStream for tests:
// each on its own loopback port with its store in a test temp dir, killed
// at cleanup. Tests skip when nats-server is not installed.
package natstest

import (
	"bytes"
	"fmt"
	"net"
	"os"
	"os/exec"
	"strconv"
	"sync"
	"syscall"
	"testing"
	"time"
)

const serverBin = "/usr/sbin/nats-server"

// Server is a real nats-server with JetStream on 127.0.0.1, its store in
// a test temp dir. Kill and Start let a test simulate a crash and a restart
// on the same port and store.
type Server struct {
	t    testing.TB
	port int
	dir  string

	mu  sync.Mutex
	cmd *exec.Cmd
	out *bytes.Buffer
}

// Start starts a server; it is killed when the test ends.
func Start(t testing.TB) *Server {
	t.Helper()
	bin, err := exec.LookPath(serverBin)
	if err != nil {
		if bin, err = exec.LookPath("nats-server"); err != nil {
			t.Skip("nats-server not installed (apt-get install nats-server): skipping tests against a real JetStream server")
		}
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := l.Addr().(*net.TCPAddr).Port
	l.Close()
	s := &Server{t: t, port: port, dir: t.TempDir()}
	s.start(bin)
	t.Cleanup(func() {
		s.Kill()
		if t.Failed() {
			t.Logf("nats-server output:\n%s", s.out)
		}
	})
	return s
}

// URL is the server's client URL.
func (s *Server) URL() string { return "nats://127.0.0.1:" + strconv.Itoa(s.port) }

// Restart restarts a killed server with the same port and store.
func (s *Server) Restart() {
	s.t.Helper()
	s.start(serverBin)
}

func (s *Server) start(bin string) {
	s.t.Helper()
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.out == nil {
		s.out = new(bytes.Buffer)
	}
	cmd := exec.Command(bin, "-a", "127.0.0.1", "-p", strconv.Itoa(s.port), "-js", "-sd", s.dir)
	cmd.Stdout, cmd.Stderr = s.out, s.out
	if err := cmd.Start(); err != nil {
		s.t.Fatalf("start nats-server: %v", err)
	}
	s.cmd = cmd
	deadline := time.Now().Add(10 * time.Second)
	for {
		c, err := net.DialTimeout("tcp", fmt.Sprintf("127.0.0.1:%d", s.port), 100*time.Millisecond)
		if err == nil {
			c.Close()
			return
		}
		if time.Now().After(deadline) {
			s.t.Fatalf("nats-server not listening on %d: %v\n%s", s.port, err, s.out)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// Signal sends sig to the running server (SIGSTOP freezes it: connections
// stay open, nothing answers).
func (s *Server) Signal(sig os.Signal) {
	s.t.Helper()
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.cmd.Process.Signal(sig); err != nil {
		s.t.Fatal(err)
	}
	if sig == syscall.SIGSTOP {
		// The signal is delivered asynchronously: a server thread may still
		// answer a request sent right after Signal returns. Wait until the
		// kernel reports the process stopped.
		stat := fmt.Sprintf("/proc/%d/stat", s.cmd.Process.Pid)
		for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(time.Millisecond) {
			b, err := os.ReadFile(stat)
			if err != nil {
				return // no procfs: best effort
			}
			if i := bytes.LastIndexByte(b, ')'); i >= 0 && i+2 < len(b) && b[i+2] == 'T' {
				return
			}
		}
		s.t.Fatal("nats-server did not stop after SIGSTOP")
	}
}

// Kill is kill -9: no clean shutdown, no flush.
func (s *Server) Kill() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cmd == nil {
		return
	}
	_ = s.cmd.Process.Kill()
	_ = s.cmd.Wait()
	s.cmd = nil
}
