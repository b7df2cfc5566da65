// Package ownership shares a partitioned log's partitions among workers
// through leases in Redis, for logs whose broker does not assign partitions
// to a group of consumers (NATS JetStream). It gives what a Kafka consumer
// group gives a worker: each partition has at most one owner at a time, a
// worker that dies loses its partitions after the lease TTL, a worker that
// joins takes some over, and a partition that moves is released by its old
// owner (OnRevoked returns first) before the new one acquires it.
//
// Every member heartbeats into a sorted set of live members (score: when
// its heartbeat expires). Each computes the same assignment from the live
// members by rendezvous hashing, so only the partitions of a member that
// left, or that a joining member wins, move. A partition is owned through a
// lease key (SET NX PX), renewed by its owner each tick and deleted by it on
// release; an owner that cannot renew within the TTL stops applying
// (OnLost), because another member may acquire the lease after it expires.
package ownership

import (
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"log/slog"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/redis/rueidis"
)

// Options configure Join.
type Options struct {
	Client rueidis.Client
	// Group names the set of workers and their leases (one per log): keys
	// are "<Group>:members" and "<Group>:lease:<p>" inside one hash tag.
	Group      string
	Member     string // unique among live members
	Partitions int
	// TTL is how long a member's heartbeat and its leases last unrenewed:
	// how long a dead worker's partitions stay unowned. Renewed every TTL/4.
	TTL time.Duration
	// OnAssigned is called with partitions this member acquired. OnRevoked
	// with partitions it must give up: released only after it returns.
	// OnLost with partitions whose lease it could not renew in time:
	// another member may own them already. Never called concurrently.
	OnAssigned, OnRevoked, OnLost func(ctx context.Context, partitions []int32)
	Logger                        *slog.Logger
}

// Leases is one member's share of the partitions.
type Leases struct {
	opts  Options
	keys  struct{ members, prefix string }
	stop  chan struct{}
	done  chan struct{}
	crash bool // tests: stop without releasing

	mu     sync.Mutex
	owned  map[int32]time.Time // partition → when its lease was last renewed
	joined bool
}

var (
	// renew extends the lease KEYS[1] if ARGV[1] holds it.
	renew = rueidis.NewLuaScript(`if redis.call("GET", KEYS[1]) == ARGV[1] then return redis.call("PEXPIRE", KEYS[1], ARGV[2]) end return 0`)
	// release deletes the lease KEYS[1] if ARGV[1] holds it.
	release = rueidis.NewLuaScript(`if redis.call("GET", KEYS[1]) == ARGV[1] then return redis.call("DEL", KEYS[1]) end return 0`)
)

// Join starts this member's heartbeat and lease loop in the background.
func Join(opts Options) (*Leases, error) {
	if opts.Client == nil || opts.Group == "" || opts.Member == "" || opts.Partitions < 1 || opts.TTL <= 0 {
		return nil, errors.New("ownership: want a client, a group, a member, partitions and a TTL")
	}
	if opts.OnAssigned == nil || opts.OnRevoked == nil || opts.OnLost == nil {
		return nil, errors.New("ownership: want OnAssigned, OnRevoked and OnLost")
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	l := &Leases{opts: opts, stop: make(chan struct{}), done: make(chan struct{}), owned: map[int32]time.Time{}}
	tag := "{" + opts.Group + "}"
	l.keys.members, l.keys.prefix = tag+":members", tag+":lease:"
	go l.run()
	return l, nil
}

// Joined reports whether a first round completed: this member's ownership
// (possibly none) is known.
func (l *Leases) Joined() bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.joined
}

// Owned is the partitions this member owns, sorted.
func (l *Leases) Owned() []int32 {
	l.mu.Lock()
	defer l.mu.Unlock()
	out := make([]int32, 0, len(l.owned))
	for p := range l.owned {
		out = append(out, p)
	}
	slices.Sort(out)
	return out
}

