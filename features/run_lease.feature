@fake
Feature: One run per VM at a time
  Two runs on one VM — two terminals, a CI job and a person — must not undo each other's work.
  A deployment holds a run lease on its VM, kept in the VM's Proxmox config, so that it also
  works across machines; a second run is refused at once and told who holds the VM.

  Scenario: A second deployment while the first runs is refused, naming the first
    Given the VM "vm-llm-aimachine" is provisioned
    And a deployment of "vm-llm-aimachine" is in progress in another terminal
    When the administrator starts a second deployment of "vm-llm-aimachine"
    Then the second deployment is refused, naming the run in progress, its host and how to take over
    And the second deployment changed nothing on the VM
    When the first deployment finishes
    Then the first deployment completed successfully
    And a new deployment of "vm-llm-aimachine" converges
