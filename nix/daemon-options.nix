# Options the NixOS and nix-darwin modules share: what `peernix serve` is told, and the Nix settings.
{ lib, pkgs }:
let
  inherit (lib) mkOption mkEnableOption types;
  # HOST:PORT, the host a name, an IPv4 address or a bracketed IPv6 one, the port 1–65535.
  hostPort = types.strMatching "(\\[[0-9A-Fa-f:.]+(%[A-Za-z0-9_.-]+)?]|[A-Za-z0-9_.-]+):([1-9][0-9]{0,3}|[1-5][0-9]{4}|6[0-4][0-9]{3}|65[0-4][0-9]{2}|655[0-2][0-9]|6553[0-5])";
in
{
  enable = mkEnableOption "Peernix, a LAN peer-to-peer Nix binary cache (the headless daemon)";

  # The flake's modules set it to the flake's own.
  package = lib.mkPackageOption pkgs "peernix" { };

  stateDir = mkOption {
    type = types.str;
    default = "/var/lib/peernix";
    description = "Where the daemon keeps its generated key, settings, instance id and control token.";
  };

  secretKeyFile = mkOption {
    type = types.nullOr types.str;
    default = null;
    example = "/etc/nix/peernix-secret-key";
    description = ''
      A signing key from `nix-store --generate-binary-cache-key` (a path as a string, so the key is never
      copied into the world-readable store). Null: a key generated at first start in `stateDir`.
    '';
  };

  publicKey = mkOption {
    type = types.nullOr types.str;
    default = null;
    example = "build-1-peernix-1:2Yf7…=";
    description = ''
      The public half of this machine's Peernix key, for `addToNixSettings` (a key generated at first
      start can't be known when the configuration is evaluated). `peernix nix-conf` prints it.
    '';
  };

  shareListen = mkOption {
    type = hostPort;
    default = "0.0.0.0:9999";
    description = "HOST:PORT of the LAN-facing cache listener.";
  };

  listen = mkOption {
    type = hostPort;
    default = "127.0.0.1:9998";
    description = "HOST:PORT of the loopback substituter and dashboard; must be a loopback address.";
  };

  peers = mkOption {
    type = types.listOf types.str;
    default = [ ];
    example = [ "http://buildbox.lan:9999" ];
    description = "Static peers: other Peernix instances or Nix binary caches serving uncompressed NARs.";
  };

  mdns = mkOption {
    type = types.bool;
    default = true;
    description = "Announce this cache and find peers by mDNS (_peernix._tcp).";
  };

  mdnsInterface = mkOption {
    type = types.nullOr types.str;
    default = null;
    description = "Use only this interface (name or IPv4 address) for mDNS.";
  };

  share = mkOption {
    type = types.bool;
    default = true;
    description = "Start with sharing this store on; `peernix sharing on|off` changes it while running.";
  };

  trustAllNetworks = mkOption {
    type = types.bool;
    default = false;
    description = ''
      Share on every network, not only those trusted with `peernix network trust` (`--trust-all-networks`).
      For a machine that stays on a network you control (a build box, a server); leave it off on a laptop.
    '';
  };

  extraArgs = mkOption {
    type = types.listOf types.str;
    default = [ ];
    example = [ "--log-level" "debug" ];
    description = "More options for `peernix serve`.";
  };

  addToNixSettings = mkOption {
    type = types.bool;
    default = false;
    description = ''
      Add the loopback substituter to `nix.settings.substituters` and `publicKey` to
      `nix.settings.trusted-public-keys`.
    '';
  };
}
