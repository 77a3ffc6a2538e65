Feature: Operator conventions: plan like terraform plan, a rollback that cleans up after itself
  As the administrator who runs aimachine by hand and from scripts
  I want plan to say what deploy would change, on the Proxmox host and in the guest,
  and a failed deploy to leave nothing of itself behind, its pinned host key included
  So that re-running is always safe and a script can branch on the plan.

  @fake
  Scenario: Plan covers the guest phase and says when nothing is left to do
    Given the infrastructure catalog includes "vm-llm-aimachine"
    When the administrator plans the deployment of "vm-llm-aimachine"
    Then the plan creates the VM and says the guest phase runs in full
    When the administrator runs the deployment of "vm-llm-aimachine"
    And the administrator plans the deployment of "vm-llm-aimachine"
    Then the plan has no changes and every guest task is in place
    When a guest file the deployment manages is removed
    And the administrator plans the deployment of "vm-llm-aimachine"
    Then the plan names the one guest task that would put it back
    And planning changed nothing on the host or in the guest

  @fake
  Scenario: A rolled-back deploy leaves known_hosts as it was before the run
    Given the infrastructure catalog includes "vm-llm-aimachine"
    And the catalog gives "vm-llm-aimachine" a cloud-init key the administrator does not hold
    When the administrator runs the deployment of "vm-llm-aimachine" and it cannot log in
    Then the VM this run created is rolled back
    And known_hosts is byte for byte as it was before the run
    When the catalog gives "vm-llm-aimachine" the administrator's key again
    And the administrator runs the deployment of "vm-llm-aimachine"
    Then the deployment pinned the new VM's host key without replacing one
