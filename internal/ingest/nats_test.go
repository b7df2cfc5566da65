package ingest_test

import (
	"context"
	"io"
	"testing"

	"github.com/ripple-rec/ripple/internal/eventlog/nats"
	"github.com/ripple-rec/ripple/internal/ingest"
	"github.com/ripple-rec/ripple/internal/natstest"
)

// startNATS runs a real nats-server with JetStream on loopback until the
// test ends, or skips the test when none is installed.
func startNATS(t *testing.T) string { return natstest.Start(t).URL() }

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
	srv := natstest.Start(t)
	url, kill := srv.URL(), srv.Kill
	testDownRefusesEvents(t, natsLog(url), kill)
}
