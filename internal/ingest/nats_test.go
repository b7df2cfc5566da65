package ingest_test

import (
	"context"
	"io"
	"net"
	"os/exec"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/ripple-rec/ripple/internal/eventlog/nats"
	"github.com/ripple-rec/ripple/internal/ingest"
)

// startNATS runs a real nats-server with JetStream on loopback until the
// test ends, or skips the test when none is installed.
func startNATS(t *testing.T) string {
	url, _ := startKillableNATS(t)
	return url
}

// startKillableNATS is startNATS with a kill -9 of the server.
func startKillableNATS(t *testing.T) (string, func()) {
	t.Helper()
	bin, err := exec.LookPath("nats-server")
	if err != nil {
		if bin, err = exec.LookPath("/usr/sbin/nats-server"); err != nil {
			t.Skip("nats-server not installed (apt-get install nats-server)")
		}
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := strconv.Itoa(l.Addr().(*net.TCPAddr).Port)
	l.Close()
	cmd := exec.Command(bin, "-a", "127.0.0.1", "-p", port, "-js", "-sd", t.TempDir())
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	var once sync.Once
	kill := func() { once.Do(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() }) }
	t.Cleanup(kill)
	for deadline := time.Now().Add(10 * time.Second); ; {
		c, err := net.DialTimeout("tcp", "127.0.0.1:"+port, 100*time.Millisecond)
		if err == nil {
			c.Close()
			return "nats://127.0.0.1:" + port, kill
		}
		if time.Now().After(deadline) {
			t.Fatalf("nats-server not listening: %v", err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func natsLog(url string) brokerLog {
	return func(ctx context.Context) (interface {
		ingest.PartitionedLog
		io.Closer
	}, error) {
		return ingest.OpenNATS(ctx, nats.Options{URL: url, Partitions: 6})
	}
}

// The NATS variants of the Kafka node tests: stream sequences are offsets
// that increase but skip numbers within a partition.
func TestNATSNodeEqualsEmbedded(t *testing.T) { testNodeEqualsEmbedded(t, natsLog(startNATS(t))) }

func TestNATSNodeKilledResumesFromSnapshot(t *testing.T) {
	testNodeKilledResumes(t, natsLog(startNATS(t)))
}

func TestNATSDownRefusesEvents(t *testing.T) {
	url, kill := startKillableNATS(t)
	testDownRefusesEvents(t, natsLog(url), kill)
}
