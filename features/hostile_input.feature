Feature: Hostile input is refused before it is interpreted (issue 17, issue 10)
  As the administrator of a Proxmox host
  I want a catalog or an environment written by someone else to be refused at once, naming where and why
  So that a few kilobytes of YAML cannot pin a CPU, a key file cannot hang the tool, credentials
  never travel in clear, and a volume real Proxmox would refuse is caught before a deploy.

  These scenarios read files and talk to a listener on loopback only; they need no simulator.

  @fake @offline
  Scenario: A merge-key bomb in the catalog is refused at once
    Given the catalog file "catalog/testdata/invalid-merge-bomb.yaml" of at most 4096 bytes
    When the administrator validates that catalog
    Then validation fails at line 3 column 1 saying "expands to more than 100000 YAML values through its aliases and merge keys"

  @fake @offline
  Scenario: A cloud image volume real Proxmox refuses is caught with the fix
    Given the catalog file "catalog/testdata/invalid-image-img.yaml" of at most 4096 bytes
    When the administrator validates that catalog
    Then validation fails at line 18 column 20 saying "an Ubuntu .img cloud image is a qcow2 disk"
    And the refusal says "store it as x.qcow2 under import/"

  @fake @offline
  Scenario: An SSH key file that is a device is refused without reading it
    Given a catalog whose SSH key file is "/dev/zero"
    When the administrator validates that catalog
    Then validation fails saying "public key file /dev/zero is a character device, not a regular file"

  @fake @offline
  Scenario: An http endpoint receives nothing
    Given a listener on loopback that counts connections and bytes
    When the administrator connects to it over "http" with an API token
    Then the connection is refused saying "travels only over verified TLS, so nothing was sent"
    And the error does not contain the token secret
    And the listener received no connection and no bytes
