package online

import (
	"context"
	"sync"

	"github.com/ripple-rec/ripple/internal/cache"
)

// fanout shares one bus subscription among the reader's tiers. Several
// subscriptions to one channel over one connection would each see the
// others' confirmations as resubscriptions and flush their tier for
// nothing; one subscription delivering to every tier avoids that.
type fanout struct {
	bus  cache.Bus
	once sync.Once
	err  error
	mu   sync.RWMutex
	fns  []func(keys []string)
}

func (f *fanout) Publish(ctx context.Context, keys []string) error { return f.bus.Publish(ctx, keys) }

func (f *fanout) Subscribe(ctx context.Context, fn func(keys []string)) error {
	f.mu.Lock()
	f.fns = append(f.fns, fn)
	f.mu.Unlock()
	f.once.Do(func() {
		// The subscription lives as long as the bus (Reader.Close ends
		// the tiers; the bus owner closes the bus).
		f.err = f.bus.Subscribe(context.WithoutCancel(ctx), func(keys []string) {
			f.mu.RLock()
			defer f.mu.RUnlock()
			for _, fn := range f.fns {
				fn(keys)
			}
		})
	})
	return f.err
}

// Close is the bus owner's job.
func (f *fanout) Close() {}
