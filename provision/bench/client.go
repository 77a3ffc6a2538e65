// Package bench measures the LLM servers of a deployed VM from the machine running aimachine:
// one timed chat completion (what verify records) and a bounded load test at several
// concurrency levels (aimachine bench), with the metric names `vllm bench serve` prints.
//
// Every request travels through a caller-supplied dial function (the SSH connection to the
// guest, a direct-tcpip channel per connection), so the guest's private address is never
// dialled from here. API keys go in the Authorization header only and never appear in a
// result, an error or a report.
package bench

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"time"
)

// Server kinds.
const (
	VLLM   = "vllm"
	Ollama = "ollama"
)

// Target is one model on one server, as the guest sees it.
type Target struct {
	Server string // VLLM or Ollama
	Model  string
	Addr   string // host:port on the guest's side of the SSH connection
	APIKey string // vLLM's key (sent as a bearer token; never printed)
}

// Name is "vllm Qwen/…" / "ollama qwen2.5:0.5b".
func (t Target) Name() string { return t.Server + " " + t.Model }

// DialFunc opens a connection to addr on the guest's side.
type DialFunc func(ctx context.Context, addr string) (net.Conn, error)

// NewHTTPClient is an HTTP client whose every connection goes through dial (no proxy from the
// environment, no direct dial).
func NewHTTPClient(dial DialFunc) *http.Client {
	tr := &http.Transport{
		Proxy: nil,
		DialContext: func(ctx context.Context, _, addr string) (net.Conn, error) {
			return dial(ctx, addr)
		},
		MaxIdleConnsPerHost:   64,
		IdleConnTimeout:       30 * time.Second,
		ResponseHeaderTimeout: 5 * time.Minute,
		DisableCompression:    true,
	}
	return &http.Client{Transport: tr}
}

// Sample is one measured completion.
type Sample struct {
	Start        time.Time
	TTFT         time.Duration   // request sent → first generated text
	ITL          []time.Duration // gaps between later chunks carrying text
	Latency      time.Duration   // request sent → last byte
	PromptTokens int
	OutputTokens int
	Text         string
}

// TPOT is the time per output token after the first.
func (s Sample) TPOT() time.Duration {
	if s.OutputTokens <= 1 {
		return 0
	}
	return (s.Latency - s.TTFT) / time.Duration(s.OutputTokens-1)
}

// TokensPerSecond is the decode rate of this request (output tokens after the first over the
// time after the first token).
func (s Sample) TokensPerSecond() float64 {
	d := (s.Latency - s.TTFT).Seconds()
	if s.OutputTokens <= 1 || d <= 0 {
		return 0
	}
	return float64(s.OutputTokens-1) / d
}

// Request is what to ask.
type Request struct {
	Prompt    string
	MaxTokens int
	// IgnoreEOS asks vLLM for exactly MaxTokens tokens (what `vllm bench serve` does).
	IgnoreEOS bool
}

// HTTPError is a non-2xx answer.
type HTTPError struct {
	Code int
	Body string
}

func (e *HTTPError) Error() string {
	return fmt.Sprintf("HTTP %d: %s", e.Code, strings.TrimSpace(shorten(e.Body, 300)))
}

// Complete sends one streamed chat completion at temperature 0 and times it.
func Complete(ctx context.Context, c *http.Client, t Target, r Request) (Sample, error) {
	switch t.Server {
	case VLLM:
		return completeOpenAI(ctx, c, t, r)
	case Ollama:
		return completeOllama(ctx, c, t, r)
	}
	return Sample{}, fmt.Errorf("unknown server %q", t.Server)
}

