Feature: GPU-passthrough Ubuntu 24.04 VM for AI/LLM workloads (vm-llm-aimachine)
  As the administrator of a Proxmox VE host with an RTX 5060 Ti
  I want one command to stand up VM 140 with the GPU passed through, the open NVIDIA driver,
  CUDA, vLLM and Ollama
  So that the LLM server is reproducible, verifiable and safe to re-run.

  These scenarios ARE the deployment. Tags: "fake" runs against the simulated Proxmox host and
  guest (pvesim), which is what CI runs; "live" runs against the real host named by PROXMOX_VE_*
  (make deploy-vm-llm-aimachine); "wip" marks steps not implemented yet, excluded from CI until the
  issue that implements them lands.

  Facts that override the original plan (shared/reference): the RTX 5060 Ti (Blackwell) needs the
  open kernel module; the noble cloud image + cloud-init drive replaces the live-server ISO;
  CUDA comes from NVIDIA's cuda-keyring repo (12.8+); a raw hostpci needs root@pam, API tokens use
  a cluster PCI mapping.

  @fake @live @catalog
  Scenario: 9 Infrastructure catalog integration (AC-8)
    Given a new VM definition needs to be added
    When the administrator adds "vm-llm-aimachine" to the infrastructure catalog
    Then the catalog includes VM ID 140 named "vm-llm-aimachine" with 32 CPU cores, 51200 MB RAM and a 500 GB disk
    And the GPU passthrough device "0000:01:00" is specified with PCI id "10de:2d04"
    And the Ubuntu 24.04 cloud image is referenced as the boot image
    And the catalog validates successfully
    And the provisioning library can read and parse the catalog
    And the VM can be provisioned from the catalog definition

  @fake @live
  Scenario: 1 Initial VM deployment (AC-1 AC-2 AC-3 AC-4 AC-5 AC-6 AC-7 AC-9 AC-10 AC-17 AC-22 AC-27 AC-28)
    Given a Proxmox host configured with GPU passthrough
    And the Ubuntu 24.04 cloud image is available on the host
    And the infrastructure catalog includes "vm-llm-aimachine"
    When the administrator runs the deployment of "vm-llm-aimachine"
    Then the deployment plan validated before any change (AC-9)
    And a VM with ID 140 is created on Proxmox (AC-1)
    And the VM has 32 CPU cores (AC-2)
    And the VM has 51200 MB of RAM (AC-3)
    And the VM has a 500 GB disk (AC-4)
    And GPU passthrough is configured for "0000:01:00" (AC-5)
    And the VM boots the Ubuntu 24.04 cloud image (AC-6)
    And cloud-init configured the SSH keys (AC-7)
    And the VM is running and reachable over SSH
    And the NVIDIA open driver is installed (AC-10)
    And vLLM is installed (AC-17)
    And Ollama is installed (AC-22)
    And the Makefile target "deploy-vm-llm-aimachine" runs the @live scenarios (AC-27)
    And the deployment completes successfully (AC-28)

  @fake @live
  Scenario: 2 GPU passthrough verification (AC-11 AC-12 AC-13 AC-14 AC-15 AC-16)
    Given the VM "vm-llm-aimachine" is provisioned with GPU passthrough
    And the NVIDIA drivers are installed
    When the administrator runs "nvidia-smi" inside the VM
    Then the output shows the "NVIDIA GeForce RTX 5060 Ti" (AC-11)
    And the output shows 16311 MiB of GPU memory (AC-12)
    And the output shows the driver version (AC-13)
    And there are no NVIDIA errors in dmesg (AC-14)
    And the CUDA toolkit works: nvcc is 12.8 or newer and a CUDA sample runs (AC-15)
    And the GPU "10de:2d04" is visible in lspci (AC-16)

  @fake @live
  Scenario: 3 NVIDIA driver installation with the open kernel module (AC-10)
    Given the VM "vm-llm-aimachine" is running Ubuntu Server 24.04
    And the GPU is visible via PCIe
    When the driver installation tasks run
    Then "ubuntu-drivers list --gpgpu" lists the available drivers
    And the newest "-open" driver is selected
    And the driver is installed and confirmed by dpkg-query
    And the open kernel module is loaded
    And nvidia-smi is available

  @fake @live
  Scenario: 4 vLLM service deployment (AC-17 AC-18 AC-19 AC-20 AC-21)
    Given the NVIDIA driver and CUDA are installed on "vm-llm-aimachine"
    And a Python virtual environment is configured
    When the vLLM installation and configuration tasks run
    Then vLLM is installed in the Python virtual environment (AC-17)
    And the vLLM API server is running (AC-18)
    And the health endpoint answers 200 on the VM's private address and port 8000 (AC-19)
    And vLLM uses the GPU (AC-20)
    And the systemd service "vllm" exists, is enabled and restarts on failure (AC-21)
    And vLLM answers a chat completion on the GPU

  @fake @live
  Scenario: 5 Ollama installation and verification (AC-22 AC-23 AC-24 AC-25 AC-26)
    Given the NVIDIA driver is installed on "vm-llm-aimachine"
    When the Ollama installation tasks run
    Then the ollama CLI is in the PATH (AC-22)
    And "ollama --version" works (AC-23)
    And the "ollama" service is running (AC-24)
    And "ollama list" works (AC-25)
    And Ollama uses the GPU (AC-26)
    And each Ollama model answers a chat completion on the GPU

  @fake @live
  Scenario: 6 Idempotent re-deployment (AC-29)
    Given the VM "vm-llm-aimachine" exists and is fully configured
    And the vLLM and Ollama services are running
    When the administrator runs the deployment of "vm-llm-aimachine" again
    Then the Proxmox API receives no changes
    And no guest task reports a change
    And the services were not restarted
    And the GPU still works
    And the deployment completes successfully (AC-29)

  @fake
  Scenario Outline: 7 GPU passthrough failure detection (NFR-23)
    Both examples deploy with the options the CLI uses. A busy GPU is a race: VM 141 lists the card
    but is stopped, so the preflight passes; it starts right after VM 140 is created, PVE's start
    task fails and the tool rolls back the VM it created. A second VM holding the card is something
    a live run must not create: that example runs on the simulator only. The live variant uses a
    throwaway VM id and a PCI address the host does not have: the preflight refuses before creating
    anything, so it never touches VM 140 or any VM this scenario did not create.

    Given a Proxmox host with GPU passthrough enabled
    And a VM "<vm>" is being provisioned with the GPU "<gpu>"
    When GPU passthrough fails because the device is <failure>
    Then the deployment reports a clear error naming the device "<device>"
    And the error gives actionable guidance
    And the VM is rolled back, or was never created
    And no partial VM remains on the host

    @fake
    Examples: a GPU held by another VM
      | vm               | gpu        | failure | device       |
      | vm-llm-aimachine | 0000:01:00 | busy    | 0000:01:00.0 |

    @fake @live
    Examples: a GPU the host does not have
      | vm                   | gpu        | failure | device     |
      | vm-llm-gpufail-probe | 0000:99:00 | missing | 0000:99:00 |

  @fake
  Scenario: 8 NVIDIA driver installation failure handling (NFR-15)
    Simulator only: provoking a DKMS failure on a real host means breaking its kernel headers, which a
    deployment tool must never do to a machine it is meant to build. The simulator injects the
    failure and clears it again.

    Given the VM "vm-llm-aimachine" is provisioned
    And the driver installation begins
    When the driver installation fails because the DKMS module build fails
    Then the deployment reports the failure clearly
    And the run stops at the failed driver task
    And the error logs are shown
    And the VM remains accessible over SSH for debugging
    And a re-run after the cause is fixed succeeds
