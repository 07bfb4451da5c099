# Two NixOS machines on one test network, each running Peernix from this flake's module: a path only
# machine b has is substituted by machine a's own nix-daemon through a's Peernix, with signatures
# required (NixOS's default) and b's Peernix key the only new trust. Run by nixpkgs' runNixOSTest
# (the flake's checks on Linux).
{ nixosModule }:
let
  machine = peer: {
    imports = [ nixosModule ];
    services.peernix = {
      enable = true;
      openFirewall = true;
      # Static peers: the test network's names, no reliance on multicast in the VMs.
      mdns = false;
      peers = [ "http://${peer}:9999" ];
    };
    # A's trust in b's key is only known once b's Peernix has made its key: written by the test script.
    nix.extraOptions = "!include /run/peernix-trust.conf";
  };
in
{
  name = "peernix-substitution";
  nodes = {
    a = machine "b";
    b = machine "a";
  };
  testScript = ''
    start_all()
    for m in (a, b):
        m.wait_for_unit("peernix.service")
        m.wait_for_open_port(9998)
        m.wait_for_open_port(9999)

    state = "PEERNIX_STATE_DIR=/var/lib/peernix"
    b_key = b.succeed(f"{state} peernix nix-conf | sed -n 's/^extra-trusted-public-keys = //p'").strip()
    assert b_key.startswith("b-peernix-") or ":" in b_key, b_key
    path = b.succeed("echo only-on-b > /tmp/f && nix-store --add /tmp/f").strip()

    a.succeed(
        "printf 'extra-substituters = http://127.0.0.1:9998\\nextra-trusted-public-keys = %s\\n' "
        f"'{b_key}' > /run/peernix-trust.conf"
    )
    a.succeed("systemctl restart nix-daemon.service")  # nix.conf is read at start
    # Until a's Peernix knows b has the path, it answers a quick 404 (which Nix would remember):
    # ask Peernix itself first.
    hash_part = path.split("/")[-1][:32]
    a.wait_until_succeeds(f"curl -sf http://127.0.0.1:9998/{hash_part}.narinfo | grep -q '^StorePath: {path}$'", timeout=60)
    a.fail(f"test -e {path}")
    a.succeed(f"nix-store -r {path}")
    a.succeed(f"grep -qx only-on-b {path}")
    a.succeed(f"nix path-info --json {path} | grep -q b-peernix")
  '';
}
