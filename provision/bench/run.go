package bench

import (
	"context"
	"errors"
	"math"
	"net/http"
	"sort"
	"strconv"
	"sync"
	"time"
)

// Config is one load test.
type Config struct {
	Targets     []Target
	Concurrency []int         // closed-loop clients per level (default 1, 4, 16)
	Duration    time.Duration // per target and level (default 30s)
	// MaxRequests bounds the requests started per target and level (default 1000).
	MaxRequests int
	Request     Request // default: a fixed prompt, 128 tokens, ignore_eos on vLLM
	Client      *http.Client
	// Progress, when set, hears about each level starting and ending.
	Progress func(msg string)
}

func (c *Config) defaults() {
	if len(c.Concurrency) == 0 {
		c.Concurrency = []int{1, 4, 16}
	}
	if c.Duration <= 0 {
		c.Duration = 30 * time.Second
	}
	if c.MaxRequests <= 0 {
		c.MaxRequests = 1000
	}
	if c.Request.Prompt == "" {
		c.Request.Prompt = "Explain in a few sentences what a GPU does when it serves a large language model."
	}
	if c.Request.MaxTokens <= 0 {
		c.Request.MaxTokens = 128
	}
}

// Level is one target at one concurrency, named as `vllm bench serve` names its results
// (JSON keys of --save-result; the printed labels are in Labels).
type Level struct {
	Server         string  `json:"backend"`
	Model          string  `json:"model_id"`
	MaxConcurrency int     `json:"max_concurrency"`
	Duration       float64 `json:"duration"`
	Completed      int     `json:"completed"`
	Failed         int     `json:"failed"`
	TotalInput     int     `json:"total_input_tokens"`
	TotalOutput    int     `json:"total_output_tokens"`
	RequestThrough float64 `json:"request_throughput"`
	OutputThrough  float64 `json:"output_throughput"`
	TotalThrough   float64 `json:"total_token_throughput"`

	MeanTTFT   float64 `json:"mean_ttft_ms"`
	MedianTTFT float64 `json:"median_ttft_ms"`
	P50TTFT    float64 `json:"p50_ttft_ms"`
	P95TTFT    float64 `json:"p95_ttft_ms"`
	P99TTFT    float64 `json:"p99_ttft_ms"`
	MeanTPOT   float64 `json:"mean_tpot_ms"`
	MedianTPOT float64 `json:"median_tpot_ms"`
	P50TPOT    float64 `json:"p50_tpot_ms"`
	P95TPOT    float64 `json:"p95_tpot_ms"`
	P99TPOT    float64 `json:"p99_tpot_ms"`
	MeanITL    float64 `json:"mean_itl_ms"`
	MedianITL  float64 `json:"median_itl_ms"`
	P50ITL     float64 `json:"p50_itl_ms"`
	P95ITL     float64 `json:"p95_itl_ms"`
	P99ITL     float64 `json:"p99_itl_ms"`

	Errors []string `json:"errors,omitempty"` // distinct error messages (at most 5)
}

// Result is a whole run.
type Result struct {
	Started     time.Time     `json:"started"`
	Duration    time.Duration `json:"-"`
	PerLevel    time.Duration `json:"-"`
	DurationS   float64       `json:"duration_per_level_s"`
	MaxTokens   int           `json:"max_tokens"`
	MaxRequests int           `json:"max_requests_per_level"`
	Interrupted bool          `json:"interrupted,omitempty"`
	Levels      []Level       `json:"results"`
}

// Run measures every target at every concurrency, one level after the other. It stops
// cleanly when ctx ends (in-flight requests are cancelled; the levels measured so far are
// returned with Interrupted set).
func Run(ctx context.Context, cfg Config) (Result, error) {
	cfg.defaults()
	res := Result{Started: time.Now().UTC(), PerLevel: cfg.Duration, DurationS: cfg.Duration.Seconds(), MaxTokens: cfg.Request.MaxTokens, MaxRequests: cfg.MaxRequests}
	if cfg.Client == nil {
		return res, errors.New("bench: no HTTP client")
	}
	for _, t := range cfg.Targets {
		for _, n := range cfg.Concurrency {
			if ctx.Err() != nil {
				res.Interrupted = true
				return res, nil
			}
			if cfg.Progress != nil {
				cfg.Progress("measuring " + t.Name() + " at concurrency " + itoa(n))
			}
			lv := runLevel(ctx, cfg, t, n)
			if ctx.Err() != nil {
				res.Interrupted = true
				if lv.Completed == 0 {
					return res, nil
				}
			}
			res.Levels = append(res.Levels, lv)
		}
	}
	return res, nil
}

