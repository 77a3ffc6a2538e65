package guest

import (
	"context"
	"encoding/json"
	"fmt"
	"hash/fnv"
	"math"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/aimachine/aimachine/fakes/nvgpu"
)

// Token timing of the simulated inference servers (vLLM, Ollama).
//
// Decode is memory-bound: every step reads all weights once (plus the KV cache of the
// running sequences) and yields one token per running sequence, so
//
//	step  = (W + Σ kv_bytes(seq)) / (BW × 0.7)
//	TPOT  ≈ step           (per sequence)
//	tok/s ≈ batch / step   (the server: rises with concurrency until the KV budget caps the batch)
//
// W = weight bytes, BW = the card's memory bandwidth (gpuMemoryBandwidth), 0.7 = the share of
// peak bandwidth decode kernels reach in practice. Prefill is compute-bound and proportional
// to the prompt: 2 × params FLOPs per prompt token at half the card's dense FP16 tensor rate.
//
// Sequences are admitted while the KV cache ("GPU KV cache size: N tokens") holds their prompt
// plus max_tokens, and up to max_num_seqs (256, vLLM's default); the rest wait in a queue
// (their time to first token grows). Token timing is never scaled by the simulator's time
// scale: it is milliseconds, and it is what verify and bench measure.

// gpuSpec is what the timing model needs from a card.
type gpuSpec struct {
	BandwidthGBs float64 // peak memory bandwidth, GB/s
	FP16TFLOPS   float64 // dense FP16 tensor throughput (FP32 accumulate), TFLOPS
}

// defaultGPUSpec is used for a card the device table does not know (a mid-range one).
var defaultGPUSpec = gpuSpec{BandwidthGBs: 448, FP16TFLOPS: 47}

// gpuMemoryBandwidth returns the passed-through GPU's spec from the fakes/nvgpu device table
// (its row, or the row of its PCI device id); defaultGPUSpec for a device the table lacks.
func gpuMemoryBandwidth(d *gpuDev) gpuSpec {
	if d == nil {
		return defaultGPUSpec
	}
	card := d.card
	if card == nil {
		if c, ok := nvgpu.Lookup(d.device); ok {
			card = &c
		}
	}
	if card == nil {
		return defaultGPUSpec
	}
	return gpuSpec{BandwidthGBs: float64(card.BandwidthGBs), FP16TFLOPS: card.FP16TFLOPS}
}

// engine schedules sequences on one simulated GPU.
type engine struct {
	weightsB   float64 // bytes read per decode step
	params     float64 // parameters (prefill FLOPs)
	kvPerToken float64 // bytes of KV cache per token
	spec       gpuSpec
	kvTokens   int // KV cache capacity in tokens
	maxSeqs    int

	mu      sync.Mutex
	cond    *sync.Cond
	used    int // KV tokens held by running sequences
	running int
	ctxToks int // tokens in the running sequences' contexts
}

func newEngine(weightsB, params, kvPerToken float64, spec gpuSpec, kvTokens, maxSeqs int) *engine {
	e := &engine{weightsB: weightsB, params: params, kvPerToken: kvPerToken, spec: spec, kvTokens: kvTokens, maxSeqs: maxSeqs}
	e.cond = sync.NewCond(&e.mu)
	return e
}

// admit waits until the sequence fits (need KV tokens) or ctx ends.
func (e *engine) admit(ctx context.Context, need int) bool {
	if need > e.kvTokens {
		need = e.kvTokens
	}
	stop := context.AfterFunc(ctx, func() {
		e.mu.Lock()
		e.cond.Broadcast()
		e.mu.Unlock()
	})
	defer stop()
	e.mu.Lock()
	defer e.mu.Unlock()
	for e.used+need > e.kvTokens || e.running >= e.maxSeqs {
		if ctx.Err() != nil {
			return false
		}
		e.cond.Wait()
	}
	e.used += need
	e.running++
	return true
}

