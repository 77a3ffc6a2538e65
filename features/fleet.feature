Feature: A fleet: the whole catalog across a Proxmox cluster, each GPU VM where its card is free
  As the administrator of a four-node Proxmox VE cluster with eight GPUs
  I want one command to deploy every GPU VM of the catalog, each placed on a node where its
  cluster PCI mapping has a free card, and one command to take them all down again
  So that the cluster, not a hand-kept table, decides where each VM runs, and one VM's trouble
  never holds back the others.

  @fake
  Scenario: Eight GPU VMs across four nodes in one command, and a re-run that changes nothing
    Given a four-node cluster with eight GPUs of two models and a VM that is not ours
    And the fleet catalog with eight GPU VMs whose node is chosen by the tool
    When the administrator deploys every VM of the fleet catalog in one command
    Then all eight VMs are deployed and reported, two on each node
    And no GPU is given to two VMs
    And the status of every VM of the fleet is healthy
    When the administrator deploys every VM of the fleet catalog again
    Then the re-run changed no VM and made no changing API call besides the run leases

  @fake
  Scenario: One VM's failure leaves the other seven deployed, and destroy --all keeps what is not ours
    Given a four-node cluster with eight GPUs of two models and a VM that is not ours
    And the fleet catalog with eight GPU VMs whose node is chosen by the tool
    And the QEMU of VM 205 will not come up
    When the administrator deploys every VM of the fleet catalog in one command
    Then the deployment reports VM 205 failed and rolled back, and the other seven deployed
    When the administrator destroys every VM of the fleet catalog with --yes
    Then only the VM that is not ours is left on the cluster
