package api

import (
	"bytes"
	"context"
	"errors"
	"net/http"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"

	json "github.com/goccy/go-json"
	"github.com/ripple-rec/ripple/internal/audit"
	"github.com/ripple-rec/ripple/internal/event"
	"github.com/ripple-rec/ripple/internal/features"
	"github.com/ripple-rec/ripple/internal/ingest"
	"github.com/ripple-rec/ripple/internal/model"
	"github.com/ripple-rec/ripple/internal/recommend"
	"github.com/ripple-rec/ripple/internal/train"
)

type eventsResponse struct {
	Accepted   int                `json:"accepted"`
	Duplicates int                `json:"duplicates"`
	Rejected   int                `json:"rejected"`
	Errors     []event.IndexError `json:"errors"`
	RequestID  string             `json:"request_id"`
}

// postEvents answers 202 only after the accepted events are durable in the
// log and applied to the features (read-your-writes).
func (s *Server) postEvents(w http.ResponseWriter, r *http.Request) {
	mt := mediaType(r)
	if mt != "application/json" && mt != "application/x-ndjson" && mt != "" {
		writeError(w, r, http.StatusUnsupportedMediaType, "unsupported_media_type",
			"Content-Type must be application/json (array) or application/x-ndjson, got "+mt)
		return
	}
	body, ok := s.readBody(w, r)
	if !ok {
		return
	}
	var batch *event.Batch
	var err error
	if mt == "application/x-ndjson" {
		batch, err = event.ParseNDJSON(body, s.validator, s.opts.MaxBatchEvents)
	} else {
		batch, err = event.ParseJSONArray(body, s.validator, s.opts.MaxBatchEvents)
	}
	if err != nil {
		writeError(w, r, http.StatusBadRequest, "invalid_body", strings.TrimPrefix(err.Error(), event.ErrInvalid.Error()+": "))
		return
	}
	resp := eventsResponse{Rejected: len(batch.Errors), Errors: batch.Errors, RequestID: RequestID(r.Context())}
	if resp.Errors == nil {
		resp.Errors = []event.IndexError{}
	}
	if s.m != nil && resp.Rejected > 0 {
		s.m.Events.WithLabelValues("rejected").Add(float64(resp.Rejected))
	}
	if len(batch.Events) == 0 {
		writeJSON(w, http.StatusBadRequest, struct {
			errorBody
			eventsResponse
		}{errorBody{errorDetail{Code: "invalid_event", Message: "every event was rejected; first: " + batch.Errors[0].Error,
			RequestID: resp.RequestID}}, resp})
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), s.opts.IngestTimeout)
	defer cancel()
	res, err := s.w.Events(ctx, batch.Events)
	resp.Accepted, resp.Duplicates = res.Accepted, res.Duplicates
	for _, i := range res.Refused {
		resp.Errors = append(resp.Errors, event.IndexError{Index: batch.Index[i],
			Error: "user " + clip(batch.Events[i].User) + " withheld storage consent: event not stored"})
	}
	resp.Rejected += len(res.Refused)
	if s.m != nil && len(res.Refused) > 0 {
		s.m.Events.WithLabelValues("refused").Add(float64(len(res.Refused)))
	}
	if s.m != nil {
		s.m.Events.WithLabelValues("accepted").Add(float64(res.Accepted))
		s.m.Events.WithLabelValues("duplicate").Add(float64(res.Duplicates))
	}
	if (err == nil || errors.Is(err, ingest.ErrApplyPending)) && s.opts.Feedback != nil {
		s.opts.Feedback.Observe(stored(batch.Events, res.Refused))
	}
	switch {
	case errors.Is(err, ingest.ErrApplyPending):
		// Durable, so acknowledged; the header tells the client it may not
		// see its own write in the very next read.
		w.Header().Set("X-Ripple-Applied", "pending")
	case err != nil:
		s.log.ErrorContext(r.Context(), "append failed", "err", err)
		w.Header().Set("Retry-After", "1")
		writeError(w, r, http.StatusServiceUnavailable, "unavailable", "the event log did not accept the batch; nothing was acknowledged, retry with the same event ids")
		return
	}
	writeJSON(w, http.StatusAccepted, resp)
}

