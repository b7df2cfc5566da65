package main

import (
	"context"
	"fmt"
	"path/filepath"
	"time"

	"github.com/spf13/cobra"

	"github.com/ripple-rec/ripple/internal/eventlog"
	"github.com/ripple-rec/ripple/internal/features"
	"github.com/ripple-rec/ripple/internal/ingest"
	"github.com/ripple-rec/ripple/internal/store"
)

func init() {
	subcommands = append(subcommands, newTrainCmd)
}

// newTrainCmd rebuilds the streaming models (the feature state: windows,
// affinities, trending, co-visitation) from the whole log, offline, and
// writes them as the new snapshot. Trained item–item models and the learned
// ranker are not part of this version.
func newTrainCmd() *cobra.Command {
	var dataDir, featureFile string
	cmd := &cobra.Command{
		Use:   "train",
		Short: "Rebuild the feature state from the event log offline and write a fresh snapshot",
		Long: `Replays every retained record of the event log in --data-dir into a fresh feature
engine (with --features, or the built-in specs) and writes the result as the snapshot the
next 'ripple serve' starts from. Use it after changing feature specs, to avoid a long
replay at start-up. The server must not be running on the same data dir (Pebble locks it).`,
		RunE: func(cmd *cobra.Command, _ []string) error {
			fcfg := features.DefaultConfig()
			if featureFile != "" {
				var err error
				if fcfg, err = features.LoadConfig(featureFile); err != nil {
					return err
				}
			}
			res, err := rebuild(cmd.Context(), dataDir, fcfg)
			if err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "replayed %d records in %.2fs (%.0f records/s); snapshot at offset %d: %d entries, %d bytes, written in %.2fs\n",
				res.records, res.replay.Seconds(), float64(res.records)/max(res.replay.Seconds(), 1e-9), res.info.Offset, res.info.Entries,
				res.info.Bytes, res.write.Seconds())
			return nil
		},
	}
	cmd.Flags().StringVar(&dataDir, "data-dir", "./ripple-data", "data directory of a stopped server")
	cmd.Flags().StringVar(&featureFile, "features", "", "feature spec YAML (default: built-in)")
	return cmd
}

type rebuildResult struct {
	records       int
	replay, write time.Duration
	info          store.SnapshotInfo
}

func rebuild(ctx context.Context, dataDir string, fcfg *features.Config) (rebuildResult, error) {
	var res rebuildResult
	lg, err := eventlog.OpenEmbedded(filepath.Join(dataDir, "log"), eventlog.EmbeddedOptions{})
	if err != nil {
		return res, err
	}
	defer lg.Close()
	if lg.Start() > 1 {
		return res, fmt.Errorf("the log starts at offset %d (older records were dropped by retention after a snapshot): a rebuild from the log alone would lose them", lg.Start())
	}
	snaps, err := store.OpenSnapshots(filepath.Join(dataDir, "snapshots"))
	if err != nil {
		return res, err
	}
	defer snaps.Close()
	eng := features.NewEngine(fcfg, nil)
	start := time.Now()
	res.records, err = ingest.Replay(ctx, lg, eng, func(off uint64, err error) error {
		return fmt.Errorf("offset %d: %w", off, err)
	})
	if err != nil {
		return res, err
	}
	res.replay = time.Since(start)
	start = time.Now()
	res.info, err = snaps.Write(eng.Applied(), eng.Snapshot)
	res.write = time.Since(start)
	return res, err
}