// drainLimit bounds how long requests in flight at the end of a level may still run.
func drainLimit(d time.Duration) time.Duration {
	if d < time.Minute {
		return time.Minute
	}
	return d
}

// runLevel keeps n clients busy for cfg.Duration (no request starts after it), then lets the
// requests in flight finish (bounded by drainLimit), like a closed-loop `vllm bench serve
// --max-concurrency n`. Throughput is counted over the whole time, drain included.
func runLevel(ctx context.Context, cfg Config, t Target, n int) Level {
	lctx, cancel := context.WithTimeout(ctx, cfg.Duration)
	defer cancel()
	rctx, rcancel := context.WithTimeout(ctx, cfg.Duration+drainLimit(cfg.Duration))
	defer rcancel()
	req := cfg.Request
	req.IgnoreEOS = t.Server == VLLM
	var (
		mu      sync.Mutex
		samples []Sample
		failed  int
		errs    = map[string]bool{}
		started int
	)
	take := func() bool {
		mu.Lock()
		defer mu.Unlock()
		if started >= cfg.MaxRequests {
			return false
		}
		started++
		return true
	}
	begin := time.Now()
	var wg sync.WaitGroup
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for lctx.Err() == nil && take() {
				s, err := Complete(rctx, cfg.Client, t, req)
				if ctx.Err() != nil {
					return // interrupted: not counted
				}
				mu.Lock()
				if err != nil {
					failed++
					if len(errs) < 5 {
						errs[err.Error()] = true
					}
				} else {
					samples = append(samples, s)
				}
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	elapsed := time.Since(begin).Seconds()
	lv := Level{Server: t.Server, Model: t.Model, MaxConcurrency: n, Duration: elapsed, Completed: len(samples), Failed: failed}
	for e := range errs {
		lv.Errors = append(lv.Errors, e)
	}
	sort.Strings(lv.Errors)
	var ttft, tpot, itl []float64
	for _, s := range samples {
		lv.TotalInput += s.PromptTokens
		lv.TotalOutput += s.OutputTokens
		ttft = append(ttft, ms(s.TTFT))
		if s.OutputTokens > 1 {
			tpot = append(tpot, ms(s.TPOT()))
		}
		for _, d := range s.ITL {
			itl = append(itl, ms(d))
		}
	}
	if elapsed > 0 {
		lv.RequestThrough = float64(lv.Completed) / elapsed
		lv.OutputThrough = float64(lv.TotalOutput) / elapsed
		lv.TotalThrough = float64(lv.TotalInput+lv.TotalOutput) / elapsed
	}
	lv.MeanTTFT, lv.MedianTTFT, lv.P50TTFT, lv.P95TTFT, lv.P99TTFT = stats(ttft)
	lv.MeanTPOT, lv.MedianTPOT, lv.P50TPOT, lv.P95TPOT, lv.P99TPOT = stats(tpot)
	lv.MeanITL, lv.MedianITL, lv.P50ITL, lv.P95ITL, lv.P99ITL = stats(itl)
	return lv
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

// stats: mean, median, p50, p95, p99 (linear interpolation, as numpy.percentile).
func stats(xs []float64) (mean, median, p50, p95, p99 float64) {
	if len(xs) == 0 {
		return
	}
	s := append([]float64(nil), xs...)
	sort.Float64s(s)
	sum := 0.0
	for _, x := range s {
		sum += x
	}
	mean = sum / float64(len(s))
	p50, p95, p99 = Percentile(s, 50), Percentile(s, 95), Percentile(s, 99)
	return mean, p50, p50, p95, p99
}

// Percentile of sorted values, linear between the closest ranks (numpy's default).
func Percentile(sorted []float64, p float64) float64 {
	if len(sorted) == 0 {
		return 0
	}
	r := p / 100 * float64(len(sorted)-1)
	lo := int(math.Floor(r))
	hi := int(math.Ceil(r))
	if hi >= len(sorted) {
		hi = len(sorted) - 1
	}
	return sorted[lo] + (sorted[hi]-sorted[lo])*(r-float64(lo))
}

func itoa(n int) string { return strconv.Itoa(n) }
