package nats

import (
	"context"
	"testing"
	"time"

	"github.com/ripple-rec/ripple/internal/natstest"
)

// startServer is a real nats-server on its own port (natstest).
func startServer(t testing.TB) *natstest.Server { return natstest.Start(t) }

// openLog opens a Log on s with n partitions and closes it at cleanup.
func openLog(t testing.TB, s *natstest.Server, n int) *Log {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	l, err := Open(ctx, Options{URL: s.URL(), Partitions: n, Replicas: 1})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	return l
}