func (e *engine) release(need, ctxToks int) {
	if need > e.kvTokens {
		need = e.kvTokens
	}
	e.mu.Lock()
	e.used -= need
	e.running--
	e.ctxToks -= ctxToks
	e.cond.Broadcast()
	e.mu.Unlock()
}

// prefill is the compute-bound prompt phase.
func (e *engine) prefill(promptTokens int) time.Duration {
	flops := 2 * e.params * float64(promptTokens)
	return time.Duration(flops / (e.spec.FP16TFLOPS * 1e12 * 0.5) * float64(time.Second))
}

// step is one decode step at the current batch (memory-bound).
func (e *engine) step() time.Duration {
	e.mu.Lock()
	kv := float64(e.ctxToks) * e.kvPerToken
	e.mu.Unlock()
	return time.Duration((e.weightsB + kv) / (e.spec.BandwidthGBs * 1e9 * 0.7) * float64(time.Second))
}

func (e *engine) grow(n int) {
	e.mu.Lock()
	e.ctxToks += n
	e.mu.Unlock()
}

// replyWords is the deterministic text the simulated models answer with.
var replyWords = strings.Fields("Hello! I am a simulated model answering on the GPU. The quick brown fox jumps over the lazy dog, " +
	"and every token you read here was timed from the weights, the memory bandwidth and the batch. " +
	"Ask again and you get the same words in the same order, which keeps tests reproducible.")

// reply returns n tokens of deterministic text for a prompt; stop reports a natural end.
func reply(prompt string, maxTokens int, ignoreEOS bool) (toks []string, stop bool) {
	h := fnv.New32a()
	h.Write([]byte(prompt))
	start := int(h.Sum32() % 7)
	natural := len(replyWords) - start
	n := maxTokens
	if !ignoreEOS && natural < n {
		n, stop = natural, true
	}
	for i := 0; i < n; i++ {
		w := replyWords[(start+i)%len(replyWords)]
		if i > 0 {
			w = " " + w
		}
		toks = append(toks, w)
	}
	return toks, stop
}

// promptTokens estimates a prompt's tokens (~4 characters per token, plus the chat template).
func promptTokens(s string) int { return int(math.Ceil(float64(len(s))/4)) + 8 }

// generate runs one sequence: admission, prefill, then one token per decode step handed to emit.
// It returns false when the client went away.
func (e *engine) generate(ctx context.Context, prompt int, toks []string, emit func(i int, tok string) bool) bool {
	need := prompt + len(toks)
	if !e.admit(ctx, need) {
		return false
	}
	e.grow(prompt)
	grown := prompt
	defer func() { e.release(need, grown) }()
	if !sleepReal(ctx, e.prefill(prompt)) {
		return false
	}
	for i, t := range toks {
		if i > 0 && !sleepReal(ctx, e.step()) {
			return false
		}
		e.grow(1)
		grown++
		if !emit(i, t) {
			return false
		}
	}
	return true
}

