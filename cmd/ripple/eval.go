package main

import (
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/schollz/progressbar/v3"
	"github.com/spf13/cobra"
	"golang.org/x/term"

	"github.com/ripple-rec/ripple/internal/eval"
	"github.com/ripple-rec/ripple/internal/event"
)

func init() {
	subcommands = append(subcommands, newEvalCommand)
}

func newEvalCommand() *cobra.Command {
	var (
		dataset, format, protocol, split, reportDir, name string
		limitUsers                                        int
		quiet, noTrain, noCategories                      bool
		compare                                           []string
	)
	cmd := &cobra.Command{
		Use:   "eval --dataset PATH",
		Short: "Evaluate the recommendation pipeline offline against PopRec and published numbers",
		Long: `Evaluate replays a dataset's training input into a fresh feature engine and
ranks each user's held-out item with the serving pipeline and a leak-free
PopRec, under leave-one-out with full ranking (the protocol of the S3-Rec and
SASRec papers). It also trains the item–item models on the training input (tuned on each
user's last training event, never the target) and evaluates the trained blend through the
same pipeline, and, when users × items is at most 50M (not on the Amazon sets), an implicit-ALS matrix
factorisation baseline. Beside HR@K and NDCG@K it reports, on each user's top 10,
catalogue coverage, novelty and (when the dataset has item categories) intra-list
diversity. It prints a Markdown table and writes <report-dir>/<dataset>-<protocol>.md,
.json and .html (the models compared, HR@k and NDCG@k curves).

Item categories shipped beside the dataset (<Name>_item2attributes.json beside
<Name>.txt, u.item beside MovieLens's u.data) are given to Ripple as item metadata, as
a server would be sent its catalogue, before the training input. --no-categories
withholds them from Ripple (they still measure diversity); its reports are named
<dataset>-<protocol>-nocat.

The public session and behaviour datasets are read as their sources prescribe.
Taobao UserBehavior (UserBehavior*.csv): rows outside 2017-11-25..2017-12-03 (UTC+8)
are dropped, pv/cart/buy are view/cart/purchase and fav counts as cart (the same
intent: saved, not bought); category_id is the item's category; leave-one-out.
YooChoose (session-rec's yoochoose-clicks-*_train_full.txt and _test.txt; pass
either file or their folder) and Diginetica (train-item-views.csv, through SR-GNN's
preprocessing: length-1 sessions and items seen fewer than 5 times dropped, the last
7 days of sessions are the test set) are evaluated with the session protocol: each
session is a user, every prefix of a test session predicts the next item, the
session's items stay in the ranking, HR@K and MRR@K over all predictions, beside
PopRec and session-rec's SR and S-POP baselines.

--compare FILE (repeatable) evaluates further configurations in the same run: each FILE
is a serve config (YAML) whose recommend: and train: sections override the defaults; it
is reported under the file's name.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if protocol != "" && !slices.Contains(eval.Protocols, protocol) {
				return fmt.Errorf("unknown protocol %q (accepted: %s)", protocol, strings.Join(eval.Protocols, ", "))
			}
			sp, err := eval.ParseSplit(split)
			if err != nil {
				return err
			}
			if dataset, err = eval.DatasetFile(dataset); err != nil {
				return err
			}
			if format == "" {
				if format, err = eval.InferFormat(dataset); err != nil {
					return err
				}
			}
			ctx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt)
			defer stop()

			var bar *stageBar
			opt := eval.Options{Split: sp, Protocol: protocol, LimitUsers: limitUsers, NoTrain: noTrain, NoCategories: noCategories}
			for _, path := range compare {
				cfg, err := readServeConfig(path)
				if err != nil {
					return err
				}
				if err := cfg.validate(); err != nil {
					return fmt.Errorf("%s: %w", path, err)
				}
				name := strings.TrimSuffix(filepath.Base(path), filepath.Ext(path))
				opt.Variants = append(opt.Variants, eval.Variant{Name: name, Recommend: &cfg.Recommend, Train: &cfg.Train.Config})
			}
			if !quiet && term.IsTerminal(int(os.Stderr.Fd())) {
				bar = &stageBar{w: os.Stderr}
				opt.Progress = bar.update
			}
			d, err := eval.LoadFile(dataset, format)
			if err != nil {
				return err
			}
			if name != "" {
				d.Name = name
			}
			rep, err := eval.Run(ctx, d, opt)
			bar.finish()
			if err != nil {
				return err
			}
			if err := rep.WriteMarkdown(cmd.OutOrStdout()); err != nil {
				return err
			}
			md, js, err := rep.Save(reportDir)
			if err != nil {
				return err
			}
			if !quiet {
				fmt.Fprintf(cmd.ErrOrStderr(), "wrote %s, %s and %s\n", md, js, strings.TrimSuffix(md, ".md")+".html")
			}
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&dataset, "dataset", "", "dataset file, or a folder holding one (required)")
	f.StringVar(&format, "format", "", strings.Join(event.Formats, ", ")+" (default: inferred from the file name)")
	f.StringVar(&protocol, "protocol", "", "evaluation protocol: loo (leave-one-out, full ranking), stratified (per-user random 75/25, every held-out item relevant) "+
		"or session (every prefix of a test session predicts its next item; yoochoose, diginetica) (default: session for datasets split into training and test sessions, else loo)")
	f.StringVar(&split, "split", string(eval.SplitTest), "test (last item) or valid (second-to-last item)")
	f.StringVar(&reportDir, "report-dir", "./eval-reports", "directory for the .md and .json reports")
	f.StringVar(&name, "name", "", "dataset name in reports (default: from the file name)")
	f.IntVar(&limitUsers, "limit-users", 0, "evaluate only the first N users (training input stays complete; 0: all)")
	f.BoolVar(&quiet, "quiet", false, "no progress bar or messages on stderr")
	f.BoolVar(&noTrain, "no-train", false, "evaluate the streaming pipeline without trained models")
	f.BoolVar(&noCategories, "no-categories", false, "do not give the dataset's item categories to Ripple (they still measure ILD@10)")
	f.StringArrayVar(&compare, "compare", nil, "serve config (YAML) to evaluate as a further variant; repeatable")
	_ = cmd.MarkFlagRequired("dataset")
	return cmd
}

// stageBar shows one progress bar per stage of a run on a terminal.
type stageBar struct {
	w     io.Writer
	stage string
	bar   *progressbar.ProgressBar
}

func (s *stageBar) update(stage string, done, total int) {
	if stage != s.stage {
		s.finish()
		s.stage = stage
		s.bar = progressbar.NewOptions(total,
			progressbar.OptionSetWriter(s.w),
			progressbar.OptionSetDescription(fmt.Sprintf("%-26s", stage)),
			progressbar.OptionShowCount(),
			progressbar.OptionSetPredictTime(true),
			progressbar.OptionThrottle(100*time.Millisecond),
			progressbar.OptionSetWidth(30),
		)
	}
	_ = s.bar.Set(done)
}

// finish closes the current bar; it is safe on a nil stageBar.
func (s *stageBar) finish() {
	if s == nil || s.bar == nil {
		return
	}
	_ = s.bar.Finish()
	fmt.Fprintln(s.w)
	s.bar = nil
}
