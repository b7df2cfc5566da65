package main

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/schollz/progressbar/v3"
	"github.com/spf13/cobra"

	"github.com/ripple-rec/ripple/internal/event"
)

func init() {
	subcommands = append(subcommands, newImportCmd)
}

// importOptions configure one import run.
type importOptions struct {
	File        string
	Format      string
	Addr        string
	Batch       int
	Concurrency int
	IDPrefix    string // "": derived from the file's absolute path
	Progress    bool
	Timeout     time.Duration // per request
	Retry       retryPolicy
}

// importSummary is what an import did, also on failure (what was acked).
type importSummary struct {
	File       string
	Format     string
	IDPrefix   string
	Read       int // events read from the file
	Batches    int // batches acknowledged
	Accepted   int
	Duplicates int
	Rejected   int
	Retries    int
	Elapsed    time.Duration
}

func newImportCmd() *cobra.Command {
	o := importOptions{Addr: "127.0.0.1:8080", Batch: 1000, Concurrency: 4, Progress: stderrIsTerminal(),
		Timeout: 60 * time.Second, Retry: retryPolicy{Attempts: 10, Base: 100 * time.Millisecond, Max: 10 * time.Second}}
	cmd := &cobra.Command{
		Use:   "import FILE",
		Short: "Stream a file of interactions into a running server",
		Long: `Import streams FILE (` + strings.Join(event.Formats, ", ") + `) into a running Ripple server
as NDJSON batches on POST /v1/events, several batches in flight at once.

Idempotent: every event without an id of its own gets one derived from the file
and its position in it (--id-prefix, default: the file name plus a hash of its
absolute path, then ":" and the position). Re-running an import, or resuming one
that failed half way, sends the same ids, and the server counts events it already
has as duplicates instead of applying them twice. The server remembers ids for
a bounded window (by default the last 1,000,000 ids and 24 h): re-imports within
that window are free of double counting.

Connection errors and 429/502/503/504 answers are retried with exponential
backoff (honouring Retry-After); any other 4xx/5xx stops the import with the
server's error. Events the server rejects one by one (bad type, missing user...)
are counted as rejected and the first few are printed; the rest of their batch
still counts. With --concurrency above 1 batches may reach the log slightly out
of file order; --concurrency 1 keeps it.`,
		Example: `  ripple import ../shared/datasets/ml-100k/u.data --format movielens
  ripple import events.ndjson --addr 10.0.0.5:8080 --batch 5000 --concurrency 8`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			o.File = args[0]
			ctx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt, syscall.SIGTERM)
			defer stop()
			s, err := runImport(ctx, o, cmd.ErrOrStderr())
			if err != nil {
				fmt.Fprintln(cmd.ErrOrStderr(), "import stopped; acknowledged so far:")
				s.print(cmd.ErrOrStderr())
				return err
			}
			s.print(cmd.OutOrStdout())
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&o.Format, "format", "", "file format: "+strings.Join(event.Formats, "|")+" (default: from the file name)")
	f.StringVar(&o.Addr, "addr", o.Addr, "server address, host:port or URL")
	f.IntVar(&o.Batch, "batch", o.Batch, "events per request")
	f.IntVar(&o.Concurrency, "concurrency", o.Concurrency, "requests in flight")
	f.StringVar(&o.IDPrefix, "id-prefix", "", "prefix of derived event ids; set it to re-import the same file from another path")
	f.BoolVar(&o.Progress, "progress", o.Progress, "draw a progress bar on stderr (default: when stderr is a terminal)")
	f.DurationVar(&o.Timeout, "timeout", o.Timeout, "time limit of one request")
	f.IntVar(&o.Retry.Attempts, "retries", o.Retry.Attempts, "attempts per batch on connection errors and 429/502/503/504")
	return cmd
}

func (s importSummary) print(w io.Writer) {
	rate := 0.0
	if s.Elapsed > 0 {
		rate = float64(s.Accepted+s.Duplicates+s.Rejected) / s.Elapsed.Seconds()
	}
	fmt.Fprintf(w, "file        %s (%s)\n", s.File, s.Format)
	fmt.Fprintf(w, "ids         %s:<position>\n", s.IDPrefix)
	fmt.Fprintf(w, "read        %d events, %d batches acknowledged\n", s.Read, s.Batches)
	fmt.Fprintf(w, "accepted    %d\n", s.Accepted)
	fmt.Fprintf(w, "duplicates  %d\n", s.Duplicates)
	fmt.Fprintf(w, "rejected    %d\n", s.Rejected)
	fmt.Fprintf(w, "retries     %d\n", s.Retries)
	fmt.Fprintf(w, "seconds     %.3f\n", s.Elapsed.Seconds())
	fmt.Fprintf(w, "events/s    %.0f\n", rate)
}

