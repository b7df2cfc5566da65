package cache

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	mrand "math/rand/v2"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redis/rueidis"
)

// Bus carries invalidations between the instances that cache the same store.
type Bus interface {
	// Publish tells the other instances to drop keys.
	Publish(ctx context.Context, keys []string) error
	// Subscribe starts delivering to fn, until ctx ends or Close, the keys that other instances
	// invalidate, and nil each time the subscription is (re)established: invalidations sent
	// before then may have been missed. It returns at once; delivery runs in the background.
	Subscribe(ctx context.Context, fn func(keys []string)) error
	// Close ends the subscriptions.
	Close()
}

const (
	busBackoffMin = 50 * time.Millisecond
	busBackoffMax = 5 * time.Second
)

var errBusClosed = errors.New("cache: bus closed")

// RedisBus is a Bus over Redis pub/sub. A message is the sender id and the keys, joined by
// newlines, so one PUBLISH carries a whole batch; a bus ignores its own messages, so an
// instance keeps what it Set after invalidating. Keys must not contain newlines.
type RedisBus struct {
	client  rueidis.Client
	channel string
	sender  string
	// confirms counts subscription confirmations (tests wait on it).
	confirms atomic.Int64

	mu     sync.Mutex
	closed bool
	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup
}

// NewRedisBus returns a bus on channel. The caller keeps owning client; Close does not close it.
func NewRedisBus(client rueidis.Client, channel string) *RedisBus {
	var id [8]byte
	_, _ = rand.Read(id[:]) // never fails (crypto/rand, Go >= 1.24)
	ctx, cancel := context.WithCancel(context.Background())
	return &RedisBus{client: client, channel: channel, sender: hex.EncodeToString(id[:]), ctx: ctx, cancel: cancel}
}

// Publish sends keys to the other subscribers of the channel in one message.
func (b *RedisBus) Publish(ctx context.Context, keys []string) error {
	if len(keys) == 0 {
		return nil
	}
	n := len(b.sender)
	for _, k := range keys {
		if strings.IndexByte(k, '\n') >= 0 {
			return fmt.Errorf("cache: bus: key %q contains a newline", k)
		}
		n += 1 + len(k)
	}
	var msg strings.Builder
	msg.Grow(n)
	msg.WriteString(b.sender)
	for _, k := range keys {
		msg.WriteByte('\n')
		msg.WriteString(k)
	}
	cmd := b.client.B().Publish().Channel(b.channel).Message(msg.String()).Build()
	if err := b.client.Do(ctx, cmd).Error(); err != nil {
		return fmt.Errorf("cache: bus: publish on %q: %w", b.channel, err)
	}
	return nil
}

// Subscribe implements Bus. When the subscription drops (Redis restarted, network), it
// resubscribes with exponential backoff (50ms to 5s, jittered) and then calls fn(nil); the
// first subscription does not (nothing can have been missed before it).
func (b *RedisBus) Subscribe(ctx context.Context, fn func(keys []string)) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed {
		return errBusClosed
	}
	ctx, cancel := context.WithCancel(ctx)
	stop := context.AfterFunc(b.ctx, cancel)
	// The subscription hook runs on rueidis' connection goroutine and must not block, so it
	// signals a goroutine of ours that calls fn(nil).
	subscribed := make(chan struct{}, 1)
	b.wg.Add(2)
	go func() {
		defer b.wg.Done()
		// The first confirmation is the subscription starting, not coming
		// back: nothing was missed, and flushing then would throw away what
		// the first requests just loaded.
		first := true
		for {
			select {
			case <-ctx.Done():
				return
			case <-subscribed:
				if !first {
					fn(nil)
				}
				first = false
			}
		}
	}()
	go func() {
		defer b.wg.Done()
		defer stop()
		defer cancel()
		b.receive(ctx, fn, subscribed)
	}()
	return nil
}

func (b *RedisBus) receive(ctx context.Context, fn func([]string), subscribed chan<- struct{}) {
	var confirmed atomic.Bool
	// rueidis may resubscribe by itself after a reconnection without Receive returning; the
	// hook sees every confirmation either way.
	hooked := rueidis.WithOnSubscriptionHook(ctx, func(s rueidis.PubSubSubscription) {
		if s.Kind == "subscribe" && s.Channel == b.channel {
			confirmed.Store(true)
			b.confirms.Add(1)
			select {
			case subscribed <- struct{}{}:
			default: // a flush is pending already
			}
		}
	})
	backoff := busBackoffMin
	for {
		confirmed.Store(false)
		err := b.client.Receive(hooked, b.client.B().Subscribe().Channel(b.channel).Build(), func(m rueidis.PubSubMessage) {
			b.deliver(m.Message, fn)
		})
		if ctx.Err() != nil || errors.Is(err, rueidis.ErrClosing) {
			return
		}
		if confirmed.Load() {
			backoff = busBackoffMin
		}
		wait := backoff/2 + mrand.N(backoff/2+1)
		select {
		case <-ctx.Done():
			return
		case <-time.After(wait):
		}
		backoff = min(2*backoff, busBackoffMax)
	}
}

func (b *RedisBus) deliver(msg string, fn func([]string)) {
	sender, keys, ok := strings.Cut(msg, "\n")
	if !ok || sender == b.sender || keys == "" {
		return
	}
	fn(strings.Split(keys, "\n"))
}

// Close ends the subscriptions of this bus and waits for their goroutines.
func (b *RedisBus) Close() {
	b.mu.Lock()
	b.closed = true
	b.mu.Unlock()
	b.cancel()
	b.wg.Wait()
}
