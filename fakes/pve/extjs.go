package pve

import (
	"bytes"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"time"
)

// serveExtJS answers /api2/extjs/..., the format the web UI uses (pve-manager www/manager6 and
// proxmox-widget-toolkit call '/api2/extjs/...'). The request is handled as under /api2/json and
// the result goes through pve-http-server src/PVE/APIServer/Formatter/Standard.pm
// prepare_response_data('extjs'): {data, success: 1[, total]} on success; on an error HTTP 200 with
// {data, success: 0, message, status[, errors]} ("HACK: extjs wants 'success' property instead of
// useful HTTP status codes"); parameter errors also make success 0. Authentication failures are
// answered before any formatter runs (AnyEvent.pm unshift_read_header: plain 401 with the reason),
// so they pass through unchanged.
func (s *Server) serveExtJS(w http.ResponseWriter, r *http.Request) {
	r2 := r.Clone(r.Context())
	r2.URL.Path = "/api2/json" + strings.TrimPrefix(r.URL.Path, "/api2/extjs")
	r2.URL.RawPath = ""
	r2.RequestURI = ""
	rec := httptest.NewRecorder()
	s.serveAPI(rec, r2)
	res := rec.Result()
	body := rec.Body.Bytes()
	reason := res.Header.Get("X-Pve-Reason")
	if res.StatusCode >= 400 && len(bytes.TrimSpace(body)) == 0 {
		s.writeError(w, &apiError{Code: res.StatusCode, Msg: reason + "\n", noBody: true})
		return
	}
	var in map[string]json.RawMessage
	if err := json.Unmarshal(body, &in); err != nil {
		s.writeError(w, errDie("internal error: %v", err))
		return
	}
	out := map[string]any{"data": in["data"], "success": 1}
	if out["data"] == nil {
		out["data"] = nil
	}
	if e, ok := in["errors"]; ok {
		out["errors"] = e
		out["success"] = 0
	}
	if res.StatusCode >= 400 {
		msg := reason + "\n"
		if m, ok := in["message"]; ok {
			_ = json.Unmarshal(m, &msg)
		}
		out["success"], out["message"], out["status"] = 0, msg, res.StatusCode
	} else if t, ok := in["total"]; ok && out["success"] == 1 {
		out["total"] = t
	}
	b, _ := json.Marshal(out)
	h := w.Header()
	h.Set("Server", serverHeader)
	h.Set("Content-Type", "application/json;charset=UTF-8")
	h.Set("Cache-Control", "max-age=0")
	h.Set("Pragma", "no-cache")
	h.Set("Expires", time.Now().UTC().Format(http.TimeFormat))
	h.Set("Content-Length", strconv.Itoa(len(b)))
	w.WriteHeader(200)
	_, _ = w.Write(b)
}
