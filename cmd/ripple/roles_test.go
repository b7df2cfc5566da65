package main

import (
	"testing"

	"github.com/stretchr/testify/require"
)

// Role and worker settings are checked before anything opens; each bad one
// is named in the error.
func TestValidateRole(t *testing.T) {
	base := func(log string) serveConfig {
		cfg := defaultServeConfig()
		cfg.Role, cfg.Store, cfg.Log = roleWorker, "redis", log
		return cfg
	}
	for name, tc := range map[string]struct {
		edit func(*serveConfig)
		want string // "" = valid
	}{
		"kafka defaults to group":  {func(c *serveConfig) {}, ""},
		"nats defaults to lease":   {func(c *serveConfig) { c.Log = "nats"; require.Equal(t, assignLease, c.assignment()) }, ""},
		"lease on kafka":           {func(c *serveConfig) { c.Worker.Assignment = "lease" }, ""},
		"static on kafka":          {func(c *serveConfig) { c.Worker.Assignment = "static"; c.Worker.Count = 3; c.Worker.Index = 2 }, ""},
		"group on nats":            {func(c *serveConfig) { c.Log = "nats"; c.Worker.Assignment = "group" }, "worker.assignment: group needs log: kafka"},
		"unknown assignment":       {func(c *serveConfig) { c.Worker.Assignment = "random" }, `worker.assignment: want group, lease or static, got "random"`},
		"bad session timeout":      {func(c *serveConfig) { c.Worker.SessionTimeout = "soon" }, "worker.session_timeout"},
		"negative session timeout": {func(c *serveConfig) { c.Worker.SessionTimeout = "-1s" }, "worker.session_timeout"},
		"no group name":            {func(c *serveConfig) { c.Kafka.Group = "" }, "kafka.group"},
		"static index out of range": {func(c *serveConfig) {
			c.Log = "nats"
			c.Worker.Assignment = "static"
			c.Worker.Count = 2
			c.Worker.Index = 2
		},
			"want 0 <= index < count"},
		"embedded store":     {func(c *serveConfig) { c.Store = "embedded" }, "needs store: redis"},
		"embedded log":       {func(c *serveConfig) { c.Log = "embedded" }, "needs store: redis and log: kafka or nats"},
		"unknown role":       {func(c *serveConfig) { c.Role = "leader" }, `role: want all, api or worker, got "leader"`},
		"api ignores worker": {func(c *serveConfig) { c.Role = roleAPI; c.Worker.Assignment = "random" }, ""},
	} {
		t.Run(name, func(t *testing.T) {
			cfg := base("kafka")
			tc.edit(&cfg)
			err := cfg.validateRole()
			if tc.want == "" {
				require.NoError(t, err)
				return
			}
			require.ErrorContains(t, err, tc.want)
		})
	}
}
