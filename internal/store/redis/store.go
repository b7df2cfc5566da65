package redis

import (
	"context"
	"crypto/sha1"
	"encoding/hex"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redis/rueidis"

	"github.com/ripple-rec/ripple/internal/store"
)

// Guard runs one call under a breaker and a deadline; resilience.Breaker
// implements it.
type Guard interface {
	Do(ctx context.Context, fn func(context.Context) error) error
}

// Admission bounds the calls in flight: Acquire waits a bounded time and
// then fails rather than queueing; resilience.Pool implements it.
type Admission interface {
	Acquire(ctx context.Context) (release func(), err error)
}

// Options configure a Store.
type Options struct {
	Addrs []string // host:port of a single node or any Cluster nodes
	// Prefix versions the key layout ("v1"): a new feature version can be
	// written beside the old one and the old one dropped after cutover.
	Prefix   string
	Username string
	Password string
	// Read and Write guard the two call paths (nil: no breaker, no deadline).
	Read, Write Guard
	// Pool bounds calls in flight across both paths (nil: unbounded).
	Pool Admission
	// WriteChunk is how many entities one pipelined write carries.
	WriteChunk int
	// OffsetTTL keeps source offsets from outliving all data for ever.
	OffsetTTL time.Duration
}

// Store is store.Online on Redis.
type Store struct {
	cl        atomic.Pointer[clientRef] // nil until connected
	opts      Options
	connected chan struct{}
	stop      chan struct{}
	stopOnce  sync.Once
}

type clientRef struct{ rueidis.Client }

// errNotConnected: the store has not reached Redis yet (OpenLazy).
var errNotConnected = errors.New("redis: not connected yet")

var _ store.Online = (*Store)(nil)

// Open connects. It fails when no address answers, so a misconfigured
// address is an error at start, not a silent fallback for ever.
func Open(ctx context.Context, opts Options) (*Store, error) {
	s, err := newStore(opts)
	if err != nil {
		return nil, err
	}
	if err := s.connect(); err != nil {
		return nil, err
	}
	return s, nil
}

// OpenLazy returns at once and keeps connecting in the background: a node
// whose Redis is down when it starts serves fallbacks (every call fails
// with ErrUnavailable) until Redis answers, instead of failing to start.
func OpenLazy(opts Options, retry time.Duration, logger func(err error)) (*Store, error) {
	s, err := newStore(opts)
	if err != nil {
		return nil, err
	}
	if s.connect() == nil {
		return s, nil
	}
	go func() {
		t := time.NewTicker(retry)
		defer t.Stop()
		for {
			select {
			case <-s.stop:
				return
			case <-t.C:
				err := s.connect()
				if err == nil {
					return
				}
				if logger != nil {
					logger(err)
				}
			}
		}
	}()
	return s, nil
}

func newStore(opts Options) (*Store, error) {
	if len(opts.Addrs) == 0 {
		return nil, errors.New("redis: no addresses")
	}
	if opts.Prefix == "" {
		opts.Prefix = "v1"
	}
	if opts.WriteChunk <= 0 {
		opts.WriteChunk = 512
	}
	if opts.OffsetTTL <= 0 {
		opts.OffsetTTL = 30 * 24 * time.Hour
	}
	return &Store{opts: opts, connected: make(chan struct{}), stop: make(chan struct{})}, nil
}

func (s *Store) connect() error {
	opts := s.opts
	c, err := rueidis.NewClient(rueidis.ClientOption{
		InitAddress: opts.Addrs, Username: opts.Username, Password: opts.Password,
		// Server-assisted client caching is not used: internal/cache owns
		// the in-process tier and its invalidation.
		DisableCache: true,
		// A call that times out is not retried: the breaker and the
		// fallback answer instead, within the request's budget.
		DisableRetry:     true,
		ConnWriteTimeout: time.Second,
		Dialer:           netDialer(),
		ClientName:       "ripple",
	})
	if err != nil {
		return fmt.Errorf("redis %v: %w", opts.Addrs, err)
	}
	s.cl.Store(&clientRef{c})
	select {
	case <-s.stop: // closed while connecting: nobody else will close it
		c.Close()
	default:
	}
	close(s.connected)
	return nil
}

// Connected is closed once the store has reached Redis.
func (s *Store) Connected() <-chan struct{} { return s.connected }