func sleepReal(ctx context.Context, d time.Duration) bool {
	if d <= 0 {
		return ctx.Err() == nil
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}

type chatMessage struct {
	Role    string `json:"role"`
	Content string `json:"content"`
}

// openAIChat serves vLLM's /v1/chat/completions and /v1/completions (streamed or not).
func openAIChat(e *engine, served string, maxLen int, w http.ResponseWriter, r *http.Request) {
	var req struct {
		Model         string        `json:"model"`
		Messages      []chatMessage `json:"messages"`
		Prompt        any           `json:"prompt"`
		MaxTokens     *int          `json:"max_tokens"`
		MaxCompletion *int          `json:"max_completion_tokens"`
		Stream        bool          `json:"stream"`
		StreamOptions struct {
			IncludeUsage bool `json:"include_usage"`
		} `json:"stream_options"`
		IgnoreEOS bool `json:"ignore_eos"`
	}
	if err := json.NewDecoder(r.Body).Decode(&req); err != nil {
		writeJSON(w, 400, map[string]any{"error": map[string]any{"message": "Invalid JSON: " + err.Error(), "type": "BadRequestError", "param": nil, "code": 400}})
		return
	}
	if req.Model != served {
		writeJSON(w, 404, map[string]any{"error": map[string]any{"message": fmt.Sprintf("The model `%s` does not exist.", req.Model), "type": "NotFoundError", "param": "model", "code": 404}})
		return
	}
	chat := r.URL.Path == "/v1/chat/completions"
	var prompt string
	for _, m := range req.Messages {
		prompt += m.Content + "\n"
	}
	if !chat {
		prompt = fmt.Sprint(req.Prompt)
	}
	pt := promptTokens(prompt)
	maxTok := maxLen - pt
	if req.MaxTokens != nil {
		maxTok = *req.MaxTokens
	} else if req.MaxCompletion != nil {
		maxTok = *req.MaxCompletion
	}
	if pt+maxTok > maxLen {
		writeJSON(w, 400, map[string]any{"error": map[string]any{"message": fmt.Sprintf("This model's maximum context length is %d tokens. However, you requested %d tokens (%d in the messages, %d in the completion). Please reduce the length of the messages or completion.", maxLen, pt+maxTok, pt, maxTok), "type": "BadRequestError", "param": nil, "code": 400}})
		return
	}
	toks, stopped := reply(prompt, maxTok, req.IgnoreEOS)
	finish := "length"
	if stopped {
		finish = "stop"
	}
	id := fmt.Sprintf("chatcmpl-%08x", time.Now().UnixNano()&0xffffffff)
	object, chunkObject := "chat.completion", "chat.completion.chunk"
	if !chat {
		id, object, chunkObject = "cmpl-"+id[9:], "text_completion", "text_completion"
	}
	created := time.Now().Unix()
	usage := map[string]int{"prompt_tokens": pt, "completion_tokens": len(toks), "total_tokens": pt + len(toks)}
	if !req.Stream {
		if !e.generate(r.Context(), pt, toks, func(int, string) bool { return true }) {
			return
		}
		text := strings.Join(toks, "")
		choice := map[string]any{"index": 0, "logprobs": nil, "finish_reason": finish, "stop_reason": nil}
		if chat {
			choice["message"] = map[string]any{"role": "assistant", "content": text, "tool_calls": []any{}}
		} else {
			choice["text"] = text
		}
		writeJSON(w, 200, map[string]any{"id": id, "object": object, "created": created, "model": served, "choices": []any{choice}, "usage": usage})
		return
	}
	fl, _ := w.(http.Flusher)
	w.Header().Set("Content-Type", "text/event-stream; charset=utf-8")
	w.WriteHeader(200)
	send := func(v any) bool {
		b, _ := json.Marshal(v)
		if _, err := fmt.Fprintf(w, "data: %s\n\n", b); err != nil {
			return false
		}
		if fl != nil {
			fl.Flush()
		}
		return true
	}
	chunk := func(delta map[string]any, text string, fin any) map[string]any {
		c := map[string]any{"index": 0, "logprobs": nil, "finish_reason": fin}
		if chat {
			c["delta"] = delta
		} else {
			c["text"] = text
		}
		return map[string]any{"id": id, "object": chunkObject, "created": created, "model": served, "choices": []any{c}}
	}
	ok := e.generate(r.Context(), pt, toks, func(i int, tok string) bool {
		if i == 0 && chat && !send(chunk(map[string]any{"role": "assistant", "content": ""}, "", nil)) {
			return false
		}
		return send(chunk(map[string]any{"content": tok}, tok, nil))
	})
	if !ok {
		return
	}
	send(chunk(map[string]any{"content": ""}, "", finish))
	if req.StreamOptions.IncludeUsage {
		send(map[string]any{"id": id, "object": chunkObject, "created": created, "model": served, "choices": []any{}, "usage": usage})
	}
	fmt.Fprint(w, "data: [DONE]\n\n")
	if fl != nil {
		fl.Flush()
	}
}

// ollamaEngine is the model's engine: Q4_K_M weights (~4.5 bits a parameter), a 4096-token
// context, OLLAMA_NUM_PARALLEL=1 (requests queue); on the CPU, DDR5 bandwidth (~50 GB/s) and
// ~1 TFLOPS.
func (o *ollamaServer) engine(name string) *engine {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.engines == nil {
		o.engines = map[string]*engine{}
	}
	if e := o.engines[name]; e != nil {
		return e
	}
	m := ollamaLibrary[name]
	spec := gpuSpec{BandwidthGBs: 50, FP16TFLOPS: 1}
	if o.onGPU {
		spec = gpuMemoryBandwidth(o.s.nvidiaGPU())
	}
	e := newEngine(float64(m.size), float64(m.size)/0.5625, 32768, spec, 4096, 1)
	o.engines[name] = e
	return e
}

// ollamaChat serves /api/chat and /api/generate: NDJSON chunks (stream defaults to true),
// the last one with done, done_reason and the eval counters in nanoseconds.
func (o *ollamaServer) ollamaChat(name string, w http.ResponseWriter, r *http.Request, body []byte) {
	var req struct {
		Messages []chatMessage `json:"messages"`
		Prompt   string        `json:"prompt"`
		Stream   *bool         `json:"stream"`
		Options  struct {
			NumPredict *int `json:"num_predict"`
		} `json:"options"`
	}
	json.Unmarshal(body, &req)
	chat := r.URL.Path == "/api/chat"
	prompt := req.Prompt
	for _, m := range req.Messages {
		prompt += m.Content + "\n"
	}
	pt := promptTokens(prompt)
	maxTok := 128
	if req.Options.NumPredict != nil && *req.Options.NumPredict >= 0 {
		maxTok = *req.Options.NumPredict
	}
	if pt+maxTok > 4096 {
		maxTok = 4096 - pt
	}
	toks, stopped := reply(prompt, maxTok, false)
	reason := "length"
	if stopped {
		reason = "stop"
	}
	e := o.engine(name)
	start := time.Now()
	var firstTok time.Time
	stream := req.Stream == nil || *req.Stream
	fl, _ := w.(http.Flusher)
	now := func() string { return time.Now().UTC().Format(time.RFC3339Nano) }
	piece := func(tok string, done bool) map[string]any {
		m := map[string]any{"model": name, "created_at": now(), "done": done}
		if chat {
			m["message"] = map[string]any{"role": "assistant", "content": tok}
		} else {
			m["response"] = tok
		}
		return m
	}
	if stream {
		w.Header().Set("Content-Type", "application/x-ndjson")
		w.WriteHeader(200)
	}
	enc := json.NewEncoder(w)
	ok := e.generate(r.Context(), pt, toks, func(i int, tok string) bool {
		if i == 0 {
			firstTok = time.Now()
		}
		if !stream {
			return true
		}
		if err := enc.Encode(piece(tok, false)); err != nil {
			return false
		}
		if fl != nil {
			fl.Flush()
		}
		return true
	})
	if !ok {
		return
	}
	if firstTok.IsZero() {
		firstTok = time.Now()
	}
	last := piece("", true)
	if !stream {
		last = piece(strings.Join(toks, ""), true)
	}
	last["done_reason"] = reason
	last["total_duration"] = time.Since(start).Nanoseconds()
	last["load_duration"] = 0
	last["prompt_eval_count"] = pt
	last["prompt_eval_duration"] = firstTok.Sub(start).Nanoseconds()
	last["eval_count"] = len(toks)
	last["eval_duration"] = time.Since(firstTok).Nanoseconds()
	if !stream {
		writeJSON(w, 200, last)
		return
	}
	enc.Encode(last)
	if fl != nil {
		fl.Flush()
	}
}