func (s *Server) putItem(w http.ResponseWriter, r *http.Request) {
	if !s.requireJSON(w, r) {
		return
	}
	body, ok := s.readBody(w, r)
	if !ok {
		return
	}
	var it event.Item
	err := event.DecodeItem(body, r.PathValue("item"), &it)
	if err == nil {
		err = s.validator.Item(&it)
	}
	if err != nil {
		writeError(w, r, http.StatusBadRequest, "invalid_item", strings.TrimPrefix(err.Error(), event.ErrInvalid.Error()+": "))
		return
	}
	if !s.writeItems(w, r, []event.Item{it}) {
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"item": it.ID, "categories": nonNil(it.Categories), "hidden": it.Hidden,
		"request_id": RequestID(r.Context())})
}

func (s *Server) postItems(w http.ResponseWriter, r *http.Request) {
	if !s.requireJSON(w, r) {
		return
	}
	body, ok := s.readBody(w, r)
	if !ok {
		return
	}
	var raws []json.RawMessage
	if err := json.Unmarshal(body, &raws); err != nil {
		writeError(w, r, http.StatusBadRequest, "invalid_body", "body must be a JSON array of items")
		return
	}
	if s.opts.MaxBatchEvents > 0 && len(raws) > s.opts.MaxBatchEvents {
		writeError(w, r, http.StatusBadRequest, "invalid_body", "too many items in one request")
		return
	}
	items := make([]event.Item, 0, len(raws))
	errs := []event.IndexError{}
	for i, raw := range raws {
		var it event.Item
		err := event.DecodeItem(raw, "", &it)
		if err == nil {
			err = s.validator.Item(&it)
		}
		if err != nil {
			errs = append(errs, event.IndexError{Index: i, Error: strings.TrimPrefix(err.Error(), event.ErrInvalid.Error()+": ")})
			continue
		}
		items = append(items, it)
	}
	if len(items) == 0 {
		msg := "empty array"
		if len(errs) > 0 {
			msg = "every item was rejected; first: " + errs[0].Error
		}
		writeError(w, r, http.StatusBadRequest, "invalid_item", msg)
		return
	}
	if !s.writeItems(w, r, items) {
		return
	}
	writeJSON(w, http.StatusAccepted, map[string]any{"accepted": len(items), "rejected": len(errs), "errors": errs,
		"request_id": RequestID(r.Context())})
}

func (s *Server) writeItems(w http.ResponseWriter, r *http.Request, items []event.Item) bool {
	ctx, cancel := context.WithTimeout(r.Context(), s.opts.IngestTimeout)
	defer cancel()
	err := s.w.Items(ctx, items)
	if err != nil && !errors.Is(err, ingest.ErrApplyPending) {
		w.Header().Set("Retry-After", "1")
		writeError(w, r, http.StatusServiceUnavailable, "unavailable", "the event log did not accept the items; retry")
		return false
	}
	return true
}

func (s *Server) requireJSON(w http.ResponseWriter, r *http.Request) bool {
	if mt := mediaType(r); mt != "application/json" && mt != "" {
		writeError(w, r, http.StatusUnsupportedMediaType, "unsupported_media_type", "Content-Type must be application/json, got "+mt)
		return false
	}
	return true
}

func nonNil[T any](s []T) []T {
	if s == nil {
		return []T{}
	}
	return s
}

type recommendResponse struct {
	User        string           `json:"user,omitempty"`
	Item        string           `json:"item,omitempty"`
	Items       []recommend.Item `json:"items"`
	Model       string           `json:"model"`
	Degradation string           `json:"degradation"`
	ColdStart   bool             `json:"cold_start"`
	RequestID   string           `json:"request_id"`
}

func (s *Server) respond(w http.ResponseWriter, r *http.Request, rr recommendResponse, res recommend.Response) {
	rr.Items, rr.Model, rr.Degradation, rr.ColdStart = nonNil(res.Items), res.Model, res.Degradation, res.ColdStart
	rr.RequestID = RequestID(r.Context())
	if s.m != nil {
		s.m.Recommendations.WithLabelValues(res.Degradation).Inc()
		s.m.Candidates.Observe(float64(res.Candidates))
	}
	writeJSON(w, http.StatusOK, rr)
}

