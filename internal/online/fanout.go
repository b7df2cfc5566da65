package online

import (
	"context"
	"errors"
	"sync"

	"github.com/ripple-rec/ripple/internal/cache"
)

// fanout shares one bus subscription among the reader's tiers. Several
// subscriptions to one channel over one connection would each see the
// others' confirmations as resubscriptions and flush their tier for
// nothing; one subscription delivering to every tier avoids that. The bus
// may be attached late (the node started while Redis was down): until
// then nothing is published or received, and TTLs bound staleness.
type fanout struct {
	mu  sync.RWMutex
	bus cache.Bus
	fns []func(keys []string)
}

var errNoBus = errors.New("online: invalidation bus not connected")

func (f *fanout) Publish(ctx context.Context, keys []string) error {
	f.mu.RLock()
	bus := f.bus
	f.mu.RUnlock()
	if bus == nil {
		return errNoBus
	}
	return bus.Publish(ctx, keys)
}

// Subscribe registers a tier; delivery starts when a bus is attached.
func (f *fanout) Subscribe(_ context.Context, fn func(keys []string)) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.fns = append(f.fns, fn)
	return nil
}

// attach starts the one subscription. A bus attached after the tiers
// served anything may have missed invalidations: they are flushed.
func (f *fanout) attach(bus cache.Bus, late bool) error {
	f.mu.Lock()
	f.bus = bus
	f.mu.Unlock()
	if late {
		f.deliver(nil)
	}
	// The subscription lives as long as the bus; its owner closes it.
	return bus.Subscribe(context.Background(), f.deliver)
}

func (f *fanout) deliver(keys []string) {
	f.mu.RLock()
	defer f.mu.RUnlock()
	for _, fn := range f.fns {
		fn(keys)
	}
}

// Close is the bus owner's job.
func (f *fanout) Close() {}
