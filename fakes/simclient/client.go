package simclient

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"
)

// Client talks to one simulator's control API.
type Client struct {
	base *url.URL // ends in "/_sim/"
	hc   *http.Client
}

// New returns a client for controlURL ("https://127.0.0.1:PORT/_sim/") trusting caPEM.
func New(controlURL string, caPEM []byte) (*Client, error) {
	cfg, err := TLSConfig(caPEM)
	if err != nil {
		return nil, err
	}
	hc := &http.Client{
		Timeout:   30 * time.Second,
		Transport: &http.Transport{TLSClientConfig: cfg, Proxy: nil, MaxIdleConnsPerHost: 2},
	}
	return NewWithHTTPClient(controlURL, hc)
}

// NewWithHTTPClient returns a client using hc as is.
func NewWithHTTPClient(controlURL string, hc *http.Client) (*Client, error) {
	u, err := url.Parse(controlURL)
	if err != nil {
		return nil, fmt.Errorf("simulator control URL %q: %w", controlURL, err)
	}
	if !strings.HasSuffix(u.Path, "/") {
		u.Path += "/"
	}
	if !strings.HasSuffix(u.Path, "/_sim/") {
		u.Path += "_sim/"
	}
	return &Client{base: u, hc: hc}, nil
}

// TLSConfig trusts caPEM, HTTP/1.1 only (like pveproxy).
func TLSConfig(caPEM []byte) (*tls.Config, error) {
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(caPEM) {
		return nil, errors.New("simulator CA: no certificate in PEM")
	}
	return &tls.Config{RootCAs: pool, NextProtos: []string{"http/1.1"}, MinVersion: tls.VersionTLS12}, nil
}

// URL returns the control API's base URL.
func (c *Client) URL() string { return c.base.String() }

// Error is a non-2xx answer of the control API.
type Error struct {
	Method, Path string
	Status       int
	Message      string
}

func (e *Error) Error() string {
	return fmt.Sprintf("simulator control %s %s: %d %s", e.Method, e.Path, e.Status, e.Message)
}

// Do sends method to path (relative to /_sim/, e.g. "faults") with in as a JSON body (nil =
// none) and decodes a JSON answer into out (nil = ignore). Answers may be bare JSON or wrapped
// in {"data": ...}; both decode.
func (c *Client) Do(ctx context.Context, method, path string, in, out any) error {
	ref, err := url.Parse(strings.TrimPrefix(path, "/"))
	if err != nil {
		return fmt.Errorf("simulator control path %q: %w", path, err)
	}
	u := c.base.ResolveReference(ref)
	var body io.Reader
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return fmt.Errorf("simulator control %s %s: %w", method, path, err)
		}
		body = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, u.String(), body)
	if err != nil {
		return err
	}
	req.Header.Set("Accept", "application/json")
	if in != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		return fmt.Errorf("simulator control %s %s: %w", method, u.Path, err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, 16<<20))
	if err != nil {
		return fmt.Errorf("simulator control %s %s: read answer: %w", method, u.Path, err)
	}
	if resp.StatusCode/100 != 2 {
		return &Error{Method: method, Path: u.Path, Status: resp.StatusCode, Message: errorText(resp, data)}
	}
	if out == nil || len(bytes.TrimSpace(data)) == 0 {
		return nil
	}
	if err := decode(data, out); err != nil {
		return fmt.Errorf("simulator control %s %s: decode answer: %w", method, u.Path, err)
	}
	return nil
}

// decode accepts {"data": X} or X.
func decode(data []byte, out any) error {
	var env map[string]json.RawMessage
	if json.Unmarshal(data, &env) == nil && len(env) >= 1 {
		if d, ok := env["data"]; ok && onlyEnvelopeKeys(env) {
			return json.Unmarshal(d, out)
		}
	}
	return json.Unmarshal(data, out)
}

func onlyEnvelopeKeys(m map[string]json.RawMessage) bool {
	for k := range m {
		switch k {
		case "data", "message", "errors", "total":
		default:
			return false
		}
	}
	return true
}

func errorText(resp *http.Response, body []byte) string {
	var e struct {
		Error   string `json:"error"`
		Message string `json:"message"`
	}
	if json.Unmarshal(body, &e) == nil {
		if e.Error != "" {
			return e.Error
		}
		if e.Message != "" {
			return strings.TrimSpace(e.Message)
		}
	}
	if t := strings.TrimSpace(string(body)); t != "" {
		if len(t) > 500 {
			t = t[:500] + "..."
		}
		return t
	}
	return strings.TrimSpace(strings.TrimPrefix(resp.Status, fmt.Sprint(resp.StatusCode)))
}
