package main

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/ripple-rec/ripple/internal/audit"
	"github.com/ripple-rec/ripple/internal/auth"
)

func init() {
	subcommands = append(subcommands, newKeysCmd)
}

// keysTarget finds the key file: --file, else the serve config's
// auth.key_file or data_dir, else <--data-dir>/keys.json.
type keysTarget struct {
	file, dataDir, config string
}

func (k *keysTarget) path(cmd *cobra.Command) (string, error) {
	if k.file != "" {
		return k.file, nil
	}
	cfg := defaultServeConfig()
	if k.config != "" {
		var err error
		if cfg, err = readServeConfig(k.config); err != nil {
			return "", err
		}
	}
	if cmd.Flags().Changed("data-dir") {
		cfg.DataDir = k.dataDir
	}
	return keyFilePath(cfg), nil
}

func newKeysCmd() *cobra.Command {
	t := &keysTarget{}
	cmd := &cobra.Command{
		Use:   "keys",
		Short: "Manage API keys: create, list, revoke",
		Long: `Manage the API keys in the key file (default <data_dir>/keys.json). Keys carry
scopes (ingest, read, admin) and are stored only as SHA-256 hashes; the secret is
printed once, at creation. Running servers reread the file when it changes (every
auth.reload_interval) or at once on SIGHUP, so a revoke needs no restart.`,
	}
	pf := cmd.PersistentFlags()
	pf.StringVar(&t.file, "file", "", "key file (default: auth.key_file of --config, else <data-dir>/keys.json)")
	pf.StringVar(&t.dataDir, "data-dir", defaultServeConfig().DataDir, "data dir whose keys.json to manage")
	pf.StringVar(&t.config, "config", "", "serve config whose auth.key_file and data_dir to use")
	cmd.AddCommand(newKeysCreateCmd(t), newKeysListCmd(t), newKeysRevokeCmd(t))
	return cmd
}

// createdKey is what create prints with --json: the only place the
// secret ever appears.
type createdKey struct {
	ID     string       `json:"id"`
	Name   string       `json:"name"`
	Scopes []auth.Scope `json:"scopes"`
	Tenant string       `json:"tenant,omitempty"`
	Secret string       `json:"secret"`
	File   string       `json:"file,omitempty"`
}

func newKeysCreateCmd(t *keysTarget) *cobra.Command {
	var name, scopes, tenant string
	var rps float64
	var burst int
	var asJSON, printConfig bool
	cmd := &cobra.Command{
		Use:   "create --name NAME --scopes read,ingest [--tenant T]",
		Short: "Create a key and print its secret once",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			sc, err := auth.ParseScopes(scopes)
			if err != nil {
				return fmt.Errorf("--scopes: %w", err)
			}
			if strings.TrimSpace(name) == "" {
				return fmt.Errorf("--name is required")
			}
			k, secret, err := auth.NewKey(name, sc, tenant, time.Now())
			if err != nil {
				return err
			}
			k.RPS, k.Burst = rps, burst
			if err := k.Validate(); err != nil {
				return err
			}
			out := cmd.OutOrStdout()
			if printConfig {
				return printConfigEntry(out, k, secret)
			}
			path, err := t.path(cmd)
			if err != nil {
				return err
			}
			if err := auth.UpdateFile(path, func(keys []auth.Key) ([]auth.Key, error) {
				return append(keys, k), nil
			}); err != nil {
				return err
			}
			auditKeys(path, "keys.create", k)
			if asJSON {
				return json.NewEncoder(out).Encode(createdKey{ID: k.ID, Name: k.Name, Scopes: k.Scopes, Tenant: k.Tenant,
					Secret: secret, File: path})
			}
			fmt.Fprintf(out, "Created API key %s %q (scopes: %s%s) in %s.\n\n", k.ID, k.Name, joinScopes(k.Scopes),
				tenantNote(k.Tenant), path)
			fmt.Fprintf(out, "Secret, shown only this once (Ripple keeps only its hash):\n\n    %s\n\n", secret)
			fmt.Fprintln(out, "Send it as `Authorization: Bearer <secret>` or `X-API-Key: <secret>`. Running servers pick the key up")
			fmt.Fprintln(out, "within auth.reload_interval, or at once on SIGHUP.")
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&name, "name", "", "what the key is for, e.g. web-frontend (required)")
	f.StringVar(&scopes, "scopes", "", "comma-separated scopes: ingest, read, admin (required)")
	f.StringVar(&tenant, "tenant", "", "tenant whose rate limit the key shares")
	f.Float64Var(&rps, "rps", 0, "per-key rate limit override in requests/s (0: rate_limit.per_key_rps; -1: no limit)")
	f.IntVar(&burst, "burst", 0, "per-key burst override (0: rate_limit.per_key_burst, or one second of --rps)")
	f.BoolVar(&asJSON, "json", false, "print the new key, secret included, as JSON")
	f.BoolVar(&printConfig, "print-config", false, "write no file: print an auth.keys entry for the serve config, and the secret")
	return cmd
}

