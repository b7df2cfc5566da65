package ownership

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/redis/rueidis"
	"github.com/stretchr/testify/require"

	"github.com/ripple-rec/ripple/internal/redistest"
)

const ttl = 400 * time.Millisecond

// ledger records ownership as the callbacks report it, and every moment two
// members held one partition.
type ledger struct {
	mu         sync.Mutex
	owner      map[int32]string
	revoked    map[string][]int32
	lost       map[string][]int32
	violations []string
}

func newLedger() *ledger {
	return &ledger{owner: map[int32]string{}, revoked: map[string][]int32{}, lost: map[string][]int32{}}
}

func (g *ledger) join(t *testing.T, c rueidis.Client, name string) *Leases {
	t.Helper()
	release := func(how map[string][]int32) func(context.Context, []int32) {
		return func(_ context.Context, ps []int32) {
			time.Sleep(50 * time.Millisecond) // a worker flushing its state
			g.mu.Lock()
			defer g.mu.Unlock()
			for _, p := range ps {
				if g.owner[p] == name {
					delete(g.owner, p)
				}
			}
			how[name] = append(how[name], ps...)
		}
	}
	l, err := Join(Options{Client: c, Group: "test", Member: name, Partitions: 6, TTL: ttl,
		OnAssigned: func(_ context.Context, ps []int32) {
			g.mu.Lock()
			defer g.mu.Unlock()
			for _, p := range ps {
				if prev, ok := g.owner[p]; ok && prev != name {
					g.violations = append(g.violations, fmt.Sprintf("%d acquired by %s while %s held it", p, name, prev))
				}
				g.owner[p] = name
			}
		},
		OnRevoked: release(g.revoked), OnLost: release(g.lost)})
	require.NoError(t, err)
	return l
}

func (g *ledger) owned(name string) []int32 {
	g.mu.Lock()
	defer g.mu.Unlock()
	var ps []int32
	for p, n := range g.owner {
		if n == name {
			ps = append(ps, p)
		}
	}
	slices.Sort(ps)
	return ps
}

func client(t *testing.T) rueidis.Client {
	t.Helper()
	srv := redistest.Start(t)
	c, err := rueidis.NewClient(rueidis.ClientOption{InitAddress: []string{srv.Addr()}, DisableCache: true})
	require.NoError(t, err)
	t.Cleanup(c.Close)
	return c
}

var all = []int32{0, 1, 2, 3, 4, 5}

// Members split the partitions, a joining member takes its share through
// clean revokes, a leaving one hands its partitions over at once, and no
// partition ever has two owners.
func TestLeasesSplitAndMove(t *testing.T) {
	c := client(t)
	g := newLedger()
	a := g.join(t, c, "a")
	require.Eventually(t, func() bool { return slices.Equal(g.owned("a"), all) }, 5*time.Second, 10*time.Millisecond)
	require.True(t, a.Joined())

	b := g.join(t, c, "b")
	defer b.Close()
	require.Eventually(t, func() bool { return len(g.owned("a")) == 3 && len(g.owned("b")) == 3 },
		5*time.Second, 10*time.Millisecond, "two members must split six partitions 3/3")
	require.Equal(t, g.owned("a"), a.Owned())
	require.Equal(t, g.owned("b"), b.Owned())
	bOwns := g.owned("b")
	g.mu.Lock()
	revoked := slices.Clone(g.revoked["a"])
	g.mu.Unlock()
	require.ElementsMatch(t, revoked, bOwns, "b's partitions came from a's clean revokes")

	start := time.Now()
	a.Close()
	require.Eventually(t, func() bool { return slices.Equal(g.owned("b"), all) }, 5*time.Second, 10*time.Millisecond)
	require.Less(t, time.Since(start), ttl, "a member that leaves releases its leases: no wait for them to expire")
	g.mu.Lock()
	defer g.mu.Unlock()
	require.Empty(t, g.violations)
	require.Empty(t, g.lost)
}

// A member that dies without releasing (kill -9) keeps its partitions
// unowned until its heartbeat and leases expire; then the others take them.
func TestLeasesOfADeadMemberExpire(t *testing.T) {
	c := client(t)
	g := newLedger()
	a, b := g.join(t, c, "a"), g.join(t, c, "b")
	defer b.Close()
	require.Eventually(t, func() bool { return len(g.owned("a")) == 3 && len(g.owned("b")) == 3 },
		5*time.Second, 10*time.Millisecond)
	a.crash = true
	a.Close()
	killed := time.Now()
	g.mu.Lock()
	for p, n := range g.owner {
		if n == "a" {
			delete(g.owner, p) // dead: it applies nothing, though it never released
		}
	}
	g.mu.Unlock()
	require.Eventually(t, func() bool { return slices.Equal(b.Owned(), all) }, 5*time.Second, 10*time.Millisecond)
	require.GreaterOrEqual(t, time.Since(killed), ttl/2, "the dead member's leases must expire first")
	g.mu.Lock()
	defer g.mu.Unlock()
	require.Empty(t, g.violations)
}

// A member whose leases were taken (it stalled past the TTL) learns it on
// its next renewal and stops applying them.
func TestLeasesTakenAreLost(t *testing.T) {
	c := client(t)
	g := newLedger()
	a := g.join(t, c, "a")
	defer a.Close()
	require.Eventually(t, func() bool { return slices.Equal(a.Owned(), all) }, 5*time.Second, 10*time.Millisecond)
	ctx := context.Background()
	require.NoError(t, c.Do(ctx, c.B().Set().Key(a.lease(2)).Value("intruder").Build()).Error())
	require.Eventually(t, func() bool { return !slices.Contains(a.Owned(), 2) }, 5*time.Second, 10*time.Millisecond)
	g.mu.Lock()
	defer g.mu.Unlock()
	require.Equal(t, []int32{2}, g.lost["a"])
}

// The assignment is balanced, the same for everyone, and moves little.
func TestAssignIsBalancedAndStable(t *testing.T) {
	members := []string{"w0", "w1", "w2", "w3"}
	for n := 1; n <= len(members); n++ {
		for _, parts := range []int{1, 6, 7, 64} {
			got := assign(members[:n], parts)
			require.Equal(t, got, assign(members[:n], parts), "deterministic")
			count := map[string]int{}
			for _, m := range got {
				count[m]++
			}
			for _, m := range members[:n] {
				require.GreaterOrEqual(t, count[m], parts/n, "%d members, %d partitions: %v", n, parts, count)
				require.LessOrEqual(t, count[m], (parts+n-1)/n, "%d members, %d partitions: %v", n, parts, count)
			}
		}
	}
	before, after := assign(members, 64), assign(members[:3], 64)
	moved := 0
	for p := range before {
		if before[p] != "w3" && before[p] != after[p] {
			moved++
		}
	}
	require.LessOrEqual(t, moved, 8, "w3 leaving should move mostly w3's own 16 partitions")
}