func (s *Server) getRecommendations(w http.ResponseWriter, r *http.Request) {
	user := r.PathValue("user")
	k, err := queryInt(r, "k", 10, 1, s.opts.MaxK)
	if err != nil {
		writeError(w, r, http.StatusBadRequest, "invalid_parameter", err.Error())
		return
	}
	explain, err1 := queryBool(r, "explain")
	seen, err2 := queryBool(r, "include_seen")
	var explore *bool
	if r.URL.Query().Has("explore") {
		v, err3 := queryBool(r, "explore")
		err2 = errors.Join(err2, err3)
		explore = &v
	}
	if err = errors.Join(err1, err2); err != nil {
		writeError(w, r, http.StatusBadRequest, "invalid_parameter", err.Error())
		return
	}
	if len(user) > event.MaxIDLen {
		writeError(w, r, http.StatusBadRequest, "invalid_parameter", "user id too long")
		return
	}
	var exclude []string
	if ex := r.URL.Query().Get("exclude"); ex != "" {
		exclude = strings.Split(ex, ",")
	}
	ctx, cancel := context.WithTimeout(r.Context(), s.opts.ReadTimeout)
	defer cancel()
	res := s.p.Recommend(ctx, recommend.Request{User: user, K: k, IncludeSeen: seen, Explain: explain, Exclude: exclude, Explore: explore})
	s.served(user, res)
	s.respond(w, r, recommendResponse{User: user}, res)
}

// served tells the feedback tracker what user was shown. Users who withheld
// personalisation consent are served anonymously and not tracked.
func (s *Server) served(user string, res recommend.Response) {
	if s.opts.Feedback == nil || res.Anonymous() || len(res.Items) == 0 {
		return
	}
	ids := make([]string, len(res.Items))
	vecs := make([][model.NumRankFeatures]float64, len(res.Items))
	for i, it := range res.Items {
		ids[i], vecs[i] = it.Item, it.Vector
	}
	s.opts.Feedback.Served(user, res.Model, ids, vecs)
}

// stored is evs without the refused indices.
func stored(evs []event.Interaction, refused []int) []event.Interaction {
	if len(refused) == 0 {
		return evs
	}
	out := make([]event.Interaction, 0, len(evs)-len(refused))
	for i := range evs {
		if !slices.Contains(refused, i) {
			out = append(out, evs[i])
		}
	}
	return out
}

// getModels lists the kept model versions, newest first, and the one
// serving (null: none, the streaming model serves).
func (s *Server) getModels(w http.ResponseWriter, r *http.Request) {
	reg := s.opts.Models
	if reg == nil {
		writeError(w, r, http.StatusNotImplemented, "not_implemented", "this node keeps no trained models")
		return
	}
	mans, err := reg.Manifests()
	if err != nil {
		s.log.ErrorContext(r.Context(), "listing models", "err", err)
		writeError(w, r, http.StatusInternalServerError, "internal", "the model registry could not be read")
		return
	}
	var serving any
	if m := reg.CurrentManifest(); m != nil {
		serving = m.Name
	}
	writeJSON(w, http.StatusOK, map[string]any{"serving": serving, "models": mans, "request_id": RequestID(r.Context())})
}

// activateModel makes a kept version serve: a rollback. It holds until the
// next training run promotes a newer one.
func (s *Server) activateModel(w http.ResponseWriter, r *http.Request) {
	reg := s.opts.Models
	if reg == nil {
		writeError(w, r, http.StatusNotImplemented, "not_implemented", "this node keeps no trained models")
		return
	}
	name := r.PathValue("name")
	man, err := reg.Activate(name)
	switch {
	case errors.Is(err, os.ErrNotExist):
		writeError(w, r, http.StatusNotFound, "model_not_found", "no kept model "+clip(name))
	case errors.Is(err, model.ErrCorrupt):
		writeError(w, r, http.StatusConflict, "model_unreadable", "model "+clip(name)+" failed its checks; the serving model stays")
	case errors.Is(err, model.ErrBadName):
		writeError(w, r, http.StatusBadRequest, "invalid_parameter", err.Error())
	case err != nil:
		s.log.ErrorContext(r.Context(), "activating model", "err", err)
		writeError(w, r, http.StatusInternalServerError, "internal", "the model could not be activated; the serving model stays")
	default:
		s.audit(r, "model.activate", "", nil, map[string]any{"model": man.Name})
		writeJSON(w, http.StatusOK, map[string]any{"serving": man.Name, "model": man, "request_id": RequestID(r.Context())})
	}
}

