package main

import (
	"context"
	"fmt"
	"path/filepath"
	"time"

	"github.com/spf13/cobra"

	"github.com/ripple-rec/ripple/internal/event"
	"github.com/ripple-rec/ripple/internal/eventlog"
	"github.com/ripple-rec/ripple/internal/features"
	"github.com/ripple-rec/ripple/internal/ingest"
	"github.com/ripple-rec/ripple/internal/model"
	"github.com/ripple-rec/ripple/internal/recommend"
	"github.com/ripple-rec/ripple/internal/store"
	"github.com/ripple-rec/ripple/internal/train"
)

func init() {
	subcommands = append(subcommands, newTrainCmd)
}

// newTrainCmd rebuilds, offline, the streaming state (windows, affinities,
// trending, co-visitation) from the whole log as a fresh snapshot, then
// trains the item–item models from the same log and promotes them in the
// data dir's model registry: what a running server does on
// POST /v1/admin/train, for a stopped one.
func newTrainCmd() *cobra.Command {
	var dataDir, featureFile, configFile string
	var noModels bool
	cmd := &cobra.Command{
		Use:   "train",
		Short: "Rebuild the feature state and the trained models from the event log offline",
		Long: `Replays every retained record of the event log in --data-dir into a fresh feature
engine (with --features, or the built-in specs) and writes the result as the snapshot the
next 'ripple serve' starts from. Then trains the models (transition, item kNN, EASE on small
catalogues), tunes their blend on each user's last event, learns a ranker from replayed
validation lists and from the engaged lists the server logged in <data-dir>/feedback, and
promotes the result as the next version in <data-dir>/models (the train: section of --config
shapes it). The server
must not be running on the same data dir (Pebble locks it); a running server trains on
POST /v1/admin/train?wait=true instead.`,
		RunE: func(cmd *cobra.Command, _ []string) error {
			fcfg := features.DefaultConfig()
			if featureFile != "" {
				var err error
				if fcfg, err = features.LoadConfig(featureFile); err != nil {
					return err
				}
			}
			tcfg, rcfg := defaultServeConfig().Train, defaultServeConfig().Recommend
			if configFile != "" {
				cfg, err := readServeConfig(configFile)
				if err != nil {
					return err
				}
				if err := cfg.validate(); err != nil {
					return err
				}
				tcfg, rcfg = cfg.Train, cfg.Recommend
			}
			res, err := rebuild(cmd.Context(), dataDir, fcfg, tcfg, rcfg, !noModels)
			if err != nil {
				return err
			}
			out := cmd.OutOrStdout()
			fmt.Fprintf(out, "replayed %d records in %.2fs (%.0f records/s); snapshot at offset %d: %d entries, %d bytes, written in %.2fs\n",
				res.records, res.replay.Seconds(), float64(res.records)/max(res.replay.Seconds(), 1e-9), res.info.Offset, res.info.Entries,
				res.info.Bytes, res.write.Seconds())
			if r := res.models; r != nil {
				fmt.Fprintf(out, "trained %s on %d events, %d items in %.2fs; serving %s\n", r.Model, r.Events, r.Items, r.TrainSeconds, r.Serving)
				for _, v := range r.Validation {
					fmt.Fprintf(out, "  validation (%d users) %-10s NDCG@10 %.4f HR@10 %.4f\n", r.ValidationUsers, v.Source, v.NDCG10, v.HR10)
				}
				for _, rk := range []struct {
					from string
					rep  *train.RankerReport
				}{{"replayed", r.ReplayRanker}, {"logged", r.Ranker}} {
					if rk.rep != nil {
						chosen := rk.rep.Chosen
						if chosen == "" {
							chosen = "none"
						}
						fmt.Fprintf(out, "  ranker from %d %s lists: %s (%s)\n", rk.rep.Lists, rk.from, chosen, rk.rep.Reason)
					}
				}
			}
			return nil
		},
	}
	cmd.Flags().StringVar(&dataDir, "data-dir", "./ripple-data", "data directory of a stopped server")
	cmd.Flags().StringVar(&featureFile, "features", "", "feature spec YAML (default: built-in)")
	cmd.Flags().StringVar(&configFile, "config", "", "serve config whose train: section shapes the models (default: built-in)")
	cmd.Flags().BoolVar(&noModels, "no-models", false, "rebuild the snapshot only")
	return cmd
}

type rebuildResult struct {
	records       int
	replay, write time.Duration
	info          store.SnapshotInfo
	models        *train.Report
}

func rebuild(ctx context.Context, dataDir string, fcfg *features.Config, tcfg trainConfig, rcfg recommend.Config, models bool) (rebuildResult, error) {
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
	if err != nil || !models {
		return res, err
	}
	reg, err := model.OpenRegistry(filepath.Join(dataDir, "models"), tcfg.Keep)
	if reg == nil {
		return res, err
	}
	job, err := train.NewJob(func(ctx context.Context, fn func(*event.Interaction) error) error {
		return ingest.LogInteractions(ctx, lg, eng, fn)
	}, reg, tcfg.Config, &train.Stream{Features: fcfg, Recommend: rcfg, Items: eng.Catalogue}, nil, nil)
	if err != nil {
		return res, err
	}
	defer job.Close()
	// The lists this node's server logged, when it keeps them: the ranker
	// learns from them.
	job.Examples = filepath.Join(dataDir, "feedback")
	res.models, err = job.Run(ctx)
	return res, err
}
