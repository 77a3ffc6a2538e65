Feature: Models on disk before the services start
  As the administrator of the LLM VM
  I want the model downloaded and checked before vLLM starts
  So that a gated, missing or oversized model is a clear error, not a service that looks hung
  or restarts forever.

  The model is downloaded with the Hugging Face CLI (hf download) from the vLLM venv into
  services.vllm.models_dir, with the token read from the variable services.vllm.hf_token_env
  names (written to the VM with mode 0600, never on a command line). Its weights are then
  compared with gpu_memory_utilization × the GPU's memory before vLLM may start.
  Simulator only: the simulated Hugging Face Hub refuses its gated repos without a token, as
  the real one does, and a real run should not download tens of gigabytes to prove a refusal.

  @fake
  Scenario: A gated model fails clearly without a token, then is served with one
    Given the catalog gives vLLM the gated model "meta-llama/Llama-3.2-1B-Instruct"
    And no Hugging Face token is configured
    When the administrator deploys "vm-llm-aimachine"
    Then the deployment stops at the task "download meta-llama/Llama-3.2-1B-Instruct into /opt/models"
    And the error says "Access denied. Model 'meta-llama/Llama-3.2-1B-Instruct' requires approval."
    And the hint names "services.vllm.hf_token_env"
    And vLLM was never started
    When a Hugging Face token is exported in the variable the catalog names and the deployment runs again
    Then the deployment succeeds
    And vLLM answers a chat completion on the GPU
    And the token appears in no output, report or guest command line

  @fake
  Scenario: A model too large for the card stops before it is downloaded
    Given the catalog gives vLLM the model "Qwen/Qwen2.5-14B-Instruct"
    When the administrator deploys "vm-llm-aimachine"
    Then the deployment stops at the task "check Qwen/Qwen2.5-14B-Instruct fits vLLM's share of the GPU memory"
    And the error says "weights 27.4 GiB + ~1 GiB overhead against 0.60 × 15.9 GiB = 9.6 GiB"
    And the error says "sizes from the Hub, before the download"
    And the hint names "smaller or quantised model"
    And the hint names "max_model_len"
    And the model was never downloaded
    And vLLM was never started