// Close revokes every owned partition (OnRevoked returns first), releases
// the leases and leaves, so that others take over at once.
func (l *Leases) Close() {
	select {
	case <-l.stop:
	default:
		close(l.stop)
	}
	<-l.done
}

func (l *Leases) lease(p int32) string { return l.keys.prefix + strconv.Itoa(int(p)) }

func (l *Leases) run() {
	defer close(l.done)
	tick := time.NewTicker(l.opts.TTL / 4)
	defer tick.Stop()
	for {
		l.round()
		select {
		case <-l.stop:
			if !l.crash {
				l.leave()
			}
			return
		case <-tick.C:
		}
	}
}

// round heartbeats, then gives up what is no longer this member's, renews
// what stays, and acquires what is newly its own and free.
func (l *Leases) round() {
	ctx, cancel := context.WithTimeout(context.Background(), l.opts.TTL/2)
	defer cancel()
	members, err := l.heartbeat(ctx)
	if err != nil {
		l.opts.Logger.Warn("ownership heartbeat failed", "err", err)
		l.expire()
		return
	}
	want := map[int32]bool{}
	for p, m := range assign(members, l.opts.Partitions) {
		if m == l.opts.Member {
			want[int32(p)] = true
		}
	}
	var give, keep []int32
	for _, p := range l.Owned() {
		if want[p] {
			keep = append(keep, p)
		} else {
			give = append(give, p)
		}
	}
	if len(give) > 0 {
		l.opts.OnRevoked(context.Background(), give)
		l.drop(give)
		l.releaseAll(give)
		// Closing partitions takes time: the renewals get their own.
		cancel()
		ctx, cancel = context.WithTimeout(context.Background(), l.opts.TTL/2)
		defer cancel()
	}
	var lost []int32
	now := time.Now()
	for _, p := range keep {
		n, err := renew.Exec(ctx, l.opts.Client, []string{l.lease(p)}, []string{l.opts.Member, strconv.FormatInt(l.opts.TTL.Milliseconds(), 10)}).AsInt64()
		switch {
		case err == nil && n == 1:
			l.mu.Lock()
			l.owned[p] = now
			l.mu.Unlock()
		case err == nil:
			lost = append(lost, p) // expired, or another member holds it
		}
	}
	if len(lost) > 0 {
		l.opts.OnLost(ctx, lost)
		l.drop(lost)
	}
	l.expire()
	var got []int32
	for p := range int32(l.opts.Partitions) {
		if !want[p] || l.owns(p) {
			continue
		}
		ok, err := l.opts.Client.Do(ctx, l.opts.Client.B().Set().Key(l.lease(p)).Value(l.opts.Member).Nx().
			Px(l.opts.TTL).Build()).AsBool()
		if err == nil && ok {
			got = append(got, p)
		} else if err != nil && !rueidis.IsRedisNil(err) {
			l.opts.Logger.Warn("ownership: acquiring a lease failed", "partition", p, "err", err)
		}
	}
	if len(got) > 0 {
		l.mu.Lock()
		for _, p := range got {
			l.owned[p] = now
		}
		l.mu.Unlock()
		l.opts.OnAssigned(ctx, got)
	}
	l.mu.Lock()
	l.joined = true
	l.mu.Unlock()
}

// heartbeat refreshes this member, drops expired ones and returns the live
// members, sorted.
func (l *Leases) heartbeat(ctx context.Context) ([]string, error) {
	c := l.opts.Client
	now := time.Now()
	resps := c.DoMulti(ctx,
		c.B().Zadd().Key(l.keys.members).ScoreMember().ScoreMember(float64(now.Add(l.opts.TTL).UnixMilli()), l.opts.Member).Build(),
		c.B().Zremrangebyscore().Key(l.keys.members).Min("-inf").Max("("+strconv.FormatInt(now.UnixMilli(), 10)).Build(),
		c.B().Zrange().Key(l.keys.members).Min("0").Max("-1").Build())
	for _, r := range resps[:2] {
		if err := r.Error(); err != nil {
			return nil, err
		}
	}
	members, err := resps[2].AsStrSlice()
	if err != nil {
		return nil, err
	}
	slices.Sort(members)
	return members, nil
}

