package pve

import (
	"bufio"
	"crypto/tls"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// apiError is an error answer of the API: the reason phrase is the first line of Msg.
type apiError struct {
	Code int
	// Msg is the full message as PVE dies with it (trailing newline included when PVE has one).
	Msg string
	// Errors is the per-parameter map of a 400 "Parameter verification failed.".
	Errors map[string]string
	// noBody: 401 answers carry no body.
	noBody bool
	// reset: close the connection without an answer (fault injection).
	reset bool
}

// Error is the message as a task log would show it (one line, no status code).
func (e *apiError) Error() string { return strings.TrimRight(e.Msg, "\n") }

func (e *apiError) reason() string {
	line, _, _ := strings.Cut(e.Msg, "\n")
	if line == "" {
		line = http.StatusText(e.Code)
	}
	return line
}

// errDie is a handler die (HTTP 500, message = text).
func errDie(format string, a ...any) *apiError {
	return &apiError{Code: 500, Msg: fmt.Sprintf(format, a...) + "\n"}
}

// errParam is a 400 "Parameter verification failed." with one parameter error.
func errParam(name, text string) *apiError {
	return &apiError{Code: 400, Msg: "Parameter verification failed.\n", Errors: map[string]string{name: text}}
}

func errParams(m map[string]string) *apiError {
	return &apiError{Code: 400, Msg: "Parameter verification failed.\n", Errors: m}
}

func errPerm(path, priv string) *apiError {
	return &apiError{Code: 403, Msg: fmt.Sprintf("Permission check failed (%s, %s)\n", path, priv)}
}

func errAuth(msg string) *apiError {
	return &apiError{Code: 401, Msg: msg + "\n", noBody: true}
}

func errNotImplemented(method, relPath string) *apiError {
	return &apiError{Code: 501, Msg: fmt.Sprintf("Method '%s %s' not implemented\n", method, relPath)}
}

// errorBody is the JSON body PVE sends with an error status.
func (s *Server) errorBody(e *apiError) []byte {
	if e.noBody {
		return nil
	}
	m := map[string]any{"data": nil}
	if e.Errors != nil {
		m["errors"] = e.Errors
	}
	if s.versionAtLeast(8, 3) {
		m["message"] = e.Msg
	}
	b, _ := json.Marshal(m)
	return b
}

// writeError writes an error answer with PVE's reason phrase in the status line. Go's server
// cannot set a reason phrase, so the connection is hijacked and the answer written by hand;
// the connection is closed afterwards (pveproxy drops keep-alive for every status >= 400).
func (s *Server) writeError(w http.ResponseWriter, e *apiError) {
	body := s.errorBody(e)
	hj, ok := w.(http.Hijacker)
	if !ok {
		// Not hijackable (HTTP/2 or a recorder): best effort with Go's own phrase.
		w.Header().Set("Server", serverHeader)
		w.Header().Set("X-Pve-Reason", e.reason())
		if body != nil {
			w.Header().Set("Content-Type", "application/json;charset=UTF-8")
		}
		w.WriteHeader(e.Code)
		_, _ = w.Write(body)
		return
	}
	conn, rw, err := hj.Hijack()
	if err != nil {
		return
	}
	defer conn.Close()
	if e.reset {
		nc := conn
		if tc, ok := nc.(*tls.Conn); ok {
			nc = tc.NetConn()
		}
		if tcp, ok := nc.(*net.TCPConn); ok {
			_ = tcp.SetLinger(0) // RST: "connection reset by peer"
		}
		return
	}
	reason := e.reason()
	if strings.ContainsRune(reason, '\r') {
		e = &apiError{Code: 400, Msg: "Bad Request"}
		reason, body = "Bad Request", nil
	}
	bw := bufio.NewWriter(conn)
	if rw != nil && rw.Writer != nil {
		bw = rw.Writer
	}
	fmt.Fprintf(bw, "HTTP/1.1 %d %s\r\n", e.Code, reason)
	fmt.Fprintf(bw, "Cache-Control: max-age=0\r\n")
	fmt.Fprintf(bw, "Connection: close\r\n")
	fmt.Fprintf(bw, "Date: %s\r\n", time.Now().UTC().Format(http.TimeFormat))
	fmt.Fprintf(bw, "Pragma: no-cache\r\n")
	fmt.Fprintf(bw, "Server: %s\r\n", serverHeader)
	if body != nil {
		fmt.Fprintf(bw, "Content-Length: %s\r\n", strconv.Itoa(len(body)))
		fmt.Fprintf(bw, "Content-Type: application/json;charset=UTF-8\r\n")
	} else {
		fmt.Fprintf(bw, "Content-Length: 0\r\n")
	}
	fmt.Fprintf(bw, "Expires: %s\r\n\r\n", time.Now().UTC().Format(http.TimeFormat))
	_, _ = bw.Write(body)
	_ = bw.Flush()
}

// writeData writes a success envelope {"data": v} (+ extra keys such as "total").
func (s *Server) writeData(w http.ResponseWriter, v any, extra map[string]any) {
	m := map[string]any{"data": v}
	for k, x := range extra {
		m[k] = x
	}
	b, err := json.Marshal(m)
	if err != nil {
		s.writeError(w, errDie("internal error: %v", err))
		return
	}
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
