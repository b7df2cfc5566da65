// Command ripple is the whole of Ripple in one binary: serve, import, train,
// eval, bench, loadgen and version.
package main

import (
	"fmt"
	"os"

	"github.com/spf13/cobra"
)

// version is set at build time with -ldflags "-X main.version=...".
var version = "dev"

// subcommands is filled by each command's file, so adding a command never
// touches another command's code.
var subcommands []func() *cobra.Command

func main() {
	root := &cobra.Command{
		Use:           "ripple",
		Short:         "Ripple: real-time recommendations from a stream of interactions",
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	for _, c := range subcommands {
		root.AddCommand(c())
	}
	if err := root.Execute(); err != nil {
		fmt.Fprintln(os.Stderr, "ripple:", err)
		os.Exit(1)
	}
}

func init() {
	subcommands = append(subcommands, func() *cobra.Command {
		return &cobra.Command{
			Use:   "version",
			Short: "Print the version",
			Run:   func(cmd *cobra.Command, _ []string) { fmt.Fprintln(cmd.OutOrStdout(), "ripple", version) },
		}
	})
}