// expire stops applying partitions whose lease this member could not renew
// for a TTL: another member may have acquired them.
func (l *Leases) expire() {
	var lost []int32
	l.mu.Lock()
	for p, renewed := range l.owned {
		if time.Since(renewed) >= l.opts.TTL {
			lost = append(lost, p)
		}
	}
	l.mu.Unlock()
	if len(lost) > 0 {
		slices.Sort(lost)
		l.opts.OnLost(context.Background(), lost)
		l.drop(lost)
	}
}

func (l *Leases) owns(p int32) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	_, ok := l.owned[p]
	return ok
}

func (l *Leases) drop(ps []int32) {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, p := range ps {
		delete(l.owned, p)
	}
}

func (l *Leases) releaseAll(ps []int32) {
	ctx, cancel := context.WithTimeout(context.Background(), l.opts.TTL/2)
	defer cancel()
	for _, p := range ps {
		if err := release.Exec(ctx, l.opts.Client, []string{l.lease(p)}, []string{l.opts.Member}).Error(); err != nil {
			// It expires after the TTL: the new owner waits that long.
			l.opts.Logger.Warn("ownership: releasing a lease failed", "partition", p, "err", err)
		}
	}
}

// leave revokes and releases everything and removes this member.
func (l *Leases) leave() {
	if owned := l.Owned(); len(owned) > 0 {
		l.opts.OnRevoked(context.Background(), owned)
		l.drop(owned)
		l.releaseAll(owned)
	}
	ctx, cancel := context.WithTimeout(context.Background(), l.opts.TTL/2)
	defer cancel()
	c := l.opts.Client
	if err := c.Do(ctx, c.B().Zrem().Key(l.keys.members).Member(l.opts.Member).Build()).Error(); err != nil {
		l.opts.Logger.Warn("ownership: leaving failed; the others notice after the TTL", "err", err)
	}
}

// assign gives each partition a member: balanced (every member gets the
// floor or the ceiling of its share) and mostly stable. Each partition
// ranks the members by a rendezvous hash and goes to the best ranked one
// with room under the floor; the remainder goes, one each, to the best
// ranked members not yet given one more. So a member leaving moves little
// more than its own partitions and a member joining takes about its share
// from the others. Every member computes the same answer from the same
// members.
func assign(members []string, partitions int) []string {
	out := make([]string, partitions)
	n := len(members)
	if n == 0 {
		return out
	}
	ranks := make([][]string, partitions)
	for p := range partitions {
		ranked := slices.Clone(members)
		slices.SortFunc(ranked, func(a, b string) int {
			ha, hb := rendezvous(a, p), rendezvous(b, p)
			switch {
			case ha > hb:
				return -1
			case ha < hb:
				return 1
			}
			return strings.Compare(a, b)
		})
		ranks[p] = ranked
	}
	room := make(map[string]int, n)
	for _, m := range members {
		room[m] = partitions / n
	}
	for p, ranked := range ranks {
		for _, m := range ranked {
			if room[m] > 0 {
				out[p], room[m] = m, room[m]-1
				break
			}
		}
	}
	extra := make(map[string]bool, n)
	for p, ranked := range ranks {
		if out[p] != "" {
			continue
		}
		for _, m := range ranked {
			if !extra[m] {
				out[p], extra[m] = m, true
				break
			}
		}
	}
	return out
}

// rendezvous is member m's weight for partition p (FNV-1a, then a
// finalizer that spreads short inputs over all bits).
func rendezvous(m string, p int) uint64 {
	h := fnv.New64a()
	fmt.Fprintf(h, "%s\x00%d", m, p)
	x := h.Sum64()
	x ^= x >> 30
	x *= 0xbf58476d1ce4e5b9
	x ^= x >> 27
	x *= 0x94d049bb133111eb
	return x ^ x>>31
}