// Client exposes the connection for the cache invalidation bus.
// It is nil until Connected is closed.
func (s *Store) Client() rueidis.Client {
	if r := s.cl.Load(); r != nil {
		return r.Client
	}
	return nil
}

// Close closes the connections.
func (s *Store) Close() {
	s.stopOnce.Do(func() { close(s.stop) })
	if c := s.Client(); c != nil {
		c.Close()
	}
}

// Key is the Redis key of a logical entity key such as "u:alice". The hash
// tag keeps every command single-slot in Cluster.
func (s *Store) Key(entity string) string { return s.opts.Prefix + ":{" + entity + "}" }

func (s *Store) offsetKey(source string) string { return s.Key("offset:" + source) }

// do runs fn under admission and the path's guard. Every failure comes back
// wrapping store.ErrUnavailable.
func (s *Store) do(ctx context.Context, g Guard, call func(context.Context, rueidis.Client) error) error {
	c := s.Client()
	if c == nil {
		return fmt.Errorf("%w: %w", store.ErrUnavailable, errNotConnected)
	}
	fn := func(ctx context.Context) error { return call(ctx, c) }
	if s.opts.Pool != nil {
		release, err := s.opts.Pool.Acquire(ctx)
		if err != nil {
			return fmt.Errorf("%w: %w", store.ErrUnavailable, err)
		}
		defer release()
	}
	var err error
	if g == nil {
		err = fn(ctx)
	} else {
		err = g.Do(ctx, fn)
	}
	if err != nil {
		return fmt.Errorf("%w: %w", store.ErrUnavailable, err)
	}
	return nil
}

