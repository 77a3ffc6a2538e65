// Package tasks holds the guest-phase tasks (NVIDIA open driver, CUDA, vLLM, Ollama, the models
// they serve: models.go), the
// batched facts script they observe through, the read-only GPU/service verification, and the
// parsers of the guest's command outputs (shared/reference/guest.md).
package tasks
