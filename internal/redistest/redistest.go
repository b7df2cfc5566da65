package redistest

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// startTimeout bounds how long Start and Restart wait for PING to answer.
const startTimeout = 5 * time.Second

// Server is a redis-server child process owned by one test.
type Server struct {
	tb   testing.TB
	bin  string
	dir  string
	port int

	mu     sync.Mutex
	cmd    *exec.Cmd
	exited chan struct{} // closed when cmd has been waited for
	frozen bool
	log    *tailBuffer
	extra  []string // more redis-server arguments (cluster mode)
}

// Start launches redis-server on a free 127.0.0.1 port with persistence
// off and its working directory in t.TempDir(), waits until it answers
// PING, and kills it when the test ends. It skips the test when
// redis-server is not installed.
func Start(tb testing.TB) *Server { return start(tb, nil) }

func start(tb testing.TB, extra []string) *Server {
	tb.Helper()
	bin, err := exec.LookPath("redis-server")
	if err != nil {
		tb.Skip("redistest: redis-server not found in PATH; install Redis (e.g. apt-get install redis-server) to run this test")
	}
	s := &Server{tb: tb, bin: bin, dir: tb.TempDir(), extra: extra}
	tb.Cleanup(s.kill)
	// The port is free when we look but another process may take it before
	// redis binds it; try a few ports before giving up.
	for attempt := 1; ; attempt++ {
		s.port, err = freePort()
		if err == nil {
			err = s.start()
		}
		if err == nil {
			return s
		}
		if attempt == 3 {
			tb.Fatalf("redistest: %v", err)
		}
	}
}

// Addr returns the server's host:port.
func (s *Server) Addr() string { return net.JoinHostPort("127.0.0.1", strconv.Itoa(s.port)) }

// Pid is the running server's process id (0 when stopped): benchmarks
// read its CPU time.
func (s *Server) Pid() int {
	if s.cmd == nil || s.cmd.Process == nil {
		return 0
	}
	return s.cmd.Process.Pid
}

// Stop kills the server with SIGKILL and waits for it to exit, as a crash
// would. Without persistence its data is gone.
func (s *Server) Stop() {
	s.tb.Helper()
	s.kill()
}

// Restart starts a fresh server on the same port after Stop, and waits
// until it answers PING.
func (s *Server) Restart() {
	s.tb.Helper()
	s.kill()
	// A just-killed server's port can stay briefly unavailable; retry until
	// the start deadline rather than fail on the first bind error.
	deadline := time.Now().Add(startTimeout)
	for {
		err := s.start()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			s.tb.Fatalf("redistest: restart: %v", err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// Freeze stops the server with SIGSTOP. The kernel still accepts TCP
// connections and buffers requests, but nothing answers: a hung server,
// which is what timeouts and breakers must survive. Thaw resumes it.
func (s *Server) Freeze() { s.signal(syscall.SIGSTOP, true) }

// Thaw resumes a frozen server with SIGCONT; it then answers what was
// buffered.
func (s *Server) Thaw() { s.signal(syscall.SIGCONT, false) }

func (s *Server) signal(sig syscall.Signal, frozen bool) {
	s.tb.Helper()
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cmd == nil {
		s.tb.Fatalf("redistest: %v on a stopped server", sig)
	}
	if err := s.cmd.Process.Signal(sig); err != nil {
		s.tb.Fatalf("redistest: %v: %v", sig, err)
	}
	s.frozen = frozen
}

func (s *Server) start() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	log := &tailBuffer{max: 8 << 10}
	cmd := exec.Command(s.bin,
		"--port", strconv.Itoa(s.port),
		"--bind", "127.0.0.1",
		"--save", "",
		"--appendonly", "no",
		"--dir", s.dir,
		"--loglevel", "warning",
	)
	cmd.Args = append(cmd.Args, s.extra...)
	cmd.Stdout, cmd.Stderr = log, log
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start %s: %w", s.bin, err)
	}
	exited := make(chan struct{})
	go func() {
		_ = cmd.Wait()
		close(exited)
	}()
	if err := waitPing(s.Addr(), cmd.Process.Pid, exited); err != nil {
		_ = cmd.Process.Kill()
		<-exited
		return fmt.Errorf("redis-server on port %d: %w; output:\n%s", s.port, err, log)
	}
	s.cmd, s.exited, s.frozen, s.log = cmd, exited, false, log
	return nil
}

// kill is Stop without the test helper; it is also the cleanup.
func (s *Server) kill() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cmd == nil {
		return
	}
	_ = s.cmd.Process.Kill() // SIGKILL ends a stopped process too
	<-s.exited
	if s.tb.Failed() && s.log.Len() > 0 {
		s.tb.Logf("redistest: redis-server output:\n%s", s.log)
	}
	s.cmd, s.exited, s.frozen = nil, nil, false
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("find a free port: %w", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// waitPing polls addr until the server there answers PING and INFO says
// it is process pid (not some other server that won a race for the port),
// the process exits, or startTimeout passes.
func waitPing(addr string, pid int, exited <-chan struct{}) error {
	deadline := time.Now().Add(startTimeout)
	var last error
	for time.Now().Before(deadline) {
		select {
		case <-exited:
			return errors.New("exited during startup")
		default:
		}
		if last = ping(addr, pid, deadline); last == nil {
			return nil
		}
		time.Sleep(10 * time.Millisecond)
	}
	return fmt.Errorf("no PONG within %v: %w", startTimeout, last)
}

func ping(addr string, pid int, deadline time.Time) error {
	c, err := net.DialTimeout("tcp", addr, time.Until(deadline))
	if err != nil {
		return err
	}
	defer c.Close()
	if err := c.SetDeadline(deadline); err != nil {
		return err
	}
	if _, err := c.Write([]byte("*1\r\n$4\r\nPING\r\n*2\r\n$4\r\nINFO\r\n$6\r\nserver\r\n")); err != nil {
		return err
	}
	r := bufio.NewReader(c)
	line, err := r.ReadString('\n')
	if err != nil {
		return err
	}
	if line != "+PONG\r\n" {
		return fmt.Errorf("PING answered %q", line)
	}
	head, err := r.ReadString('\n') // $<len>\r\n, then the INFO text
	if err != nil {
		return err
	}
	n, err := strconv.Atoi(strings.TrimSuffix(strings.TrimPrefix(head, "$"), "\r\n"))
	if err != nil {
		return fmt.Errorf("INFO answered %q", head)
	}
	info := make([]byte, n)
	if _, err := io.ReadFull(r, info); err != nil {
		return err
	}
	if want := fmt.Sprintf("process_id:%d\r\n", pid); !bytes.Contains(info, []byte(want)) {
		return fmt.Errorf("port %s is served by another redis-server", addr)
	}
	return nil
}

// tailBuffer keeps the last max bytes written, enough to show why a server
// failed without holding a chatty log in memory.
type tailBuffer struct {
	mu  sync.Mutex
	max int
	b   []byte
}

func (t *tailBuffer) Write(p []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.b = append(t.b, p...)
	if over := len(t.b) - t.max; over > 0 {
		t.b = t.b[over:]
	}
	return len(p), nil
}

func (t *tailBuffer) Len() int {
	t.mu.Lock()
	defer t.mu.Unlock()
	return len(t.b)
}

func (t *tailBuffer) String() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	return string(bytes.TrimSpace(t.b))
}