func completeOpenAI(ctx context.Context, c *http.Client, t Target, r Request) (Sample, error) {
	body := map[string]any{
		"model":          t.Model,
		"messages":       []map[string]string{{"role": "user", "content": r.Prompt}},
		"max_tokens":     r.MaxTokens,
		"temperature":    0,
		"stream":         true,
		"stream_options": map[string]bool{"include_usage": true},
	}
	if r.IgnoreEOS {
		body["ignore_eos"] = true
	}
	resp, start, err := post(ctx, c, "http://"+t.Addr+"/v1/chat/completions", t.APIKey, body)
	s := Sample{Start: start}
	if err != nil {
		return s, err
	}
	defer resp.Body.Close()
	var text strings.Builder
	var last time.Time
	chunks := 0
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		data, ok := strings.CutPrefix(line, "data: ")
		if !ok {
			continue
		}
		if data == "[DONE]" {
			break
		}
		var ch struct {
			Choices []struct {
				Delta struct {
					Content string `json:"content"`
				} `json:"delta"`
			} `json:"choices"`
			Usage *struct {
				PromptTokens     int `json:"prompt_tokens"`
				CompletionTokens int `json:"completion_tokens"`
			} `json:"usage"`
		}
		if err := json.Unmarshal([]byte(data), &ch); err != nil {
			return s, fmt.Errorf("vLLM sent an unreadable stream chunk: %w", err)
		}
		now := time.Now()
		if ch.Usage != nil {
			s.PromptTokens, s.OutputTokens = ch.Usage.PromptTokens, ch.Usage.CompletionTokens
		}
		for _, c := range ch.Choices {
			if c.Delta.Content == "" {
				continue
			}
			if chunks == 0 {
				s.TTFT = now.Sub(start)
			} else {
				s.ITL = append(s.ITL, now.Sub(last))
			}
			last = now
			chunks++
			text.WriteString(c.Delta.Content)
		}
	}
	if err := sc.Err(); err != nil {
		return s, fmt.Errorf("read the stream: %w", err)
	}
	s.Latency = time.Since(start)
	s.Text = text.String()
	if s.OutputTokens == 0 {
		s.OutputTokens = chunks
	}
	return s, nil
}

func completeOllama(ctx context.Context, c *http.Client, t Target, r Request) (Sample, error) {
	body := map[string]any{
		"model":    t.Model,
		"messages": []map[string]string{{"role": "user", "content": r.Prompt}},
		"stream":   true,
		"options":  map[string]any{"temperature": 0, "num_predict": r.MaxTokens},
	}
	resp, start, err := post(ctx, c, "http://"+t.Addr+"/api/chat", "", body)
	s := Sample{Start: start}
	if err != nil {
		return s, err
	}
	defer resp.Body.Close()
	var text strings.Builder
	var last time.Time
	chunks := 0
	dec := json.NewDecoder(resp.Body)
	for {
		var ch struct {
			Message struct {
				Content string `json:"content"`
			} `json:"message"`
			Done            bool   `json:"done"`
			Error           string `json:"error"`
			PromptEvalCount int    `json:"prompt_eval_count"`
			EvalCount       int    `json:"eval_count"`
		}
		if err := dec.Decode(&ch); err != nil {
			if errors.Is(err, io.EOF) {
				break
			}
			return s, fmt.Errorf("read Ollama's stream: %w", err)
		}
		if ch.Error != "" {
			return s, errors.New("ollama: " + ch.Error)
		}
		now := time.Now()
		if ch.Message.Content != "" {
			if chunks == 0 {
				s.TTFT = now.Sub(start)
			} else {
				s.ITL = append(s.ITL, now.Sub(last))
			}
			last = now
			chunks++
			text.WriteString(ch.Message.Content)
		}
		if ch.Done {
			s.PromptTokens, s.OutputTokens = ch.PromptEvalCount, ch.EvalCount
			break
		}
	}
	s.Latency = time.Since(start)
	s.Text = text.String()
	if s.OutputTokens == 0 {
		s.OutputTokens = chunks
	}
	return s, nil
}

func post(ctx context.Context, c *http.Client, url, key string, body any) (*http.Response, time.Time, error) {
	b, _ := json.Marshal(body)
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(b))
	if err != nil {
		return nil, time.Time{}, err
	}
	req.Header.Set("Content-Type", "application/json")
	if key != "" {
		req.Header.Set("Authorization", "Bearer "+key)
	}
	start := time.Now()
	resp, err := c.Do(req)
	if err != nil {
		return nil, start, err
	}
	if resp.StatusCode/100 != 2 {
		msg, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
		resp.Body.Close()
		return nil, start, &HTTPError{Code: resp.StatusCode, Body: string(msg)}
	}
	return resp, start, nil
}

// Unauthenticated asks vLLM for a completion without the key and returns the HTTP status
// (401 proves the key is enforced).
func Unauthenticated(ctx context.Context, c *http.Client, t Target) (int, error) {
	_, _, err := post(ctx, c, "http://"+t.Addr+"/v1/chat/completions", "", map[string]any{
		"model": t.Model, "messages": []map[string]string{{"role": "user", "content": "hi"}}, "max_tokens": 1, "temperature": 0})
	var he *HTTPError
	if errors.As(err, &he) {
		return he.Code, nil
	}
	if err != nil {
		return 0, err
	}
	return http.StatusOK, nil
}

func shorten(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}