// getFeedback reports engagement by model and position (admin).
func (s *Server) getFeedback(w http.ResponseWriter, r *http.Request) {
	if s.opts.Feedback == nil {
		writeError(w, r, http.StatusNotImplemented, "not_implemented", "feedback tracking is not enabled on this node")
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"feedback": s.opts.Feedback.Report(), "users_tracked": s.opts.Feedback.Users(),
		"request_id": RequestID(r.Context())})
}

func (s *Server) getSimilar(w http.ResponseWriter, r *http.Request) {
	item := r.PathValue("item")
	k, err := queryInt(r, "k", 10, 1, s.opts.MaxK)
	if err != nil {
		writeError(w, r, http.StatusBadRequest, "invalid_parameter", err.Error())
		return
	}
	explain, err := queryBool(r, "explain")
	if err != nil {
		writeError(w, r, http.StatusBadRequest, "invalid_parameter", err.Error())
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), s.opts.ReadTimeout)
	defer cancel()
	info := make([]features.ItemInfo, 1)
	// Only a healthy "no such item" is a 404: a store that did not answer
	// gets the fallback answer instead.
	if lvl := s.f.Items(ctx, []string{item}, info); !info[0].Exists && lvl == recommend.Healthy {
		writeError(w, r, http.StatusNotFound, "item_not_found", "no events or metadata for item "+clip(item))
		return
	}
	s.respond(w, r, recommendResponse{Item: item}, s.p.Similar(ctx, item, k, explain))
}

type rankRequest struct {
	User    string   `json:"user"`
	Items   []string `json:"items"`
	Explain bool     `json:"explain"`
}

func (s *Server) postRank(w http.ResponseWriter, r *http.Request) {
	if !s.requireJSON(w, r) {
		return
	}
	body, ok := s.readBody(w, r)
	if !ok {
		return
	}
	var req rankRequest
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&req); err != nil {
		writeError(w, r, http.StatusBadRequest, "invalid_body", "expected {\"user\":\"...\",\"items\":[...]}: "+err.Error())
		return
	}
	switch {
	case req.User == "":
		writeError(w, r, http.StatusBadRequest, "invalid_body", "missing field \"user\"")
		return
	case len(req.Items) == 0:
		writeError(w, r, http.StatusBadRequest, "invalid_body", "missing or empty field \"items\"")
		return
	case len(req.Items) > s.opts.MaxRankItems:
		writeError(w, r, http.StatusBadRequest, "invalid_body", "too many items to rank")
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), s.opts.ReadTimeout)
	defer cancel()
	res := s.p.Rank(ctx, req.User, req.Items, req.Explain)
	s.served(req.User, res)
	s.respond(w, r, recommendResponse{User: req.User}, res)
}

type featureValue struct {
	Value      any    `json:"value"`
	ComputedAt string `json:"computed_at,omitempty"`
	StaleMS    *int64 `json:"staleness_ms,omitempty"`
	Default    bool   `json:"default,omitempty"`
}

func (s *Server) getFeatures(w http.ResponseWriter, r *http.Request) {
	entity, id := r.PathValue("entity"), r.PathValue("id")
	if entity != features.EntityUser && entity != features.EntityItem && entity != features.EntityGlobal {
		writeError(w, r, http.StatusNotFound, "unknown_entity", "entity must be user, item or global, got "+clip(entity))
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), s.opts.ReadTimeout)
	defer cancel()
	vals, found, degradation := s.f.Values(ctx, entity, id)
	now := time.Now().UnixMilli()
	out := make(map[string]featureValue, len(vals.Features))
	for name, v := range vals.Features {
		fv := featureValue{Value: v.Value, Default: v.Default}
		if v.ComputedAt > 0 {
			fv.ComputedAt = time.UnixMilli(v.ComputedAt).UTC().Format(time.RFC3339Nano)
			stale := max(now-v.ComputedAt, 0)
			fv.StaleMS = &stale
		}
		out[name] = fv
	}
	resp := map[string]any{"entity": entity, "id": id, "found": found, "features": out, "degradation": degradation,
		"request_id": RequestID(r.Context())}
	if vals.ComputedAt > 0 {
		resp["computed_at"] = time.UnixMilli(vals.ComputedAt).UTC().Format(time.RFC3339Nano)
		resp["staleness_ms"] = max(now-vals.ComputedAt, 0)
	}
	writeJSON(w, http.StatusOK, resp)
}

