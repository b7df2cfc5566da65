package api_test

import (
	"context"
	"errors"
	"net/http"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/ripple-rec/ripple/internal/api"
	"github.com/ripple-rec/ripple/internal/train"
)

// slowTrainer takes d per run, or fails with err.
type slowTrainer struct {
	d   time.Duration
	err error
}

func (s slowTrainer) Run(ctx context.Context) (*train.Report, error) {
	select {
	case <-time.After(s.d):
		if s.err != nil {
			return nil, s.err
		}
		return &train.Report{Model: "blend@7"}, nil
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

func (s slowTrainer) Start() bool { return true }

// TestTrainOutlastsWriteTimeout: a wait=true training longer than the
// server's write timeout still gets its answer; one longer than TrainWait
// gets a clear 503 while the run goes on; a failure is a 500 that says the
// serving model stays.
func TestTrainOutlastsWriteTimeout(t *testing.T) {
	n := newNodeServer(t, func(o *api.Options) {
		o.Trainer, o.TrainWait = slowTrainer{d: 300 * time.Millisecond}, 5*time.Second
	}, func(s *http.Server) { s.WriteTimeout = 100 * time.Millisecond })
	r := n.do(t, "POST", "/v1/admin/train?wait=true", "", "")
	require.Equal(t, 200, r.code, r.raw)
	assert.Equal(t, "blend@7", r.body["model"])

	n = newNode(t, func(o *api.Options) {
		o.Trainer, o.TrainWait = slowTrainer{d: time.Minute}, 50*time.Millisecond
	})
	r = n.do(t, "POST", "/v1/admin/train?wait=true", "", "")
	assert.Equal(t, 503, r.code)
	assert.Equal(t, "timeout", errorCode(r))

	n = newNode(t, func(o *api.Options) { o.Trainer = slowTrainer{err: errors.New("disk full")} })
	r = n.do(t, "POST", "/v1/admin/train?wait=true", "", "")
	assert.Equal(t, 500, r.code)
	assert.Equal(t, "train_failed", errorCode(r))
	assert.NotContains(t, r.raw, "disk full", "internal errors stay in the log")
	r = n.do(t, "POST", "/v1/admin/train", "", "")
	assert.Equal(t, 202, r.code)
	assert.Equal(t, "started", r.body["status"])
}
