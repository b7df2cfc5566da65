package api_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/ripple-rec/ripple/internal/api"
	"github.com/ripple-rec/ripple/internal/audit"
)

func TestConsentAndErasureEndpoints(t *testing.T) {
	auditDir := t.TempDir()
	al, err := audit.Open(auditDir)
	require.NoError(t, err)
	defer al.Close()
	n := newNode(t, func(o *api.Options) { o.Audit = al })

	r := n.do(t, "GET", "/v1/users/carol/consent", "", "")
	require.Equal(t, 200, r.code)
	assert.Equal(t, map[string]any{"personalization": true, "storage": true}, r.body["consent"], "full consent by default")

	for _, bad := range []string{`{}`, `{"storage":"no"}`, `{"storage":false,"x":1}`, `not json`} {
		r = n.do(t, "PUT", "/v1/users/carol/consent", jsonCT, bad)
		assert.Equal(t, 400, r.code, bad)
		assert.Equal(t, "invalid_body", errorCode(r))
	}
	r = n.do(t, "PUT", "/v1/users/carol/consent", jsonCT, `{"storage":false}`)
	require.Equal(t, 200, r.code, r.raw)
	assert.Equal(t, map[string]any{"personalization": true, "storage": false}, r.body["consent"], "unset fields keep their value")

	r = n.do(t, "POST", "/v1/events", jsonCT, `[{"user":"dave","item":"i1","type":"view"},{"user":"carol","item":"i1","type":"view"}]`)
	require.Equal(t, 202, r.code, r.raw)
	assert.EqualValues(t, 1, r.body["accepted"])
	assert.EqualValues(t, 1, r.body["rejected"])
	errs := r.body["errors"].([]any)
	require.Len(t, errs, 1)
	assert.EqualValues(t, 1, errs[0].(map[string]any)["index"], "the index in the request")
	assert.Contains(t, errs[0].(map[string]any)["error"], "storage consent")

	r = n.do(t, "DELETE", "/v1/users/dave", "", "")
	require.Equal(t, 200, r.code, r.raw)
	assert.Equal(t, true, r.body["log_redacted"])
	assert.EqualValues(t, 2, r.body["redacted_records"], "dave's event and the tombstone")

	raw, err := os.ReadFile(filepath.Join(auditDir, "audit.log"))
	require.NoError(t, err)
	lines := strings.Split(strings.TrimSpace(string(raw)), "\n")
	require.Len(t, lines, 2, "the consent change and the erasure")
	assert.Contains(t, lines[0], `"action":"user.consent"`)
	assert.Contains(t, lines[1], `"action":"user.erase"`)
	assert.Contains(t, lines[1], al.Subject("dave"))
	assert.NotContains(t, string(raw), "dave", "no raw user id in the audit log")
	assert.NotContains(t, string(raw), "carol")
}