// postTrain rebuilds the trained models from the log. With wait=true it
// answers when the new version serves (or training failed); otherwise it
// starts a run (or finds one going) and answers 202 at once. A run outlives
// a client that gives up waiting: its result is promoted anyway.
func (s *Server) postTrain(w http.ResponseWriter, r *http.Request) {
	t := s.opts.Trainer
	if t == nil {
		writeError(w, r, http.StatusNotImplemented, "not_implemented", "training is not enabled on this node")
		return
	}
	waiting := false
	if v := r.URL.Query().Get("wait"); v != "" {
		var err error
		if waiting, err = strconv.ParseBool(v); err != nil {
			writeError(w, r, http.StatusBadRequest, "invalid_parameter", "wait must be true or false")
			return
		}
	}
	if !waiting {
		status := "running"
		if t.Start() {
			status = "started"
		}
		writeJSON(w, http.StatusAccepted, map[string]any{"status": status, "request_id": RequestID(r.Context())})
		return
	}
	wait := s.opts.TrainWait
	if wait <= 0 {
		wait = DefaultTrainWait
	}
	// Training outlasts the server's write timeout: move this response's
	// deadline (a writer that cannot is left as it is).
	_ = http.NewResponseController(w).SetWriteDeadline(time.Now().Add(wait + 10*time.Second))
	ctx, cancel := context.WithTimeout(r.Context(), wait)
	defer cancel()
	rep, err := t.Run(ctx)
	switch {
	case errors.Is(err, train.ErrNoData):
		writeError(w, r, http.StatusConflict, "no_data", "the log holds no interactions to train on")
	case ctx.Err() != nil:
		writeError(w, r, http.StatusServiceUnavailable, "timeout", "stopped waiting; the training run goes on and is promoted when done")
	case err != nil:
		s.log.ErrorContext(r.Context(), "training failed", "err", err)
		writeError(w, r, http.StatusInternalServerError, "train_failed", "training failed; the serving model stays (see the server log)")
	default:
		writeJSON(w, http.StatusOK, map[string]any{"status": "done", "model": rep.Model, "report": rep, "request_id": RequestID(r.Context())})
	}
}

func (s *Server) deleteUser(w http.ResponseWriter, r *http.Request) {
	user := r.PathValue("user")
	if len(user) > event.MaxIDLen {
		writeError(w, r, http.StatusBadRequest, "invalid_parameter", "user id too long")
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), s.opts.IngestTimeout)
	defer cancel()
	redacted := -1
	var err error
	if p, ok := s.w.(Privacy); ok {
		redacted, err = p.Erase(ctx, user)
	} else {
		err = s.w.EraseUser(ctx, user)
	}
	s.audit(r, "user.erase", user, err, map[string]any{"redacted_records": redacted})
	if s.opts.Feedback != nil && (err == nil || errors.Is(err, ingest.ErrCannotRedact)) {
		s.opts.Feedback.Forget(user)
	}
	switch {
	case errors.Is(err, ingest.ErrCannotRedact):
		// The state is gone; the log cannot rewrite records. Say so.
		writeJSON(w, http.StatusOK, map[string]any{"user": user, "erased": true, "log_redacted": false,
			"request_id": RequestID(r.Context())})
		return
	case err != nil:
		// ErrApplyPending too: the tombstone is durable but the snapshot,
		// purge and redaction did not run. Only a retry finishes them.
		s.log.ErrorContext(r.Context(), "erase failed", "err", err)
		w.Header().Set("Retry-After", "1")
		writeError(w, r, http.StatusServiceUnavailable, "unavailable", "the erase did not complete; retry (erasure is idempotent)")
		return
	}
	body := map[string]any{"user": user, "erased": true, "request_id": RequestID(r.Context())}
	if redacted >= 0 {
		body["log_redacted"], body["redacted_records"] = true, redacted
	}
	writeJSON(w, http.StatusOK, body)
}

