package main

import (
	"fmt"
	"io"
	"os"
	"os/signal"
	"time"

	"github.com/schollz/progressbar/v3"
	"github.com/spf13/cobra"
	"golang.org/x/term"

	"github.com/ripple-rec/ripple/internal/eval"
)

func init() {
	subcommands = append(subcommands, newEvalCommand)
}

func newEvalCommand() *cobra.Command {
	var (
		dataset, format, protocol, split, reportDir, name string
		limitUsers                                        int
		quiet                                             bool
	)
	cmd := &cobra.Command{
		Use:   "eval --dataset PATH",
		Short: "Evaluate the recommendation pipeline offline against PopRec and published numbers",
		Long: `Evaluate replays a dataset's training input into a fresh feature engine and
ranks each user's held-out item with the serving pipeline and a leak-free
PopRec, under leave-one-out with full ranking (the protocol of the S3-Rec and
SASRec papers). It prints a Markdown table and writes
<report-dir>/<dataset>-<protocol>.md and .json.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if protocol != eval.ProtocolLOO {
				return fmt.Errorf("unknown protocol %q (accepted: %s)", protocol, eval.ProtocolLOO)
			}
			sp, err := eval.ParseSplit(split)
			if err != nil {
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
			opt := eval.Options{Split: sp, LimitUsers: limitUsers}
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
				fmt.Fprintf(cmd.ErrOrStderr(), "wrote %s and %s\n", md, js)
			}
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&dataset, "dataset", "", "dataset file (required)")
	f.StringVar(&format, "format", "", "seq, movielens, csv or ndjson (default: inferred from the file name)")
	f.StringVar(&protocol, "protocol", eval.ProtocolLOO, "evaluation protocol: loo (leave-one-out, full ranking)")
	f.StringVar(&split, "split", string(eval.SplitTest), "test (last item) or valid (second-to-last item)")
	f.StringVar(&reportDir, "report-dir", "./eval-reports", "directory for the .md and .json reports")
	f.StringVar(&name, "name", "", "dataset name in reports (default: from the file name)")
	f.IntVar(&limitUsers, "limit-users", 0, "evaluate only the first N users (training input stays complete; 0: all)")
	f.BoolVar(&quiet, "quiet", false, "no progress bar or messages on stderr")
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