// printConfigEntry prints a static key for the serve config.
func printConfigEntry(out io.Writer, k auth.Key, secret string) error {
	fmt.Fprintln(out, "# Add under auth.keys in the serve config:")
	fmt.Fprintf(out, "- id: %s\n  name: %s\n  scopes: [%s]\n  hash: %s\n", k.ID, strconv.Quote(k.Name), joinScopes(k.Scopes), k.Hash)
	if k.Tenant != "" {
		fmt.Fprintf(out, "  tenant: %s\n", k.Tenant)
	}
	if k.RPS != 0 {
		fmt.Fprintf(out, "  rps: %s\n", strconv.FormatFloat(k.RPS, 'g', -1, 64))
	}
	if k.Burst != 0 {
		fmt.Fprintf(out, "  burst: %d\n", k.Burst)
	}
	fmt.Fprintf(out, "# Secret, shown only this once (the config keeps only its hash):\n# %s\n", secret)
	return nil
}

func newKeysListCmd(t *keysTarget) *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "list",
		Short: "List the keys of the key file (never their secrets)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			path, err := t.path(cmd)
			if err != nil {
				return err
			}
			keys, err := auth.ReadFile(path)
			if err != nil {
				return err
			}
			out := cmd.OutOrStdout()
			if asJSON {
				type listed struct {
					ID        string       `json:"id"`
					Name      string       `json:"name"`
					Scopes    []auth.Scope `json:"scopes"`
					Tenant    string       `json:"tenant,omitempty"`
					RPS       float64      `json:"rps,omitempty"`
					Burst     int          `json:"burst,omitempty"`
					Created   time.Time    `json:"created"`
					Revoked   bool         `json:"revoked"`
					RevokedAt time.Time    `json:"revoked_at,omitzero"`
				}
				l := make([]listed, len(keys))
				for i, k := range keys {
					l[i] = listed{k.ID, k.Name, k.Scopes, k.Tenant, k.RPS, k.Burst, k.Created, k.Revoked, k.RevokedAt}
				}
				return json.NewEncoder(out).Encode(l)
			}
			if len(keys) == 0 {
				fmt.Fprintf(out, "no keys in %s\n", path)
				return nil
			}
			tw := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "ID\tNAME\tSCOPES\tTENANT\tRATE\tCREATED\tSTATUS")
			for _, k := range keys {
				status := "active"
				if k.Revoked {
					status = "revoked " + k.RevokedAt.UTC().Format(time.RFC3339)
				}
				rate := "default"
				switch {
				case k.RPS < 0:
					rate = "unlimited"
				case k.RPS > 0:
					rate = strconv.FormatFloat(k.RPS, 'g', -1, 64) + "/s"
					if k.Burst > 0 {
						rate += " burst " + strconv.Itoa(k.Burst)
					}
				}
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", k.ID, k.Name, joinScopes(k.Scopes), orDash(k.Tenant), rate,
					k.Created.UTC().Format(time.RFC3339), status)
			}
			return tw.Flush()
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	return cmd
}

func newKeysRevokeCmd(t *keysTarget) *cobra.Command {
	return &cobra.Command{
		Use:   "revoke ID",
		Short: "Revoke a key: running servers refuse it after their next reload",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			path, err := t.path(cmd)
			if err != nil {
				return err
			}
			id := args[0]
			var found auth.Key
			already := false
			err = auth.UpdateFile(path, func(keys []auth.Key) ([]auth.Key, error) {
				for i := range keys {
					if keys[i].ID == id {
						already = keys[i].Revoked
						if !already {
							keys[i].Revoked, keys[i].RevokedAt = true, time.Now().UTC().Truncate(time.Second)
						}
						found = keys[i]
						return keys, nil
					}
				}
				return nil, fmt.Errorf("no key %s in %s (keys in auth.keys of the config are revoked there)", id, path)
			})
			if err != nil {
				return err
			}
			if already {
				fmt.Fprintf(cmd.OutOrStdout(), "key %s %q was already revoked\n", found.ID, found.Name)
				return nil
			}
			auditKeys(path, "keys.revoke", found)
			fmt.Fprintf(cmd.OutOrStdout(), "revoked key %s %q in %s; running servers refuse it within auth.reload_interval, or at once on SIGHUP\n",
				found.ID, found.Name, filepath.Clean(path))
			return nil
		},
	}
}

func joinScopes(s []auth.Scope) string {
	out := make([]string, len(s))
	for i, x := range s {
		out[i] = string(x)
	}
	return strings.Join(out, ",")
}

func tenantNote(t string) string {
	if t == "" {
		return ""
	}
	return "; tenant: " + t
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// auditKeys records a key change in the audit log beside the key file
// (the data dir by default). A failure to audit is reported, not fatal:
// the key file change already happened.
func auditKeys(keyFile, action string, k auth.Key) {
	l, err := audit.Open(filepath.Dir(keyFile))
	if err == nil {
		err = l.Record(audit.Entry{Action: action, Actor: "cli", Outcome: "ok",
			Details: map[string]any{"key_id": k.ID, "name": k.Name, "scopes": joinScopes(k.Scopes)}})
		l.Close()
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "ripple: warning: audit log:", err)
	}
}
