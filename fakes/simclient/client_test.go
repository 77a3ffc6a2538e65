package simclient

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"testing"
)

func TestDoDecodesAndReportsErrors(t *testing.T) {
	ts := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/_sim/wrapped":
			w.Write([]byte(`{"data":{"n":1}}`))
		case "/_sim/bare":
			w.Write([]byte(`{"n":2}`))
		case "/_sim/jsonerr":
			w.WriteHeader(400)
			w.Write([]byte(`{"error":"unknown fault kind \"x\""}`))
		default:
			http.Error(w, "unknown control call "+r.Method+" "+r.URL.Path, http.StatusNotFound)
		}
	}))
	defer ts.Close()
	c, err := NewWithHTTPClient(ts.URL, ts.Client())
	if err != nil {
		t.Fatal(err)
	}
	if c.URL() != ts.URL+"/_sim/" {
		t.Errorf("URL = %q, want the /_sim/ base", c.URL())
	}
	ctx := context.Background()
	var out struct{ N int }
	if err := c.Do(ctx, "GET", "wrapped", nil, &out); err != nil || out.N != 1 {
		t.Errorf("wrapped: %v %+v", err, out)
	}
	if err := c.Do(ctx, "GET", "bare", nil, &out); err != nil || out.N != 2 {
		t.Errorf("bare: %v %+v", err, out)
	}
	var ce *Error
	if err := c.Do(ctx, "POST", "jsonerr", map[string]int{"a": 1}, nil); !errors.As(err, &ce) || ce.Status != 400 || ce.Message != `unknown fault kind "x"` {
		t.Errorf("json error = %v", err)
	}
	if err := c.Do(ctx, "GET", "nope", nil, nil); !errors.As(err, &ce) || ce.Status != 404 || ce.Message != "unknown control call GET /_sim/nope" {
		t.Errorf("text error = %v", err)
	}
	if _, err := New(ts.URL, []byte("not a pem")); err == nil {
		t.Error("New accepted a CA without a certificate")
	}
}