// importIDPrefix names a file stably across runs on this machine: its base
// name for people, a hash of its absolute path so two files called
// ratings.csv do not swallow each other's events as duplicates.
func importIDPrefix(path string) string {
	abs, err := filepath.Abs(path)
	if err != nil {
		abs = path
	}
	sum := sha256.Sum256([]byte(abs))
	base := filepath.Base(path)
	if len(base) > 48 {
		base = base[:48]
	}
	return base + "@" + hex.EncodeToString(sum[:4])
}

// importBatch is a run of consecutive file positions.
type importBatch struct {
	first int // position of the first event (1-based)
	n     int
	ids   []string
	body  []byte
}

// runImport streams o.File to the server; see the command's help.
func runImport(ctx context.Context, o importOptions, stderr io.Writer) (importSummary, error) {
	s := importSummary{File: o.File, Format: o.Format, IDPrefix: o.IDPrefix}
	if s.Format == "" {
		s.Format = event.FormatFromName(o.File)
		if s.Format == "" {
			return s, fmt.Errorf("cannot tell the format of %s from its name: pass --format (%s)", o.File, strings.Join(event.Formats, "|"))
		}
	}
	if o.Batch < 1 || o.Concurrency < 1 {
		return s, fmt.Errorf("--batch and --concurrency must be at least 1")
	}
	if s.IDPrefix == "" {
		s.IDPrefix = importIDPrefix(o.File)
	}
	f, err := os.Open(o.File)
	if err != nil {
		return s, err
	}
	defer f.Close()

	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	client := newLoadClient(o.Concurrency, o.Timeout)
	defer client.CloseIdleConnections()
	url := baseURL(o.Addr) + "/v1/events"
	bar := progressbar.NewOptions64(-1,
		progressbar.OptionSetWriter(stderr),
		progressbar.OptionSetVisibility(o.Progress),
		progressbar.OptionSetDescription("importing "+filepath.Base(o.File)),
		progressbar.OptionShowCount(),
		progressbar.OptionShowIts(),
		progressbar.OptionSetItsString("events"),
		progressbar.OptionThrottle(100*time.Millisecond),
		progressbar.OptionSpinnerType(14),
	)

	var (
		mu        sync.Mutex
		shown     int // rejections printed
		batches   = make(chan importBatch, o.Concurrency)
		wg        sync.WaitGroup
		start     = time.Now()
		rejectMax = 10
	)
	for range o.Concurrency {
		wg.Go(func() {
			for b := range batches {
				r, retries, err := postEvents(ctx, client, url, b.body, o.Retry)
				mu.Lock()
				s.Retries += retries
				if err != nil {
					mu.Unlock()
					cancel(fmt.Errorf("events %d..%d of %s: %w", b.first, b.first+b.n-1, o.File, err))
					continue // drain the channel so the reader can stop
				}
				s.Batches++
				s.Accepted += r.Accepted
				s.Duplicates += r.Duplicates
				s.Rejected += r.Rejected
				for _, e := range r.Errors {
					if shown < rejectMax && e.Index >= 0 && e.Index < b.n {
						fmt.Fprintf(stderr, "\nrejected event %d (id %s): %s\n", b.first+e.Index, b.ids[e.Index], e.Error)
					}
					shown++
				}
				mu.Unlock()
				_ = bar.Add(b.n)
			}
		})
	}

	// The reader owns the file; workers own the network.
	cur := importBatch{first: 1}
	pos := 0
	flush := func() error {
		if cur.n == 0 {
			return nil
		}
		select {
		case batches <- cur:
		case <-ctx.Done():
			return context.Cause(ctx)
		}
		cur = importBatch{first: pos + 1, body: make([]byte, 0, len(cur.body)), ids: make([]string, 0, o.Batch)}
		return nil
	}
	readErr := event.ReadFile(f, s.Format, func(e *event.Interaction) error {
		pos++
		if e.ID == "" {
			e.ID = s.IDPrefix + ":" + strconv.Itoa(pos)
		}
		var err error
		if cur.body, err = appendNDJSON(cur.body, e); err != nil {
			return err
		}
		cur.ids = append(cur.ids, e.ID)
		cur.n++
		if cur.n == o.Batch {
			return flush()
		}
		return nil
	})
	if readErr == nil {
		readErr = flush()
	}
	close(batches)
	wg.Wait()
	_ = bar.Finish()
	if o.Progress {
		fmt.Fprintln(stderr)
	}
	s.Read = pos
	s.Elapsed = time.Since(start)
	if shown > rejectMax {
		fmt.Fprintf(stderr, "... and %d more rejected events\n", shown-rejectMax)
	}
	// A send error is the cause of the reader's stop: report it, not the
	// reader's "context canceled".
	if cause := context.Cause(ctx); cause != nil && !errors.Is(cause, context.Canceled) {
		return s, cause
	}
	if readErr != nil {
		return s, fmt.Errorf("%s: %w", o.File, readErr)
	}
	if err := ctx.Err(); err != nil {
		return s, err
	}
	return s, nil
}