// Privacy is the consent and erasure side of the write path
// (ingest.Service implements it).
type Privacy interface {
	Erase(ctx context.Context, user string) (redacted int, err error)
	SetConsent(ctx context.Context, user string, c event.Consent) error
	Consent(user string) event.Consent
}

type consentBody struct {
	Personalization *bool `json:"personalization"`
	Storage         *bool `json:"storage"`
}

func (s *Server) putConsent(w http.ResponseWriter, r *http.Request) {
	p, ok := s.w.(Privacy)
	if !ok {
		writeError(w, r, http.StatusNotImplemented, "not_implemented", "this node cannot record consent")
		return
	}
	user := r.PathValue("user")
	if len(user) > event.MaxIDLen {
		writeError(w, r, http.StatusBadRequest, "invalid_parameter", "user id too long")
		return
	}
	if !s.requireJSON(w, r) {
		return
	}
	body, ok := s.readBody(w, r)
	if !ok {
		return
	}
	var cb consentBody
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&cb); err != nil || (cb.Personalization == nil && cb.Storage == nil) {
		writeError(w, r, http.StatusBadRequest, "invalid_body", `expected {"personalization":bool,"storage":bool} (either may be left out)`)
		return
	}
	c := p.Consent(user)
	if cb.Personalization != nil {
		c.Personalization = *cb.Personalization
	}
	if cb.Storage != nil {
		c.Storage = *cb.Storage
	}
	ctx, cancel := context.WithTimeout(r.Context(), s.opts.IngestTimeout)
	defer cancel()
	err := p.SetConsent(ctx, user, c)
	s.audit(r, "user.consent", user, err, map[string]any{"personalization": c.Personalization, "storage": c.Storage})
	if err != nil && !errors.Is(err, ingest.ErrApplyPending) {
		w.Header().Set("Retry-After", "1")
		writeError(w, r, http.StatusServiceUnavailable, "unavailable", "the consent could not be recorded; retry")
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"user": user, "consent": c, "request_id": RequestID(r.Context())})
}

func (s *Server) getConsent(w http.ResponseWriter, r *http.Request) {
	p, ok := s.w.(Privacy)
	if !ok {
		writeError(w, r, http.StatusNotImplemented, "not_implemented", "this node does not track consent")
		return
	}
	user := r.PathValue("user")
	writeJSON(w, http.StatusOK, map[string]any{"user": user, "consent": p.Consent(user), "request_id": RequestID(r.Context())})
}

// audit records an admin action when an audit log is configured; user ids
// appear only as keyed hashes.
func (s *Server) audit(r *http.Request, action, user string, err error, details map[string]any) {
	if s.opts.Audit == nil {
		return
	}
	e := audit.Entry{Action: action, Subject: s.opts.Audit.Subject(user), Request: RequestID(r.Context()), Outcome: "ok", Details: details}
	if k := KeyFrom(r.Context()); k != nil {
		e.Actor = k.ID
	}
	if err != nil {
		e.Outcome = err.Error()
	}
	if aerr := s.opts.Audit.Record(e); aerr != nil {
		s.log.ErrorContext(r.Context(), "audit log write failed", "action", action, "err", aerr)
	}
}

func (s *Server) healthz(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
}

func (s *Server) readyz(w http.ResponseWriter, r *http.Request) {
	if !s.w.Ready() {
		writeJSON(w, http.StatusServiceUnavailable, map[string]string{"status": "recovering"})
		return
	}
	body := map[string]any{"status": "ready"}
	if s.opts.Status != nil {
		for k, v := range s.opts.Status() {
			body[k] = v
		}
	}
	writeJSON(w, http.StatusOK, body)
}

func clip(s string) string {
	if len(s) > 64 {
		return s[:64] + "…"
	}
	return s
}
