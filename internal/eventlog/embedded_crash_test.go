package eventlog

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"os/exec"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// crashDirEnv turns the test binary into the appending child of
// TestEmbeddedSurvivesKill.
const crashDirEnv = "RIPPLE_EVENTLOG_CRASH_DIR"

// TestEmbeddedSurvivesKill runs appenders in a child process, kill -9s it
// mid-stream and checks that every append the child saw acknowledged is in
// the reopened log, at its offset and with its payload, and that offsets
// stay contiguous. Two rounds also check that a crashed log is appended to
// correctly.
func TestEmbeddedSurvivesKill(t *testing.T) {
	if dir := os.Getenv(crashDirEnv); dir != "" {
		crashChild(dir)
		return
	}
	dir := t.TempDir()
	acked := map[uint64]string{}
	for round := range 2 {
		cmd := exec.Command(os.Args[0], "-test.run=^TestEmbeddedSurvivesKill$", "-test.count=1")
		cmd.Env = append(os.Environ(), crashDirEnv+"="+dir)
		cmd.Stderr = os.Stderr
		out, err := cmd.StdoutPipe()
		require.NoError(t, err)
		require.NoError(t, cmd.Start())

		killAfter := 200 + 300*round
		lines := 0
		timeout := time.AfterFunc(20*time.Second, func() { _ = cmd.Process.Kill() })
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			var first uint64
			var n int
			var prefix string
			if _, err := fmt.Sscanf(sc.Text(), "%d %d %s", &first, &n, &prefix); err != nil {
				continue // not an acknowledgement
			}
			for i, p := range payloads(prefix, n) {
				acked[first+uint64(i)] = string(p)
			}
			// Lines still in the pipe after the kill were acknowledged
			// before it, so keep reading to EOF.
			if lines++; lines == killAfter {
				require.NoError(t, cmd.Process.Kill())
			}
		}
		timeout.Stop()
		err = cmd.Wait()
		status, ok := cmd.ProcessState.Sys().(syscall.WaitStatus)
		require.True(t, ok && status.Signaled() && status.Signal() == syscall.SIGKILL, "child ended with %v", err)
		require.GreaterOrEqual(t, lines, killAfter)

		l, err := OpenEmbedded(dir, EmbeddedOptions{})
		require.NoError(t, err)
		recs := readAll(t, l, 1)
		require.NoError(t, l.Close())
		for i, r := range recs {
			require.Equal(t, uint64(i+1), r.off, "round %d: offsets contiguous", round)
		}
		for off, want := range acked {
			require.LessOrEqual(t, off, uint64(len(recs)), "round %d: acknowledged offset %d lost", round, off)
			require.Equal(t, want, recs[off-1].data, "round %d: offset %d", round, off)
		}
		t.Logf("round %d: %d acknowledged, %d recovered", round, len(acked), len(recs))
	}
}

// crashChild appends from four goroutines until killed, printing
// "first count prefix" after each acknowledged Append.
func crashChild(dir string) {
	// Never outlive a parent that died without killing us.
	time.AfterFunc(30*time.Second, func() { os.Exit(3) })
	l, err := OpenEmbedded(dir, EmbeddedOptions{})
	if err != nil {
		fmt.Fprintln(os.Stderr, "child:", err)
		os.Exit(2)
	}
	var mu sync.Mutex
	for w := range 4 {
		go func() {
			for c := 0; ; c++ {
				prefix := fmt.Sprintf("p%d/w%d/c%d", os.Getpid(), w, c)
				ps := payloads(prefix, 1+c%13)
				first, err := l.Append(context.Background(), ps)
				if err != nil {
					fmt.Fprintln(os.Stderr, "child:", err)
					os.Exit(2)
				}
				mu.Lock()
				// One write per line: a kill cannot leave half a line.
				_, _ = os.Stdout.WriteString(fmt.Sprintf("%d %d %s\n", first, len(ps), prefix))
				mu.Unlock()
			}
		}()
	}
	select {}
}
