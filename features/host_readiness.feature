Feature: Host readiness: aimachine doctor and aimachine prepare (issue 11)
  As the administrator of a Proxmox VE host
  I want one read-only command that names every problem a deploy would meet, each with its fix,
  and one command that does the host steps the Proxmox API allows
  So that the first deploy on a real host does not fail one problem at a time, after a VM was
  created and rolled back.

  The doctor reads only: on the simulator the API request counters prove it made no change, on
  the real host the cluster's VMs, mappings and storage contents are compared before and after.
  Only the doctor scenario is tagged "live": prepare changes the host.

  @fake @live @readiness
  Scenario: The doctor checks the host read-only
    Given the Proxmox host that "vm-llm-aimachine" is deployed on
    When the administrator runs the doctor for "vm-llm-aimachine"
    Then the doctor passes
    And every check that is not passed names its fix
    And the doctor made no change on the host

  @fake @readiness
  Scenario: A bare host becomes ready through doctor, prepare and the snippet step
    Given a bare Proxmox host: no cloud image, no snippets content, no PCI mapping and a token missing one privilege
    And the catalog passes the GPU of "vm-llm-aimachine" through the PCI mapping "rtx5060ti"
    When the administrator runs the doctor for "vm-llm-aimachine"
    Then the doctor fails naming the missing cloud image, vendor snippet, PCI mapping and privilege, each with its fix
    And the doctor made no change on the host
    When the administrator runs prepare for "vm-llm-aimachine" with a wrong image checksum
    Then prepare fails with a checksum mismatch and no image volume is left
    When the administrator runs prepare for "vm-llm-aimachine"
    Then the cloud image was downloaded with its checksum verified and the PCI mapping exists
    And prepare handed over the vendor snippet with the command to run on the node
    When the administrator runs prepare for "vm-llm-aimachine" again
    Then prepare changed nothing on the host
    When the administrator writes the vendor snippet over SSH and grants the privilege the doctor named
    And the administrator runs the doctor for "vm-llm-aimachine"
    Then the doctor passes
    When the administrator deploys "vm-llm-aimachine" with the token
    Then the deployment succeeds and the verification passes
