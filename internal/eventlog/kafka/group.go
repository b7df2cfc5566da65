package kafka

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
)

// GroupOptions configures JoinGroup.
type GroupOptions struct {
	Brokers []string
	Topic   string
	Group   string
	// OnAssigned is called with partitions this member now owns.
	OnAssigned func(ctx context.Context, partitions []int32)
	// OnRevoked is called with partitions this member must give up; they
	// are released to another member only after it returns, so it is where
	// a worker flushes state and its applied offsets.
	OnRevoked func(ctx context.Context, partitions []int32)
	// OnLost is called when partitions were taken without a clean revoke
	// (session expired, fatal group error): another member may own them
	// already. Nil calls OnRevoked, which is safe only if the state store
	// refuses to store an applied offset older than the one it holds.
	OnLost func(ctx context.Context, partitions []int32)

	// Zero values keep franz-go's defaults (45s, 60s, 3s); tests shorten them.
	SessionTimeout    time.Duration
	RebalanceTimeout  time.Duration
	HeartbeatInterval time.Duration
}

// Group is membership in a consumer group used only to decide partition
// ownership: it fetches nothing and commits nothing. Owners read their
// partitions with a PartitionReader from the offset stored with their state.
type Group struct {
	cl *kgo.Client

	mu     sync.Mutex
	owned  map[int32]bool
	joined bool
}

// JoinGroup joins opts.Group in the background; callbacks report ownership.
func JoinGroup(opts GroupOptions) (*Group, error) {
	if len(opts.Brokers) == 0 || opts.Topic == "" || opts.Group == "" {
		return nil, errors.New("kafka: group needs brokers, a topic and a group")
	}
	if opts.OnAssigned == nil || opts.OnRevoked == nil {
		return nil, errors.New("kafka: group needs OnAssigned and OnRevoked")
	}
	if opts.OnLost == nil {
		opts.OnLost = opts.OnRevoked
	}
	g := &Group{owned: make(map[int32]bool)}
	// franz-go never calls these concurrently with each other.
	call := func(fn func(context.Context, []int32), own bool) func(context.Context, *kgo.Client, map[string][]int32) {
		return func(ctx context.Context, _ *kgo.Client, m map[string][]int32) {
			ps := slices.Sorted(slices.Values(m[opts.Topic]))
			if own {
				// franz-go calls OnPartitionsAssigned after every join,
				// even one that assigns nothing new.
				g.mu.Lock()
				g.joined = true
				g.mu.Unlock()
			}
			if len(ps) == 0 {
				return
			}
			if own {
				g.set(ps, true)
				fn(ctx, ps)
				return
			}
			fn(ctx, ps)
			g.set(ps, false)
		}
	}
	kopts := []kgo.Opt{
		kgo.SeedBrokers(opts.Brokers...),
		kgo.ClientID("ripple-worker"),
		kgo.ConsumerGroup(opts.Group),
		kgo.ConsumeTopics(opts.Topic),
		kgo.DisableAutoCommit(),
		kgo.OnPartitionsAssigned(call(opts.OnAssigned, true)),
		kgo.OnPartitionsRevoked(call(opts.OnRevoked, false)),
		kgo.OnPartitionsLost(call(opts.OnLost, false)),
	}
	for _, d := range []struct {
		v   time.Duration
		opt func(time.Duration) kgo.GroupOpt
	}{
		{opts.SessionTimeout, kgo.SessionTimeout},
		{opts.RebalanceTimeout, kgo.RebalanceTimeout},
		{opts.HeartbeatInterval, kgo.HeartbeatInterval},
	} {
		if d.v > 0 {
			kopts = append(kopts, d.opt(d.v))
		}
	}
	cl, err := kgo.NewClient(kopts...)
	if err != nil {
		return nil, fmt.Errorf("kafka: join group %s: %w", opts.Group, err)
	}
	// The group client would otherwise fetch records nobody polls. Joining
	// takes a round trip or more, so no fetch starts before this.
	cl.PauseFetchTopics(opts.Topic)
	g.cl = cl
	return g, nil
}

func (g *Group) set(ps []int32, own bool) {
	g.mu.Lock()
	defer g.mu.Unlock()
	for _, p := range ps {
		if own {
			g.owned[p] = true
		} else {
			delete(g.owned, p)
		}
	}
}

// Joined reports whether this member has completed a join: its ownership
// (possibly none) is known.
func (g *Group) Joined() bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.joined
}

// Owned is the partitions this member currently owns, sorted.
func (g *Group) Owned() []int32 {
	g.mu.Lock()
	defer g.mu.Unlock()
	ps := make([]int32, 0, len(g.owned))
	for p := range g.owned {
		ps = append(ps, p)
	}
	slices.Sort(ps)
	return ps
}

// Close revokes this member's partitions (OnRevoked runs and returns first),
// then leaves the group so that others take them over without waiting for
// the session to time out.
func (g *Group) Close() {
	g.cl.Close()
}
