package nats

import (
	"context"
	"encoding/base64"
	"errors"
	"hash/fnv"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

func ctxT(t testing.TB, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

// userRecords makes n records for users u0…u(users-1), round robin, valued
// "user/seq" where seq counts that user's records, with ids "e<i>".
func userRecords(start, n, users int) []Record {
	recs := make([]Record, n)
	for i := range recs {
		j := start + i
		u := "u" + strconv.Itoa(j%users)
		recs[i] = Record{Key: []byte(u), Value: []byte(u + "/" + strconv.Itoa(j/users)), ID: "e" + strconv.Itoa(j)}
	}
	return recs
}

type readRecord struct {
	off  uint64
	data string
}

// readAll reads partition p from offset 1 to its current end, checking that
// offsets strictly increase and next is last + 1.
func readAll(t *testing.T, l *Log, p int) []readRecord {
	t.Helper()
	ctx := ctxT(t, 20*time.Second)
	r, err := l.Reader(p)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	var out []readRecord
	from := uint64(1)
	for {
		n := 0
		next, err := r.Read(ctx, from, 700, func(off uint64, data []byte) error {
			if len(out) > 0 && off <= out[len(out)-1].off {
				t.Fatalf("partition %d: offset %d after %d", p, off, out[len(out)-1].off)
			}
			out = append(out, readRecord{off, string(data)})
			n++
			return nil
		})
		if err != nil {
			t.Fatalf("read partition %d from %d: %v", p, from, err)
		}
		if n == 0 {
			if next != from {
				t.Fatalf("empty read moved %d -> %d", from, next)
			}
			return out
		}
		if want := out[len(out)-1].off + 1; next != want {
			t.Fatalf("next = %d, want last + 1 = %d", next, want)
		}
		from = next
	}
}

func TestAppendReadPartitioned(t *testing.T) {
	s := startServer(t)
	const parts, total, users = 6, 10000, 500
	l := openLog(t, s, parts)
	ctx := ctxT(t, 30*time.Second)
	lastAt := map[int]uint64{}
	for i := 0; i < total; i += 1000 {
		at, err := l.AppendAt(ctx, userRecords(i, 1000, users))
		if err != nil {
			t.Fatal(err)
		}
		for p, off := range at {
			if off <= lastAt[p] {
				t.Fatalf("AppendAt: partition %d at %d after %d", p, off, lastAt[p])
			}
			lastAt[p] = off
		}
	}
	seen := make(map[string]bool, total)
	lastSeq := map[string]int{}
	for p := range parts {
		recs := readAll(t, l, p)
		if len(recs) == 0 {
			t.Fatalf("partition %d empty", p)
		}
		if recs[len(recs)-1].off != lastAt[p] {
			t.Fatalf("partition %d: last record at %d, AppendAt said %d", p, recs[len(recs)-1].off, lastAt[p])
		}
		for _, rec := range recs {
			if seen[rec.data] {
				t.Fatalf("%q read twice", rec.data)
			}
			seen[rec.data] = true
			user, seqStr, _ := strings.Cut(rec.data, "/")
			if got := PartitionOf([]byte(user), parts); got != p {
				t.Fatalf("%s in partition %d, PartitionOf says %d", user, p, got)
			}
			seq, _ := strconv.Atoi(seqStr)
			if last, ok := lastSeq[user]; (ok && seq != last+1) || (!ok && seq != 0) {
				t.Fatalf("%s: record %d after %d (ok=%v): out of order", user, seq, last, ok)
			}
			lastSeq[user] = seq
		}
		r, _ := l.Reader(p)
		start, err1 := r.Start(ctx)
		end, err2 := r.End(ctx)
		if err1 != nil || err2 != nil || start != recs[0].off || end != recs[len(recs)-1].off+1 {
			t.Fatalf("partition %d: Start, End = %d, %d (%v, %v); read %d..%d", p, start, end, err1, err2, recs[0].off, recs[len(recs)-1].off)
		}
		r.Close()
		t.Logf("partition %d: %d records", p, len(recs))
	}
	if len(seen) != total || len(lastSeq) != users {
		t.Fatalf("read %d records of %d users, want %d of %d", len(seen), len(lastSeq), total, users)
	}
}

// A pinned record is stored in the partition it names, whatever its key.
func TestPinnedRecords(t *testing.T) {
	s := startServer(t)
	const parts = 4
	l := openLog(t, s, parts)
	var recs []Record
	for p := range parts {
		recs = append(recs, Record{Key: []byte("item"), Value: []byte("pinned:" + strconv.Itoa(p)), Pinned: true, Partition: p})
	}
	if _, err := l.AppendAt(ctxT(t, 10*time.Second), recs); err != nil {
		t.Fatal(err)
	}
	for p := range parts {
		got := readAll(t, l, p)
		if len(got) != 1 || got[0].data != "pinned:"+strconv.Itoa(p) {
			t.Fatalf("partition %d holds %v", p, got)
		}
	}
	if _, err := l.AppendAt(ctxT(t, 10*time.Second), []Record{{Key: []byte("x"), Pinned: true, Partition: parts}}); err == nil {
		t.Fatal("a record pinned past the last partition must be refused")
	}
}

func TestAppendReturnsOnlyWhenStored(t *testing.T) {
	s := startServer(t)
	l := openLog(t, s, 3)
	ctx := ctxT(t, 20*time.Second)
	readers := make([]*PartitionReader, 3)
	next := make([]uint64, 3)
	for p := range readers {
		readers[p], _ = l.Reader(p)
		next[p] = 1
	}
	for i := range 200 {
		rec := userRecords(i, 1, 17)[0]
		if err := l.Append(ctx, []Record{rec}); err != nil {
			t.Fatal(err)
		}
		// No Wait, no retry: the record must be there the moment Append returns.
		p := PartitionOf(rec.Key, 3)
		var got []string
		n, err := readers[p].Read(ctx, next[p], 10, func(_ uint64, data []byte) error {
			got = append(got, string(data))
			return nil
		})
		if err != nil || len(got) != 1 || got[0] != string(rec.Value) {
			t.Fatalf("append %d: read %q, %v; want exactly %q", i, got, err, rec.Value)
		}
		next[p] = n
	}
}

func TestAppendRetryStoresNoDuplicates(t *testing.T) {
	s := startServer(t)
	l := openLog(t, s, 4)
	ctx := ctxT(t, 20*time.Second)
	first := userRecords(0, 300, 20)
	if err := l.Append(ctx, first); err != nil {
		t.Fatal(err)
	}
	// The client retries the whole batch, then a batch overlapping its tail.
	if err := l.Append(ctx, first); err != nil {
		t.Fatal(err)
	}
	if err := l.Append(ctx, userRecords(200, 200, 20)); err != nil {
		t.Fatal(err)
	}
	info, err := l.stream.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if info.State.Msgs != 400 {
		t.Fatalf("stream holds %d records, want 400", info.State.Msgs)
	}
	n := 0
	for p := range 4 {
		n += len(readAll(t, l, p))
	}
	if n != 400 {
		t.Fatalf("read %d records, want 400", n)
	}
}

func TestBrokerDownAndBack(t *testing.T) {
	s := startServer(t)
	l := openLog(t, s, 6)
	ctx := ctxT(t, 40*time.Second)
	if err := l.Append(ctx, userRecords(0, 2000, 50)); err != nil {
		t.Fatal(err)
	}
	// A reader in the middle of its partition, to continue after the restart.
	p0 := PartitionOf([]byte("u0"), 6)
	r, _ := l.Reader(p0)
	defer r.Close()
	before := 0
	next, err := r.Read(ctx, 1, 100, func(uint64, []byte) error { before++; return nil })
	if err != nil || before != 100 {
		t.Fatalf("read %d: %v", before, err)
	}
	// A reader waiting for its partition's next record across the crash.
	r1, _ := l.Reader(PartitionOf([]byte("u1"), 6))
	defer r1.Close()
	end1, err := r1.End(ctx)
	if err != nil {
		t.Fatal(err)
	}
	waited := make(chan error, 1)
	go func() { waited <- r1.Wait(ctx, end1) }()
	time.Sleep(50 * time.Millisecond) // let the pull reach the server

	s.Kill() // right after the acks: acknowledged must mean stored

	short, cancel := context.WithTimeout(ctx, 200*time.Millisecond)
	t0 := time.Now()
	err = l.Append(short, userRecords(2000, 10, 50))
	cancel()
	if !errors.Is(err, ErrUnavailable) {
		t.Fatalf("append with the broker down: %v, want ErrUnavailable", err)
	}
	if d := time.Since(t0); d > 500*time.Millisecond {
		t.Fatalf("append with the broker down took %v", d)
	}
	t.Logf("broker down: %v after %v", err, time.Since(t0))

	s.Restart()
	// The client reconnects by itself; JetStream needs a moment to recover.
	t0 = time.Now()
	for {
		try, cancel := context.WithTimeout(ctx, time.Second)
		err = l.Append(try, userRecords(2000, 10, 50))
		cancel()
		if err == nil {
			break
		}
		if !errors.Is(err, ErrUnavailable) {
			t.Fatalf("append after restart: %v, want ErrUnavailable while recovering", err)
		}
		if time.Since(t0) > 15*time.Second {
			t.Fatalf("append still failing 15s after restart: %v", err)
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Logf("append works again %v after restart", time.Since(t0))
	select {
	case err := <-waited:
		if err != nil {
			t.Fatalf("Wait across the restart: %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Wait across the restart did not see the new record")
	}
	t.Logf("Wait across the restart returned %v after restart", time.Since(t0))

	n := 0
	seen := map[string]bool{}
	for p := range 6 {
		for _, rec := range readAll(t, l, p) {
			seen[rec.data] = true
			n++
		}
	}
	// Ids dedup the retries; the 10 records of the failed attempt may or may
	// not have been stored, but never twice.
	if n != 2010 || len(seen) != 2010 {
		t.Fatalf("after restart: read %d records (%d distinct), want 2010", n, len(seen))
	}

	// The reader created before the crash lost its consumer with the server;
	// it notices and continues from its offset.
	after := 0
	for {
		n := 0
		next, err = r.Read(ctx, next, 1000, func(uint64, []byte) error { n++; return nil })
		if err != nil {
			t.Fatalf("read after restart: %v", err)
		}
		if after += n; n == 0 {
			break
		}
	}
	if total := len(readAll(t, l, p0)); before+after != total {
		t.Fatalf("reader across restart read %d+%d records, partition holds %d", before, after, total)
	}

	// The stream itself survived with its layout: Open finds it.
	l2 := openLog(t, s, 6)
	if l2.Partitions() != 6 {
		t.Fatal(l2.Partitions())
	}
}

func TestBrokerFrozen(t *testing.T) {
	s := startServer(t)
	l := openLog(t, s, 2)
	ctx := ctxT(t, 20*time.Second)
	if err := l.Append(ctx, userRecords(0, 10, 5)); err != nil {
		t.Fatal(err)
	}
	r, _ := l.Reader(0)
	defer r.Close()
	// SIGSTOP: the connection stays up, nothing is acknowledged. Every call
	// must end with its ctx, not hang.
	s.Signal(syscall.SIGSTOP)
	defer s.Signal(syscall.SIGCONT)
	for name, call := range map[string]func(context.Context) error{
		"Append": func(ctx context.Context) error { return l.Append(ctx, userRecords(10, 100, 5)) },
		"Read": func(ctx context.Context) error {
			_, err := r.Read(ctx, 1, 10, func(uint64, []byte) error { return nil })
			return err
		},
		"Wait":       func(ctx context.Context) error { return r.Wait(ctx, 1000) },
		"DeadLetter": func(ctx context.Context) error { return l.DeadLetter(ctx, "x", 0, 1, Record{}) },
		"Lag":        func(ctx context.Context) error { _, _, err := l.Lag(ctx, 0, 0); return err },
	} {
		short, cancel := context.WithTimeout(ctx, 200*time.Millisecond)
		t0 := time.Now()
		err := call(short)
		d := time.Since(t0)
		cancel()
		if err == nil || d > 400*time.Millisecond {
			t.Errorf("%s with the broker frozen: %v after %v", name, err, d)
		}
		if name != "Wait" && !errors.Is(err, ErrUnavailable) && !errors.Is(err, context.DeadlineExceeded) {
			t.Errorf("%s: %v", name, err)
		}
		t.Logf("%s: %v after %v", name, err, d)
	}
	if err := l.Append(short(t), nil); err != nil {
		t.Fatal(err)
	}
}

func short(t testing.TB) context.Context { return ctxT(t, time.Second) }

// keysIn returns n user keys that PartitionOf puts in partition p of parts.
func keysIn(p, parts, n int) [][]byte {
	var keys [][]byte
	for i := 0; len(keys) < n; i++ {
		k := []byte("user-" + strconv.Itoa(i))
		if PartitionOf(k, parts) == p {
			keys = append(keys, k)
		}
	}
	return keys
}

func TestWait(t *testing.T) {
	s := startServer(t)
	l := openLog(t, s, 4)
	ctx := ctxT(t, 20*time.Second)
	mine, other := keysIn(1, 4, 1)[0], keysIn(2, 4, 1)[0]
	if err := l.Append(ctx, []Record{{Key: mine, Value: []byte("old")}}); err != nil {
		t.Fatal(err)
	}
	r, _ := l.Reader(1)
	defer r.Close()
	end, err := r.End(ctx)
	if err != nil {
		t.Fatal(err)
	}
	// A record already there: Wait returns at once.
	if err := r.Wait(ctx, end-1); err != nil {
		t.Fatal(err)
	}

	done := make(chan error, 1)
	go func() { done <- r.Wait(ctx, end) }()
	if err := l.Append(ctx, []Record{{Key: other, Value: []byte("elsewhere")}}); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-done:
		t.Fatalf("Wait returned for another partition's record: %v", err)
	case <-time.After(300 * time.Millisecond):
	}
	if err := l.Append(ctx, []Record{{Key: mine, Value: []byte("new")}}); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Wait did not return for a record in its partition")
	}
	var got []string
	next, err := r.Read(ctx, end, 10, func(_ uint64, data []byte) error {
		got = append(got, string(data))
		return nil
	})
	if err != nil || len(got) != 1 || got[0] != "new" {
		t.Fatalf("read after Wait: %q, %v", got, err)
	}

	short, cancel := context.WithTimeout(ctx, 200*time.Millisecond)
	defer cancel()
	t0 := time.Now()
	if err := r.Wait(short, next); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Wait with nothing to come: %v", err)
	}
	if d := time.Since(t0); d > time.Second {
		t.Fatalf("Wait overran its ctx: %v", d)
	}
}

func TestReadResumesAfterCallbackError(t *testing.T) {
	s := startServer(t)
	l := openLog(t, s, 2)
	ctx := ctxT(t, 20*time.Second)
	key := keysIn(0, 2, 1)[0]
	var recs []Record
	for i := range 10 {
		recs = append(recs, Record{Key: key, Value: []byte(strconv.Itoa(i))})
	}
	if err := l.Append(ctx, recs); err != nil {
		t.Fatal(err)
	}
	r, _ := l.Reader(0)
	defer r.Close()
	boom := errors.New("boom")
	var failedAt uint64
	next, err := r.Read(ctx, 1, 100, func(off uint64, data []byte) error {
		if string(data) == "3" {
			failedAt = off
			return boom
		}
		return nil
	})
	if !errors.Is(err, boom) || next != failedAt {
		t.Fatalf("Read = %d, %v; want %d, boom", next, err, failedAt)
	}
	var got []string
	if _, err := r.Read(ctx, next, 100, func(_ uint64, data []byte) error {
		got = append(got, string(data))
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if strings.Join(got, ",") != "3,4,5,6,7,8,9" {
		t.Fatalf("resumed read: %v", got)
	}
}

func TestDeadLetter(t *testing.T) {
	s := startServer(t)
	l := openLog(t, s, 2)
	ctx := ctxT(t, 10*time.Second)
	rec := Record{Key: []byte("u\x001"), Value: []byte(`{"broken`), ID: "e1"}
	for range 2 { // a retried dead letter is stored once
		if err := l.DeadLetter(ctx, "invalid_event: unexpected end\nof JSON", 1, 42, rec); err != nil {
			t.Fatal(err)
		}
	}
	// Another record of the same event id is another letter: the source
	// position, not the id, names a letter.
	if err := l.DeadLetter(ctx, "undecodable", 1, 43, rec); err != nil {
		t.Fatal(err)
	}
	dlq, err := l.js.Stream(ctx, l.DeadLetterStream())
	if err != nil {
		t.Fatal(err)
	}
	info, err := dlq.Info(ctx)
	if err != nil || info.State.Msgs != 2 {
		t.Fatalf("dead-letter stream holds %v records (%v), want 2", info.State.Msgs, err)
	}
	m, err := dlq.GetMsg(ctx, info.State.FirstSeq)
	if err != nil {
		t.Fatal(err)
	}
	key, _ := base64.StdEncoding.DecodeString(m.Header.Get(HeaderKey))
	if m.Subject != "ripple.events.dlq" || string(m.Data) != string(rec.Value) || string(key) != string(rec.Key) ||
		m.Header.Get(HeaderReason) != "invalid_event: unexpected end of JSON" ||
		m.Header.Get(HeaderPartition) != "1" || m.Header.Get(HeaderOffset) != "42" {
		t.Fatalf("dead letter: subject %q data %q key %q headers %v", m.Subject, m.Data, key, m.Header)
	}
	// Dead letters are not events: no partition sees them.
	for p := range 2 {
		if n := len(readAll(t, l, p)); n != 0 {
			t.Fatalf("partition %d holds %d records", p, n)
		}
	}
}

func TestLag(t *testing.T) {
	s := startServer(t)
	l := openLog(t, s, 3)
	ctx := ctxT(t, 10*time.Second)
	keys := keysIn(2, 3, 3)
	var recs []Record
	for i := range 30 {
		recs = append(recs, Record{Key: keys[i%3], Value: []byte("v")})
		recs = append(recs, Record{Key: keysIn(0, 3, 1)[0], Value: []byte("other")})
	}
	if err := l.Append(ctx, recs); err != nil {
		t.Fatal(err)
	}
	offs := readAll(t, l, 2)
	newest := offs[29].off
	cases := []struct {
		applied uint64
		want    uint64
	}{
		{0, 30},
		{offs[9].off, 20},
		{offs[9].off + 1, 20}, // an offset of another partition counts the same
		{offs[29].off, 0},
		{offs[29].off + 100, 0},
	}
	for _, c := range cases {
		got, gotNewest, err := l.Lag(ctx, 2, c.applied)
		if err != nil || got != c.want || gotNewest != newest {
			t.Errorf("Lag(2, %d) = %d, %d, %v; want %d, %d", c.applied, got, gotNewest, err, c.want, newest)
		}
	}
	if got, newest, err := l.Lag(ctx, 1, 0); err != nil || got != 0 || newest != 0 {
		t.Errorf("Lag of the empty partition = %d, %d, %v", got, newest, err)
	}
}

func TestOpenRefusesOtherPartitionCount(t *testing.T) {
	s := startServer(t)
	openLog(t, s, 6)
	ctx := ctxT(t, 10*time.Second)
	if l, err := Open(ctx, Options{URL: s.URL(), Partitions: 4}); err == nil {
		l.Close()
		t.Fatal("opened a 6-partition stream as 4 partitions")
	} else {
		t.Log(err)
	}
	l, err := Open(ctx, Options{URL: s.URL(), Partitions: 6, MaxAge: time.Hour})
	if err != nil {
		t.Fatalf("reopen with new limits: %v", err)
	}
	defer l.Close()
	if got := l.stream.CachedInfo().Config.MaxAge; got != time.Hour {
		t.Fatalf("MaxAge not updated: %v", got)
	}
}

func TestPartitionOf(t *testing.T) {
	// Pinned values: changing the hash moves users between partitions.
	for _, c := range []struct {
		key  string
		n    int
		want int
	}{{"", 6, int(2166136261 % 6)}, {"u1", 6, fnv1a("u1") % 6}, {"user-42", 16, fnv1a("user-42") % 16}} {
		if got := PartitionOf([]byte(c.key), c.n); got != c.want {
			t.Errorf("PartitionOf(%q, %d) = %d, want %d", c.key, c.n, got, c.want)
		}
	}
}

func fnv1a(s string) int {
	h := fnv.New32a()
	h.Write([]byte(s))
	return int(h.Sum32())
}
