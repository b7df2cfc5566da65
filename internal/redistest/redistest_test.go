package redistest

import (
	"bufio"
	"errors"
	"fmt"
	"net"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// do sends one command and returns the first line of the reply.
func do(addr string, timeout time.Duration, args ...string) (string, error) {
	c, err := net.DialTimeout("tcp", addr, timeout)
	if err != nil {
		return "", err
	}
	defer c.Close()
	if err := c.SetDeadline(time.Now().Add(timeout)); err != nil {
		return "", err
	}
	var req strings.Builder
	fmt.Fprintf(&req, "*%d\r\n", len(args))
	for _, a := range args {
		fmt.Fprintf(&req, "$%d\r\n%s\r\n", len(a), a)
	}
	if _, err := c.Write([]byte(req.String())); err != nil {
		return "", err
	}
	r := bufio.NewReader(c)
	line, err := r.ReadString('\n')
	if err != nil {
		return "", err
	}
	if strings.HasPrefix(line, "$") && line != "$-1\r\n" { // bulk string: return its body
		line, err = r.ReadString('\n')
	}
	return strings.TrimSuffix(line, "\r\n"), err
}

func alive(pid int) bool { return syscall.Kill(pid, 0) == nil }

func TestServerLifecycle(t *testing.T) {
	s := Start(t)
	addr := s.Addr()
	require.True(t, strings.HasPrefix(addr, "127.0.0.1:"), addr)

	got, err := do(addr, time.Second, "SET", "k", "v")
	require.NoError(t, err)
	require.Equal(t, "+OK", got)
	got, err = do(addr, time.Second, "GET", "k")
	require.NoError(t, err)
	require.Equal(t, "v", got)

	s.Stop()
	_, err = do(addr, time.Second, "PING")
	require.Error(t, err, "a stopped server refuses connections")

	s.Restart()
	assert.Equal(t, addr, s.Addr(), "restart keeps the port")
	got, err = do(addr, time.Second, "GET", "k")
	require.NoError(t, err)
	assert.Equal(t, "$-1", got, "without persistence a crash loses the data")
}

func TestServerFreeze(t *testing.T) {
	s := Start(t)
	s.Freeze()
	start := time.Now()
	c, err := net.DialTimeout("tcp", s.Addr(), time.Second)
	require.NoError(t, err, "a hung server still accepts connections")
	c.Close()
	_, err = do(s.Addr(), 100*time.Millisecond, "PING")
	var ne net.Error
	require.True(t, errors.As(err, &ne) && ne.Timeout(), "a frozen server must not answer: got %v", err)
	assert.Less(t, time.Since(start), 2*time.Second)

	s.Thaw()
	got, err := do(s.Addr(), time.Second, "PING")
	require.NoError(t, err)
	assert.Equal(t, "+PONG", got)
}

func TestServersAreIndependent(t *testing.T) {
	a, b := Start(t), Start(t)
	require.NotEqual(t, a.Addr(), b.Addr())
	_, err := do(a.Addr(), time.Second, "SET", "k", "a")
	require.NoError(t, err)
	got, err := do(b.Addr(), time.Second, "GET", "k")
	require.NoError(t, err)
	assert.Equal(t, "$-1", got)
}

// The test's cleanup kills the server, even a frozen one.
func TestCleanupKills(t *testing.T) {
	for _, frozen := range []bool{false, true} {
		var pid int
		t.Run(fmt.Sprintf("frozen=%v", frozen), func(t *testing.T) {
			s := Start(t)
			pid = s.cmd.Process.Pid
			if frozen {
				s.Freeze()
			}
		})
		require.NotZero(t, pid)
		assert.False(t, alive(pid), "redis-server %d outlived its test", pid)
	}
}

func TestSkipsWithoutRedis(t *testing.T) {
	t.Setenv("PATH", t.TempDir())
	var skipped bool
	t.Run("inner", func(t *testing.T) {
		defer func() { skipped = t.Skipped() }()
		Start(t)
		t.Error("Start returned without redis-server in PATH")
	})
	assert.True(t, skipped)
}