// Get reads fields of many entities in one pipelined round trip.
func (s *Store) Get(ctx context.Context, keys, fields []string) ([][][]byte, error) {
	out := make([][][]byte, len(keys))
	if len(keys) == 0 {
		return out, nil
	}
	guard := s.opts.Read
	if store.IsWritePath(ctx) {
		guard = s.opts.Write
	}
	err := s.do(ctx, guard, func(ctx context.Context, c rueidis.Client) error {
		cmds := make(rueidis.Commands, len(keys))
		for i, k := range keys {
			cmds[i] = c.B().Hmget().Key(s.Key(k)).Field(fields...).Build()
		}
		for i, r := range c.DoMulti(ctx, cmds...) {
			vals, err := r.ToArray()
			if err != nil {
				return err
			}
			row := make([][]byte, len(fields))
			for j := range vals {
				if j < len(row) && !vals[j].IsNil() {
					if row[j], err = vals[j].AsBytes(); err != nil {
						return err
					}
				}
			}
			out[i] = row
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// GetAll reads every field of one entity; nil when absent.
func (s *Store) GetAll(ctx context.Context, key string) (map[string][]byte, error) {
	var out map[string][]byte
	err := s.do(ctx, s.opts.Read, func(ctx context.Context, c rueidis.Client) error {
		m, err := c.Do(ctx, c.B().Hgetall().Key(s.Key(key)).Build()).AsMap()
		if err != nil {
			return err
		}
		if len(m) == 0 {
			return nil
		}
		out = make(map[string][]byte, len(m))
		for name, v := range m {
			if b, err := v.AsBytes(); err == nil {
				out[name] = b
			}
		}
		return nil
	})
	return out, err
}

// putScript replaces an entity's hash unless it already holds newer state
// from the same source: a late or replayed flush never moves it backwards.
// KEYS[1] entity; ARGV: source, offset, ttl ms, then field/value pairs.
var putScript = newScript(`
local src = redis.call('HGET', KEYS[1], '_src')
if src == ARGV[1] then
  local off = tonumber(redis.call('HGET', KEYS[1], '_off'))
  if off and off > tonumber(ARGV[2]) then return 0 end
end
redis.call('DEL', KEYS[1])
redis.call('HSET', KEYS[1], '_src', ARGV[1], '_off', ARGV[2], unpack(ARGV, 4))
if tonumber(ARGV[3]) > 0 then redis.call('PEXPIRE', KEYS[1], ARGV[3]) end
return 1`)

// putPartScript is putScript for one part of an entity: it replaces that
// part's fields (named by the caller "<name>@<part>"), stamped with the
// part's own source and offset, and leaves the other parts alone.
// KEYS[1] entity; ARGV: source, offset, ttl ms, part, then field/value pairs.
var putPartScript = newScript(`
local sk, ok = '_src@' .. ARGV[4], '_off@' .. ARGV[4]
local src = redis.call('HGET', KEYS[1], sk)
if src == ARGV[1] then
  local off = tonumber(redis.call('HGET', KEYS[1], ok))
  if off and off > tonumber(ARGV[2]) then return 0 end
end
redis.call('HSET', KEYS[1], sk, ARGV[1], ok, ARGV[2], unpack(ARGV, 5))
if tonumber(ARGV[3]) > 0 then redis.call('PEXPIRE', KEYS[1], ARGV[3]) end
return 1`)

// offsetScript raises the source's offset (never lowers it) and returns
// what it was. When the store holds less than the writer expects (it
// restarted empty, or failed over to a replica that was behind), the
// offset is left alone: a batch on top of lost data must not claim the
// data is there; the writer resyncs and commits again.
// KEYS[1] offset key; ARGV: offset, ttl ms, expected previous offset.
var offsetScript = newScript(`
local prev = tonumber(redis.call('GET', KEYS[1]) or '0')
if prev < tonumber(ARGV[3]) then return prev end
if prev < tonumber(ARGV[1]) then
  redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
else
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
return prev`)

// Write stores the batch: entities and deletes in pipelined chunks, then,
// only after every one of them succeeded, the source offset.
func (s *Store) Write(ctx context.Context, b *store.Batch) (uint64, error) {
	off := strconv.FormatUint(b.Offset, 10)
	ttl := strconv.FormatInt(b.TTL.Milliseconds(), 10)
	for lo := 0; lo < len(b.Put); lo += s.opts.WriteChunk {
		chunk := b.Put[lo:min(len(b.Put), lo+s.opts.WriteChunk)]
		var whole, parts []rueidis.LuaExec
		for _, e := range chunk {
			args := make([]string, 3, 4+2*len(e.Fields))
			args[0], args[1], args[2] = b.Source, off, ttl
			if e.Part != "" {
				args = append(args, e.Part)
			}
			for _, f := range e.Fields {
				name := f.Name
				if e.Part != "" {
					name = store.PartField(name, e.Part)
				}
				// Not copied: Write's callers never modify a value they wrote
				// (see store.Online), and the client may still be sending it
				// after a deadline made Write return.
				args = append(args, name, rueidis.BinaryString(f.Value))
			}
			x := rueidis.LuaExec{Keys: []string{s.Key(e.Key)}, Args: args}
			if e.Part != "" {
				parts = append(parts, x)
			} else {
				whole = append(whole, x)
			}
		}
		err := s.do(ctx, s.opts.Write, func(ctx context.Context, c rueidis.Client) error {
			if err := s.eval(ctx, c, putScript, whole); err != nil {
				return err
			}
			return s.eval(ctx, c, putPartScript, parts)
		})
		if err != nil {
			return 0, err
		}
	}
	for lo := 0; lo < len(b.Delete); lo += s.opts.WriteChunk {
		chunk := b.Delete[lo:min(len(b.Delete), lo+s.opts.WriteChunk)]
		err := s.do(ctx, s.opts.Write, func(ctx context.Context, c rueidis.Client) error {
			cmds := make(rueidis.Commands, len(chunk))
			for i, k := range chunk {
				cmds[i] = c.B().Del().Key(s.Key(k)).Build()
			}
			for _, r := range c.DoMulti(ctx, cmds...) {
				if err := r.Error(); err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil {
			return 0, err
		}
	}
	if !b.Commit {
		return 0, nil
	}
	var prev uint64
	err := s.do(ctx, s.opts.Write, func(ctx context.Context, c rueidis.Client) error {
		v, err := s.evalOne(ctx, c, offsetScript, []string{s.offsetKey(b.Source)},
			[]string{off, strconv.FormatInt(s.opts.OffsetTTL.Milliseconds(), 10), strconv.FormatUint(b.Expect, 10)}).AsInt64()
		prev = uint64(max(v, 0))
		return err
	})
	return prev, err
}

// script is a Lua script run by its SHA1, loaded on first NOSCRIPT: one
// round trip per pipeline in the steady state.
type script struct{ src, sha string }

func newScript(src string) script {
	h := sha1.Sum([]byte(src))
	return script{src: src, sha: hex.EncodeToString(h[:])}
}

// eval runs sc once per exec in one pipeline: EVALSHA, then EVAL for any
// the server did not know (after a restart or a failover).
func (s *Store) eval(ctx context.Context, c rueidis.Client, sc script, execs []rueidis.LuaExec) error {
	if len(execs) == 0 {
		return nil
	}
	cmds := make(rueidis.Commands, len(execs))
	for i, e := range execs {
		cmds[i] = c.B().Evalsha().Sha1(sc.sha).Numkeys(int64(len(e.Keys))).Key(e.Keys...).Arg(e.Args...).Build()
	}
	var retry []int
	for i, r := range c.DoMulti(ctx, cmds...) {
		if err := r.Error(); err != nil && !rueidis.IsRedisNil(err) {
			if re, ok := rueidis.IsRedisErr(err); ok && re.IsNoScript() {
				retry = append(retry, i)
				continue
			}
			return err
		}
	}
	if len(retry) == 0 {
		return nil
	}
	cmds = cmds[:0]
	for _, i := range retry {
		e := execs[i]
		cmds = append(cmds, c.B().Eval().Script(sc.src).Numkeys(int64(len(e.Keys))).Key(e.Keys...).Arg(e.Args...).Build())
	}
	for _, r := range c.DoMulti(ctx, cmds...) {
		if err := r.Error(); err != nil && !rueidis.IsRedisNil(err) {
			return err
		}
	}
	return nil
}

func (s *Store) evalOne(ctx context.Context, c rueidis.Client, sc script, keys, args []string) rueidis.RedisResult {
	r := c.Do(ctx, c.B().Evalsha().Sha1(sc.sha).Numkeys(int64(len(keys))).Key(keys...).Arg(args...).Build())
	if re, ok := rueidis.IsRedisErr(r.Error()); ok && re.IsNoScript() {
		r = c.Do(ctx, c.B().Eval().Script(sc.src).Numkeys(int64(len(keys))).Key(keys...).Arg(args...).Build())
	}
	return r
}

// Offset is the source's applied offset in the store (0: none).
func (s *Store) Offset(ctx context.Context, source string) (uint64, error) {
	var off uint64
	err := s.do(ctx, s.opts.Read, func(ctx context.Context, c rueidis.Client) error {
		v, err := c.Do(ctx, c.B().Get().Key(s.offsetKey(source)).Build()).AsUint64()
		if rueidis.IsRedisNil(err) {
			return nil
		}
		off = v
		return err
	})
	return off, err
}

// ScanSource calls fn with the logical key of every entity whose key
// starts with kind (e.g. "u:") and that was last written by source. It
// scans every master of a Cluster. A resync uses it to find records the
// engine no longer has (users erased while the store was away).
func (s *Store) ScanSource(ctx context.Context, kind, source string, fn func(key string) error) error {
	c := s.Client()
	if c == nil {
		return fmt.Errorf("%w: %w", store.ErrUnavailable, errNotConnected)
	}
	pattern := s.opts.Prefix + ":{" + kind + "*"
	strip := len(s.opts.Prefix) + 2
	for _, node := range c.Nodes() {
		var cursor uint64
		for {
			e, err := node.Do(ctx, node.B().Scan().Cursor(cursor).Match(pattern).Count(1000).Build()).AsScanEntry()
			if err != nil {
				return fmt.Errorf("%w: scan: %w", store.ErrUnavailable, err)
			}
			if len(e.Elements) > 0 {
				cmds := make(rueidis.Commands, len(e.Elements))
				for i, k := range e.Elements {
					cmds[i] = node.B().Hget().Key(k).Field("_src").Build()
				}
				for i, r := range node.DoMulti(ctx, cmds...) {
					src, err := r.ToString()
					if err != nil || src != source {
						continue
					}
					k := e.Elements[i]
					if len(k) > strip && k[len(k)-1] == '}' {
						if err := fn(k[strip : len(k)-1]); err != nil {
							return err
						}
					}
				}
			}
			if cursor = e.Cursor; cursor == 0 {
				break
			}
		}
	}
	return nil
}
